"""The server's front layer, one pure-ASGI call per request: request id, API-key check, hot routes, metrics, log."""

from __future__ import annotations

import time
from random import getrandbits
from typing import Any

import orjson

from featurestore.server.auth import OPEN_PATHS, OPEN_PREFIX, SCOPE_KEY, KeyRing
from featurestore.server.hot import HotRoutes
from featurestore.server.logs import AccessLog
from featurestore.server.metrics import ServerMetrics

__all__ = ["ServerMiddleware", "REQUEST_ID_HEADER"]

REQUEST_ID_HEADER = b"x-request-id"
_MAX_ID = 128
_UNAUTHORIZED = orjson.dumps({"detail": "missing or invalid API key (Authorization: Bearer <key> or X-API-Key)"})


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's ``X-Request-ID`` if it is short and printable, else a fresh random id (16 hex digits)."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if 0 < len(value) <= _MAX_ID and value.isascii() and value.decode().isprintable():
                return value
            break
    # An id names a request in logs, it guards nothing: Python's generator, no system call per request.
    return b"%016x" % getrandbits(64)


class ServerMiddleware:
    """Per HTTP request: take or make a request id (echoed as ``X-Request-ID``), refuse a missing or
    invalid key with 401 when auth is on (probes, metrics and docs stay open), answer the hot
    lookup routes directly (``hot``) or pass the request on to the app, then record latency and
    status in the metrics and write one access-log line (no entity keys, no feature values, no secrets).

    The app calls it before its own middleware stack (see ``app.FeatureServerApp``), so a lookup
    crosses this one layer and its handler.
    """

    def __init__(
        self, app: Any, *, metrics: ServerMetrics, keys: KeyRing, log: AccessLog, hot: HotRoutes | None = None
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.keys = keys
        self.log = log
        self.hot = hot

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = scope["headers"]
        rid = _request_id(headers)
        path = scope["path"]
        status = 500
        key = None
        try:
            if self.keys.enabled and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIX):
                key = self.keys.authenticate(headers)
                if key is None:
                    status = 401
                    await _send_401(send, rid)
                    return
                scope[SCOPE_KEY] = key
            hot = self.hot
            handler = hot.handler(scope) if hot is not None else None
            if handler is not None:
                status = await hot.answer(handler, scope, receive, send, (REQUEST_ID_HEADER, rid))  # type: ignore[union-attr]
            else:

                async def send_with_id(message: dict[str, Any]) -> None:
                    nonlocal status
                    if message["type"] == "http.response.start":
                        status = message["status"]
                        message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, rid)]
                    await send(message)

                await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            endpoint = self.metrics.endpoint(path)
            self.metrics.observe(endpoint, status, seconds)
            if self.log.enabled:
                fields = {
                    "request_id": rid.decode(),
                    "method": scope["method"],
                    "path": endpoint if endpoint != "other" else path[:200],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                }
                if key is not None:
                    fields["api_key"] = key.name
                self.log.write(fields)


async def _send_401(send: Any, rid: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                (b"www-authenticate", b"Bearer"),
                (REQUEST_ID_HEADER, rid),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})
