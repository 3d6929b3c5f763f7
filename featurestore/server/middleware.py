"""One pure-ASGI middleware around the app: request id, API-key check, metrics and the access log."""

from __future__ import annotations

import os
import time
from typing import Any

import orjson

from featurestore.server.auth import OPEN_PATHS, OPEN_PREFIX, SCOPE_KEY, KeyRing
from featurestore.server.logs import AccessLog
from featurestore.server.metrics import ServerMetrics

__all__ = ["ServerMiddleware", "REQUEST_ID_HEADER"]

REQUEST_ID_HEADER = b"x-request-id"
_MAX_ID = 128
_UNAUTHORIZED = orjson.dumps({"detail": "missing or invalid API key (Authorization: Bearer <key> or X-API-Key)"})


def _request_id(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The client's ``X-Request-ID`` if it is short and printable, else a fresh random id."""
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            if 0 < len(value) <= _MAX_ID and value.isascii() and value.decode().isprintable():
                return value
            break
    return os.urandom(8).hex().encode()


class ServerMiddleware:
    """Per HTTP request: take or make a request id (echoed as ``X-Request-ID``), refuse a missing or
    invalid key with 401 when auth is on (probes, metrics and docs stay open), then record latency and
    status in the metrics and write one access-log line (no entity keys, no feature values, no secrets).

    Written as plain ASGI (no ``BaseHTTPMiddleware``): it adds a few microseconds to a lookup.
    """

    def __init__(self, app: Any, *, metrics: ServerMetrics, keys: KeyRing, log: AccessLog) -> None:
        self.app = app
        self.metrics = metrics
        self.keys = keys
        self.log = log

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

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, rid)]
            await send(message)

        try:
            if self.keys.enabled and path not in OPEN_PATHS and not path.startswith(OPEN_PREFIX):
                key = self.keys.authenticate(headers)
                if key is None:
                    await _send_401(send_with_id)
                    return
                scope[SCOPE_KEY] = key
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


async def _send_401(send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 401,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(_UNAUTHORIZED)).encode()),
                (b"www-authenticate", b"Bearer"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": _UNAUTHORIZED})
