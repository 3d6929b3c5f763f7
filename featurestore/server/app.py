"""The FastAPI app factory and the uvicorn runner for ``featurestore serve``."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from featurestore._version import __version__
from featurestore.config import Settings, load_settings
from featurestore.errors import (
    ForbiddenError,
    IngestError,
    InvalidRequestError,
    MalformedRequestError,
    NotFoundError,
    NotReadyError,
    OnlineStoreError,
    PayloadTooLargeError,
    RequestError,
    StoreUnavailableError,
    redact,
)
from featurestore.offline.layout import open_layout

__all__ = [
    "FeatureServerApp",
    "create_app",
    "create_app_from_env",
    "serve",
    "REPO_ENV",
    "HTTP_STATUS",
    "http_status",
]

# The repository a worker process serves when uvicorn starts several workers.
REPO_ENV = "FEATURESTORE_SERVE_REPO"


# Each kind of request error and the status it is answered with: the one place HTTP codes are chosen.
HTTP_STATUS: dict[type[RequestError], int] = {
    MalformedRequestError: 400,
    ForbiddenError: 403,
    NotFoundError: 404,
    PayloadTooLargeError: 413,
    InvalidRequestError: 422,
}


def http_status(exc: RequestError) -> int:
    """The status a request error is answered with (400 for a kind not listed)."""
    for kind in type(exc).__mro__:
        status = HTTP_STATUS.get(kind)  # type: ignore[call-overload]
        if status is not None:
            return status
    return 400


def _validation_message(errors: Any) -> str:
    """FastAPI's validation errors as one line: ``query parameter 'limit': Input should be ...; ...``."""
    parts = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}" if len(loc) > 1 else "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _error(status: int, detail: str) -> Response:
    return Response(orjson.dumps({"detail": detail}), status_code=status, media_type="application/json")


class FeatureServerApp(FastAPI):
    """The FastAPI app whose HTTP requests enter through the server's front layer (``front``) first.

    FastAPI's own stack (its telemetry check, error and body-limit middleware, routing) costs a
    measurable share of a sub-millisecond lookup: the front layer (request id, auth, metrics,
    access log) answers the hot lookup routes itself and passes every other request on to the
    usual stack. Lifespan and websocket events go straight to FastAPI.
    """

    front: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        front = self.front
        if front is not None and scope["type"] == "http":
            scope["app"] = self
            await front(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def create_app(settings: Settings, *, store: Any = None) -> FastAPI:
    """The online feature server of one repository (``store`` overrides ``settings.online_url``)."""
    from featurestore.online import online_store_from_settings
    from featurestore.server.allocator import keep_freed_memory
    from featurestore.server.auth import KeyRing
    from featurestore.server.catalog import Catalog
    from featurestore.server.logs import AccessLog, configure_logging
    from featurestore.server.materialize import router as materialize_router
    from featurestore.server.metrics import ServerMetrics, worker_started, worker_stopped
    from featurestore.server.middleware import ServerMiddleware
    from featurestore.server.routes import router
    from featurestore.server.ui import mount_ui

    logger = configure_logging(settings.log_level)
    keys = KeyRing(settings.api_keys, enabled=settings.auth == "on")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if keys.enabled and not keys.keys:
            logger.warning("auth is on and no api_keys are configured: every lookup and push gets 401")
        elif not keys.enabled:
            logger.warning('auth is off (auth = "off"): anyone who reaches this server can read and push')

        keep_freed_memory()  # no page faults for each large response (glibc)

        own = store is None
        online = store or online_store_from_settings(settings)
        app.state.store = online
        app.state.catalog = Catalog(settings.registry_location, online)
        worker_started()
        if app.state.served_log is not None:
            app.state.served_log.start()
        # Start-up objects (modules, the app, the registry) never die: moving them out of the
        # collector's reach keeps full collections, and their pauses in the p99, short.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if app.state.served_log is not None:
                app.state.served_log.close()  # writes what is still queued
            worker_stopped()
            if own:
                await online.aclose()

    app = FeatureServerApp(
        title="featurestore online server",
        version=__version__,
        description="Latest feature values per entity (Feast feature-server compatible), push and health.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.layout = open_layout(settings.offline_location)
    app.state.served_log = _served_log(settings)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        return _error(http_status(exc), redact(str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> Response:
        # FastAPI's own answer is a list of objects; every error here is one "detail" string.
        return _error(422, redact(_validation_message(exc.errors())))

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, exc: NotReadyError) -> Response:
        return _error(503, redact(str(exc)))

    @app.exception_handler(StoreUnavailableError)
    async def unavailable(request: Request, exc: StoreUnavailableError) -> Response:
        app.state.metrics.store_error(unavailable=True)
        return _error(503, redact(str(exc)))

    @app.exception_handler(OnlineStoreError)
    async def store_error(request: Request, exc: OnlineStoreError) -> Response:
        app.state.metrics.store_error(unavailable=False)
        logger.error("online store error: %s", exc)
        return _error(500, redact(str(exc)))

    @app.exception_handler(IngestError)
    async def offline_error(request: Request, exc: IngestError) -> Response:
        # A push's offline write failed (disk full, permissions, lost commit races): nothing of it was
        # stored, and the message says why; a retry may succeed once the cause is gone.
        logger.error("offline store error: %s", exc)
        return _error(503, redact(getattr(exc, "public", str(exc))))

    app.include_router(router)
    app.include_router(materialize_router)
    mount_ui(app)
    _document_parameter_errors(app)
    # Known paths label the metrics. FastAPI keeps included routers behind one lazy route, so the
    # API router's own routes are read too (not app.openapi(): its schema is built on first use).
    paths = {getattr(r, "path", "") for r in (*router.routes, *materialize_router.routes, *app.router.routes)} - {""}
    app.state.metrics = ServerMetrics(paths)
    if app.state.served_log is not None:
        app.state.served_log.export(*app.state.metrics.served_log())  # drops are counted on /metrics
    app.front = ServerMiddleware(
        functools.partial(FastAPI.__call__, app),
        metrics=app.state.metrics,
        keys=keys,
        log=AccessLog(settings.log_level),
        hot=_hot_routes(app, settings),
    )
    return app


def _document_parameter_errors(app: FastAPI) -> None:
    """Describe each operation's 422 as it is answered (``{"detail": "<one message>"}``), not as
    FastAPI's default list of validation objects, so clients and schema checkers read the truth."""
    from featurestore.server.models import ErrorResponse

    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("ErrorResponse", ErrorResponse.model_json_schema())
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                answer = operation.get("responses", {}).get("422", {})
                schema_ref = answer.get("content", {}).get("application/json", {}).get("schema", {}).get("$ref", "")
                if schema_ref.endswith("/HTTPValidationError"):  # FastAPI's default, not a route's own 422
                    answer.update(description="Invalid parameter: one message naming it", content=error)
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _served_log(settings: Settings) -> Any:
    """The served-feature log when ``log_sample_rate`` > 0, else None."""
    if settings.log_sample_rate <= 0:
        return None
    from featurestore.server.served_log import ServedLog
    from featurestore.server.served_spool import SpoolPlace

    return ServedLog(
        settings.offline_root,
        settings.log_sample_rate,
        spool_place=SpoolPlace(settings.served_spool),
        max_spool_bytes=settings.served_spool_max_bytes,
    )


def _hot_routes(app: FastAPI, settings: Settings) -> Any:
    """The lookups answered by the front layer (they parse their own body); ``/docs`` still lists them."""
    from featurestore.server.hot import HotRoutes
    from featurestore.server.routes import feast_lookup, rows_lookup

    routes = {"/get-online-features": feast_lookup, "/rows": rows_lookup}
    return HotRoutes(routes, app.exception_handlers, app.state, settings.max_body_bytes)


def create_app_from_env() -> FastAPI:
    """App factory for uvicorn workers: the repository comes from ``FEATURESTORE_SERVE_REPO``."""
    return create_app(load_settings(os.environ.get(REPO_ENV, ".")))


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 6566, workers: int = 1) -> None:
    """Run the server with uvicorn (uvloop and httptools when installed)."""
    import importlib.util

    import uvicorn

    from featurestore.server.http import http_protocol

    fast: dict[str, Any] = {
        "loop": "uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        "http": http_protocol(),  # httptools, a response's header and body in one write
    }
    if workers > 1:
        with _metrics_dir():
            os.environ[REPO_ENV] = str(settings.repo)
            uvicorn.run(
                "featurestore.server.app:create_app_from_env",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
                **fast,
            )
    else:
        uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", access_log=False, **fast)


@contextlib.contextmanager
def _metrics_dir() -> Iterator[Path]:
    """A fresh folder for the workers' metric files during one server run, removed after it.

    Workers share their metrics through files there, so /metrics on any worker reports them all;
    a fresh folder per run, so a previous run's counts are never added in. Inside the folder
    ``PROMETHEUS_MULTIPROC_DIR`` names, when it is set to one.
    """
    import shutil
    import tempfile

    from featurestore.server.metrics import MULTIPROC_ENV

    previous = os.environ.get(MULTIPROC_ENV)
    parent = previous if previous and os.path.isdir(previous) else None
    folder = tempfile.mkdtemp(prefix="featurestore-metrics-", dir=parent)
    os.environ[MULTIPROC_ENV] = folder
    try:
        yield Path(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
