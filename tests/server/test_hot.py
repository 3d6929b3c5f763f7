"""HotRoutes: hot POST paths go straight to their handler (raw body in, JSON out), errors to the app's handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from featurestore.errors import InvalidRequestError, PayloadTooLargeError, RequestError
from featurestore.server.hot import HotRoutes

RID = (b"x-request-id", b"rid-1")


def _call(hot: HotRoutes, method: str, path: str, body: bytes = b"{}", headers: Any = ()) -> Any:
    """(status, headers, body) of one request, or None when the path is not hot."""
    sent: list[dict[str, Any]] = []
    chunks = [body[:3], body[3:]]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers), "query_string": b""}
    handler = hot.handler(scope)
    if handler is None:
        return None
    status = asyncio.run(hot.answer(handler, scope, receive, send, RID))
    assert status == sent[0]["status"]
    return status, dict(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


async def _echo(state: Any, scope: Any, body: bytes) -> bytes:
    return state["prefix"] + body


async def _invalid(state: Any, scope: Any, body: bytes) -> bytes:
    raise InvalidRequestError("'entities' must be a non-empty object")


async def _crash(state: Any, scope: Any, body: bytes) -> bytes:
    raise RuntimeError("a bug")


async def _on_request_error(request: Request, exc: Exception) -> Response:
    return Response(str(exc).encode(), status_code=422)


async def _on_too_large(request: Request, exc: Exception) -> Response:
    return Response(str(exc).encode(), status_code=413)


def _hot() -> HotRoutes:
    routes = {"/ok": _echo, "/invalid": _invalid, "/crash": _crash}
    return HotRoutes(
        routes, {RequestError: _on_request_error, PayloadTooLargeError: _on_too_large}, {"prefix": b"got "}, max_body=10
    )


def test_hot_post_is_answered_by_its_handler_with_the_extra_header() -> None:
    hot = _hot()
    status, headers, body = _call(hot, "POST", "/ok", b'{"a":12}')
    assert (status, body) == (200, b'got {"a":12}')  # the body arrived in two chunks
    assert headers[b"content-type"] == b"application/json" and headers[b"x-request-id"] == b"rid-1"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert _call(hot, "GET", "/ok") is None  # only POST is hot
    assert _call(hot, "POST", "/elsewhere") is None


def test_a_body_over_the_limit_is_refused_declared_or_not() -> None:
    hot = _hot()
    assert _call(hot, "POST", "/ok", b"x" * 11)[0] == 413
    assert _call(hot, "POST", "/ok", b"{}", headers=[(b"content-length", b"11")])[0] == 413


def test_an_error_gets_the_handler_of_its_nearest_class_and_an_unknown_one_a_500() -> None:
    hot = _hot()
    status, headers, body = _call(hot, "POST", "/invalid")
    assert (status, body) == (422, b"'entities' must be a non-empty object")
    assert headers[b"x-request-id"] == b"rid-1"
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/crash", "headers": [], "query_string": b""}
    with pytest.raises(RuntimeError, match="a bug"):  # re-raised, so the server logs it
        asyncio.run(hot.answer(_crash, scope, receive, send, RID))
    assert sent[0]["status"] == 500
