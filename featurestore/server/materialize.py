"""Feast's materialize routes (``POST /materialize``, ``/materialize-incremental``): what Feast's SDK and CLI call
(``feast materialize``, ``store.materialize(...)``) when their online store is ``type: remote``."""

from __future__ import annotations

import asyncio
import functools
import logging
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from featurestore.errors import GateRejectedError, InvalidRequestError, NotFoundError
from featurestore.server.auth import SCOPE_KEY, check_push
from featurestore.server.models import MaterializeIncrementalRequest, MaterializeRequest, request_body
from featurestore.server.routes import JSON, read_json

__all__ = ["router"]

router = APIRouter()
logger = logging.getLogger("featurestore.server")
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": what}
    for code, what in (
        (202, "Accepted (?async=true): it runs in the background"),
        (404, "An unknown feature view"),
        (409, "A requested view is being materialized by this server already"),
        (422, "Invalid parameters, or the gate rejected a view's rows (its result)"),
    )
}
_QUERY = {
    "parameters": [
        {"name": "async", "in": "query", "required": False, "schema": {"type": "boolean", "default": False}},
        {"name": "force", "in": "query", "required": False, "schema": {"type": "boolean", "default": False}},
    ]
}
_RUNNING = "materializing"  # app.state attribute: the views this process materializes right now


@router.post(
    "/materialize",
    responses=_ERRORS,
    openapi_extra={**request_body(MaterializeRequest), **_QUERY},
    summary="Feast's materialize: each view's latest offline row per entity in [start_ts, end_ts] -> online",
)
async def materialize(request: Request) -> Response:
    data = await read_json(request)
    views = _views(request, data)
    if _flag(data, "disable_event_timestamp"):
        start, end = None, datetime.now(UTC)  # Feast: from the epoch to now
    else:
        start, end = _time(data, "start_ts"), _time(data, "end_ts")
        if start >= end:
            raise InvalidRequestError(f"'start_ts' ({start.isoformat()}) must be before 'end_ts' ({end.isoformat()})")
    return await _run(request, views, start, end, incremental=False)


@router.post(
    "/materialize-incremental",
    responses=_ERRORS,
    openapi_extra={**request_body(MaterializeIncrementalRequest), **_QUERY},
    summary="Feast's materialize-incremental: from each view's watermark to end_ts -> online",
)
async def materialize_incremental(request: Request) -> Response:
    data = await read_json(request)
    views = _views(request, data)
    return await _run(request, views, None, _time(data, "end_ts"), incremental=True)


def _flag(data: dict[str, Any], name: str) -> bool:
    value = data.get(name, False)
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{name!r} must be true or false")
    return value


_TRUE, _FALSE = {"true", "1", "yes", "on", "t", "y"}, {"false", "0", "no", "off", "f", "n"}


def _query_flag(request: Request, name: str) -> bool:
    """A boolean query parameter (``?async=true``), read as FastAPI reads one; 422 naming it otherwise."""
    value = request.query_params.get(name, "false").lower()
    if value not in _TRUE | _FALSE:
        raise InvalidRequestError(f"query parameter {name!r} must be true or false, not {value[:50]!r}")
    return value in _TRUE


def _time(data: dict[str, Any], name: str) -> datetime:
    """The ISO 8601 time in ``data[name]`` as UTC (naive means UTC, as Feast reads it)."""
    from featurestore.times import utc_datetime

    value = data.get(name)
    if not isinstance(value, str):
        raise InvalidRequestError(f"{name!r} must be an ISO 8601 time (e.g. 2026-01-31T12:00:00Z), not {value!r}")
    try:
        parsed = utc_datetime(value)
    except (ValueError, OverflowError):
        raise InvalidRequestError(f"{name!r}: {value[:100]!r} is not an ISO 8601 time") from None
    assert parsed is not None
    return parsed


def _views(request: Request, data: dict[str, Any]) -> list[str]:
    """The views to materialize (``feature_views``, every online view by default), checked against the key."""
    app = request.app.state
    state = app.catalog.state
    _flag(data, "full_feature_names")  # Feast's option; names do not matter to what is written
    if data.get("version") is not None:
        raise InvalidRequestError("'version' is not supported: the registry's applied version is materialized")
    names = data.get("feature_views")
    if names is None or names == []:
        names = sorted(n for n, spec in state.views.items() if spec.online)
    elif not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidRequestError("'feature_views' must be a list of feature view names")
    for name in names:
        if name not in state.views:
            known = sorted(state.views)
            raise NotFoundError(f"unknown feature view {name!r} in 'feature_views'; applied views: {known}")
        if not state.views[name].online:
            raise InvalidRequestError(f"feature view {name!r} is offline only (online=False): nothing to materialize")
    key = request.scope.get(SCOPE_KEY)
    for name in names:  # writing online rows is a push's right
        check_push(key, name, app.catalog.service_views)
    return list(dict.fromkeys(names))


async def _run(
    request: Request, views: list[str], start: datetime | None, end: datetime, *, incremental: bool
) -> Response:
    """Materialize ``views`` (in the background with ``?async=true``: 202); 409 if one is already running here."""
    app = request.app.state
    run_async = _query_flag(request, "async")
    _query_flag(request, "force")  # Feast's reset of a stuck async run: nothing is stuck here (a run holds no state)
    running: set[str] = getattr(app, _RUNNING, None) or set()
    setattr(app, _RUNNING, running)
    busy = sorted(running.intersection(views))
    if busy:
        body = {"detail": f"already being materialized by this server: {busy}", "feature_views": busy}
        return Response(orjson.dumps(body), status_code=409, media_type=JSON)

    running.update(views)  # claimed before anything is awaited: a second request gets 409
    if run_async:
        task = asyncio.get_running_loop().run_in_executor(None, _background, app, views, start, end, incremental)
        app.materialize_task = task  # kept referenced until it ends
        return Response(orjson.dumps({"status": "accepted", "feature_views": views}), status_code=202, media_type=JSON)
    try:
        results = await run_in_threadpool(_materialize, app, views, start, end, incremental)
    except GateRejectedError as exc:
        as_dict = getattr(exc.result, "public_dict", None)
        gate = as_dict() if as_dict is not None else None
        return Response(orjson.dumps({"detail": str(exc), "gate": gate}), status_code=422, media_type=JSON)
    finally:
        running.difference_update(views)
        app.catalog.invalidate()
    out = [_result(r) for r in results]
    return Response(orjson.dumps({"status": "done", "feature_views": views, "results": out}), media_type=JSON)


def _background(app: Any, views: list[str], start: datetime | None, end: datetime, incremental: bool) -> None:
    try:
        _materialize(app, views, start, end, incremental)
    except Exception:
        logger.exception("materialize of %s (requested with ?async=true) failed", views)
    finally:
        getattr(app, _RUNNING).difference_update(views)
        app.catalog.invalidate()


def _materialize(app: Any, views: list[str], start: datetime | None, end: datetime, incremental: bool) -> list[Any]:
    """What ``FeatureStore.materialize`` does, on a fresh read of the registry (its own engine and store link)."""
    from featurestore.offline.base import engine_from_settings
    from featurestore.online import online_store_from_settings
    from featurestore.registry.store import Registry
    from featurestore.serving.materialize import materialize_view

    settings = app.settings
    state = Registry(settings.registry_location).load()
    for name in views:
        if name not in state.views:  # removed by an apply since the request was checked
            raise NotFoundError(f"unknown feature view {name!r} in 'feature_views'")
    engine, store = engine_from_settings(settings), online_store_from_settings(settings)
    try:
        return [
            materialize_view(
                settings,
                engine,
                app.layout,
                store,
                state.view(name),
                start,
                end,
                incremental=incremental,
                resolve=functools.partial(state.view, name),
            )
            for name in views
        ]
    finally:
        engine.close()
        store.close()


def _result(r: Any) -> dict[str, Any]:
    fields = ("view", "version", "rows_read", "rows_written", "rows_stale", "rows_expired", "switched")
    out = {f: getattr(r, f, None) for f in fields}
    out["start"] = r.start.isoformat() if getattr(r, "start", None) else None
    out["end"] = r.end.isoformat() if getattr(r, "end", None) else None
    return out
