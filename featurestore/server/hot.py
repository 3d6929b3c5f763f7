"""Lookup routes answered straight from the ASGI call: the raw body in, JSON bytes out, no per-request objects."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from featurestore.errors import PayloadTooLargeError

__all__ = ["HotRoutes", "Handler", "read_body"]

# (app state, ASGI scope, request body) -> the JSON body of a 200; errors are raised.
Scope = MutableMapping[str, Any]
Handler = Callable[[Any, Scope, bytes], Awaitable[bytes]]
ErrorHandler = Callable[[Request, Any], Any]  # as in app.exception_handlers
Header = tuple[bytes, bytes]
_JSON = (b"content-type", b"application/json")


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"request body larger than {limit} bytes (setting max_body_bytes)")


async def read_body(scope: Scope, receive: Any, limit: int) -> bytes:
    """The request body, refusing one declared or found larger than ``limit`` bytes (413)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            if value.isdigit() and int(value) > limit:
                raise _too_large(limit)
            break
    message = await receive()
    if message["type"] != "http.request":
        raise ClientDisconnect()
    body: bytes = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [body]
        size = len(body)
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise ClientDisconnect()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
    if len(body) > limit:
        raise _too_large(limit)
    return body


class HotRoutes:
    """Answer ``POST`` on a few paths by calling their handler directly, for the server's front layer.

    A sub-millisecond lookup pays for every layer it crosses (FastAPI's telemetry check, route
    matching, the request and exception wrappers, ``Request`` and ``Response`` objects): a
    handler takes the app state, the scope and the body bytes and returns the JSON of a 200,
    which is sent as two ASGI messages. An exception is answered by the app's own handler for
    its class (``app.exception_handlers``, the same ones every other route uses); one without a
    handler is answered 500 and re-raised, so the server logs it. The routes stay in the router
    for the OpenAPI docs.
    """

    def __init__(
        self, routes: Mapping[str, Handler], errors: Mapping[Any, ErrorHandler], state: Any, max_body: int
    ) -> None:
        self.routes = routes
        self.errors = errors
        self.state = state
        self.max_body = max_body

    def handler(self, scope: Scope) -> Handler | None:
        """The handler answering this request, if it is a hot one."""
        return self.routes.get(scope["path"]) if scope["method"] == "POST" else None

    async def answer(self, handler: Handler, scope: Scope, receive: Any, send: Any, extra: Header) -> int:
        """Answer one request through ``handler`` (``extra`` is added to the response headers); return the status."""
        try:
            out = await handler(self.state, scope, await read_body(scope, receive, self.max_body))
        except ClientDisconnect:
            raise
        except Exception as exc:
            return await self._answer_error(exc, scope, receive, send, extra)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [_JSON, (b"content-length", b"%d" % len(out)), extra],
            }
        )
        await send({"type": "http.response.body", "body": out})
        return 200

    async def _answer_error(self, exc: Exception, scope: Scope, receive: Any, send: Any, extra: Header) -> int:
        on_error = self._error_handler(exc)
        if on_error is None:
            await Response(b"Internal Server Error", 500, headers={extra[0].decode(): extra[1].decode()})(
                scope, receive, send
            )
            raise exc
        response = await on_error(Request(scope, receive), exc)
        response.raw_headers.append(extra)
        await response(scope, receive, send)
        return response.status_code

    def _error_handler(self, exc: Exception) -> ErrorHandler | None:
        for kind in type(exc).__mro__:
            found = self.errors.get(kind)
            if found is not None:
                return found
        return None
