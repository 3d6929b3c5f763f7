"""HotRoutes: hot POST paths go straight to their handler, errors to the app's handler for their class."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from featurestore.errors import InvalidRequestError, RequestError
from featurestore.server.hot import HotRoutes


def _call(app: Any, method: str, path: str) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "query_string": b""}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def _inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await Response(b"inner", status_code=299)(scope, receive, send)


async def _ok(request: Request) -> Response:
    return Response(await request.body())


async def _invalid(request: Request) -> Response:
    raise InvalidRequestError("'entities' must be a non-empty object")


async def _crash(request: Request) -> Response:
    raise RuntimeError("a bug")


async def _on_request_error(request: Request, exc: Exception) -> Response:
    return Response(str(exc).encode(), status_code=422)


def _app() -> HotRoutes:
    routes = {"/ok": _ok, "/invalid": _invalid, "/crash": _crash}
    return HotRoutes(_inner, routes=routes, errors={RequestError: _on_request_error})


def test_hot_post_is_answered_by_its_handler_and_the_rest_passes_on() -> None:
    app = _app()
    assert _call(app, "POST", "/ok") == (200, b"{}")
    assert _call(app, "GET", "/ok") == (299, b"inner")  # only POST is hot
    assert _call(app, "POST", "/elsewhere") == (299, b"inner")


def test_an_error_gets_the_handler_of_its_nearest_class_and_an_unknown_one_propagates() -> None:
    app = _app()
    assert _call(app, "POST", "/invalid") == (422, b"'entities' must be a non-empty object")
    with pytest.raises(RuntimeError, match="a bug"):
        _call(app, "POST", "/crash")
