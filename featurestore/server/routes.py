"""HTTP handlers: Feast-compatible lookups, native row lookups, push, health, readiness, metrics, reports."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from featurestore._version import __version__
from featurestore.errors import (
    ForbiddenError,
    GateRejectedError,
    InvalidRequestError,
    MalformedRequestError,
    NotFoundError,
    RegistryError,
    RequestError,
    StoreUnavailableError,
    redact,
)
from featurestore.online.codec import now_us, row_timestamp_us
from featurestore.server.auth import SCOPE_KEY, check_push, check_read
from featurestore.server.hot import read_body
from featurestore.server.models import (
    ErrorResponse,
    GetOnlineFeaturesRequest,
    GetOnlineFeaturesResponse,
    PushRequest,
    RowsRequest,
    RowsResponse,
    WriteToOnlineStoreRequest,
    request_body,
)
from featurestore.serving.keys import entity_keys
from featurestore.serving.lookup import (
    NOT_FOUND,
    OUTSIDE_MAX_AGE,
    PRESENT,
    aread_views,
    assemble_json,
    check_entities,
    rows_text,
)

__all__ = ["router", "feast_lookup", "rows_lookup", "parse_json"]

router = APIRouter()
JSON = "application/json"
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 404, 413, 422, 503)}


async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, refusing oversized or malformed bodies with a 4xx."""
    return parse_json(await read_body(request.scope, request.receive, request.app.state.settings.max_body_bytes))


def parse_json(body: bytes) -> dict[str, Any]:
    """A request body as a JSON object, refusing malformed ones (400)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequestError(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequestError("the request body must be a JSON object")
    return data


@router.post(
    "/get-online-features",
    response_model=GetOnlineFeaturesResponse,
    responses=_ERRORS,
    openapi_extra=request_body(GetOnlineFeaturesRequest),
    summary="Latest feature values (Feast feature-server compatible)",
)
async def get_online_features(request: Request) -> Response:
    body = await read_body(request.scope, request.receive, request.app.state.settings.max_body_bytes)
    return Response(await feast_lookup(request.app.state, request.scope, body), media_type=JSON)


async def feast_lookup(app: Any, scope: MutableMapping[str, Any], body: bytes) -> bytes:
    """``/get-online-features`` (answered by the front layer's hot routes): the request body -> the response's."""
    data = parse_json(body)
    catalog = app.catalog
    await catalog.refresh()
    features = data.get("features")
    service = data.get("feature_service")
    if service is not None:
        if features is not None and features != []:
            raise InvalidRequestError("give either 'feature_service' or 'features', not both")
        if not isinstance(service, str):
            raise InvalidRequestError("'feature_service' must be a string")
        if ":" in service:
            raise NotFoundError(f"unknown feature service {service!r}")
        refs: Any = service
    elif isinstance(features, list) and features and all(type(f) is str for f in features):
        refs = features
    else:
        raise InvalidRequestError("give 'features' (a non-empty list of 'view:feature') or 'feature_service'")
    full = data.get("full_feature_names", False)
    if not isinstance(full, bool):
        raise InvalidRequestError("'full_feature_names' must be true or false")
    if len(refs) > app.settings.max_features and isinstance(refs, list):
        raise InvalidRequestError(f"too many features: {len(refs)} > {app.settings.max_features}")
    plan = catalog.plan(refs, full)
    key = scope.get(SCOPE_KEY)
    if key is not None:
        check_read(key, service, [v.name for v in plan.views])
    entities: Any = data.get("entities")
    n = check_entities(entities, app.settings.max_entities)
    store, versions = app.store, catalog.versions()
    t_us = now_us()
    rows, layouts = await aread_views(store, catalog.state, plan, entities, n, versions, catalog.layout, t_us)
    log = app.served_log
    if log is None:
        out, tally = assemble_json(plan, entities, n, rows, layouts, t_us)
    else:  # the texts the assembly decodes are the log's: kept (not the rows), statuses judged at t_us
        texts = [rows_text(r) for r in rows]
        out, tally = assemble_json(plan, entities, n, rows, layouts, t_us, texts)
        log.record(service, plan, entities, rows, layouts, t_us, texts)
    app.metrics.add_statuses(tally)
    return out


@router.post(
    "/rows",
    response_model=RowsResponse,
    responses=_ERRORS,
    openapi_extra=request_body(RowsRequest),
    summary="Every feature of one view per entity, as stored rows (fastest)",
)
async def get_rows(request: Request) -> Response:
    body = await read_body(request.scope, request.receive, request.app.state.settings.max_body_bytes)
    return Response(await rows_lookup(request.app.state, request.scope, body), media_type=JSON)


async def rows_lookup(app: Any, scope: MutableMapping[str, Any], body: bytes) -> bytes:
    """``/rows`` (answered by the front layer's hot routes): the request body -> the response's."""
    data = parse_json(body)
    catalog = app.catalog
    await catalog.refresh()
    view = data.get("view")
    if not isinstance(view, str):
        raise InvalidRequestError("'view' must be a feature view name")
    key = scope.get(SCOPE_KEY)
    if key is not None:
        check_read(key, None, [view])
    plan = catalog.plan(view + ":*", False)
    lookup = plan.views[0]
    entities: Any = data.get("entities")
    n = check_entities(entities, app.settings.max_entities)
    unknown = [k for k in entities if k not in lookup.join_keys]
    if unknown:
        raise InvalidRequestError(f"unknown entity key(s) {unknown}; view {view!r} uses {lookup.join_keys}")
    keys = entity_keys(entities, lookup.join_keys, lookup.key_dtypes, n)
    version = catalog.versions().get(view)
    if lookup.aggregated:
        return await _aggregated_rows(app, view, version, keys)
    if version is None:
        head = orjson.dumps({"view": view, "version": None, "columns": ["event_timestamp_us"]})[:-1]
        app.metrics.count_statuses([NOT_FOUND] * n)
        out = head + b',"statuses":' + orjson.dumps([NOT_FOUND] * n) + b',"rows":[' + b",".join([b"null"] * n)
        return out + b"]}"
    rows = await app.store.aread_rows(view, version, keys)
    ttl, now = lookup.ttl_us, now_us()
    statuses, parts = [], []
    for row in rows:
        if row is None:
            statuses.append(NOT_FOUND)
            parts.append(b"null")
        elif ttl is not None and row_timestamp_us(row) + ttl < now:
            statuses.append(OUTSIDE_MAX_AGE)
            parts.append(b"null")
        else:
            statuses.append(PRESENT)
            parts.append(row)
    app.metrics.count_statuses(statuses)
    out = catalog.rows_header(view, version) + b',"statuses":' + orjson.dumps(statuses) + b',"rows":['
    return out + b",".join(parts) + b"]}"


async def _aggregated_rows(app: Any, view: str, version: str | None, keys: list[str]) -> bytes:
    """``/rows`` of an aggregation view: its windows at the request time, one row per entity (always present:
    an empty window is a value, 0 or null), ``event_timestamp_us`` being that time."""
    from featurestore.serving.windows import aread_aggregated

    catalog = app.catalog
    rows, _ = await aread_aggregated(app.store, catalog.state, view, version, keys, now_us())
    statuses = [PRESENT] * len(keys)
    app.metrics.count_statuses(statuses)
    head = catalog.rows_header(view, version or catalog.state.view(view).version)
    out = head + b',"statuses":' + orjson.dumps(statuses) + b',"rows":[' + b",".join(r or b"null" for r in rows)
    return out + b"]}"


@router.post(
    "/push",
    responses={**_ERRORS, 422: {"description": "Invalid rows, or the gate rejected the batch (its result)"}},
    openapi_extra=request_body(PushRequest),
    summary="Write rows online through the view's push gate",
)
async def push(request: Request) -> Response:
    data = await read_json(request)
    # Feast's body names them push_source_name and df: an error names the field the client sent.
    name_field = "view" if "view" in data or "push_source_name" not in data else "push_source_name"
    feast = "df" in data or ("rows" not in data and name_field == "push_source_name")
    rows_field = "df" if feast and "rows" not in data else "rows"
    name, rows = data.get(name_field), data.get(rows_field)
    if not isinstance(name, str):
        raise InvalidRequestError(f"{name_field!r} must be a feature view name")
    if not isinstance(rows, list | dict) or not rows:
        raise InvalidRequestError(f"{rows_field!r} must be a non-empty list of objects or an object of columns")
    return await push_response(request, name, rows, _push_mode(data, name))


@router.post(
    "/write-to-online-store",
    responses={**_ERRORS, 422: {"description": "Invalid rows, or the gate rejected the batch (its result)"}},
    openapi_extra=request_body(WriteToOnlineStoreRequest),
    summary="Feast's remote online store write (its SDK's push, write_to_online_store, materialize): rows online",
)
async def write_to_online_store(request: Request) -> Response:
    """What Feast's ``RemoteOnlineStore.online_write_batch`` posts: ``{"feature_view_name", "df": {column:
    [values]}}`` with ``event_timestamp`` and ``created`` columns; written as a push to the online store."""
    from featurestore.serving.push import PushMode

    data = await read_json(request)
    name, rows = data.get("feature_view_name"), data.get("df")
    if not isinstance(name, str):
        raise InvalidRequestError("'feature_view_name' must be a feature view name")
    if not isinstance(rows, dict) or not rows:
        raise InvalidRequestError("'df' must be a non-empty object of columns {column: [values]}")
    for flag in ("allow_registry_cache", "transform_on_write"):  # Feast's options; nothing to do with them here
        if not isinstance(data.get(flag, True), bool):
            raise InvalidRequestError(f"{flag!r} must be true or false")
    return await push_response(request, name, rows, PushMode.ONLINE)


async def push_response(request: Request, name: str, rows: Any, mode: Any) -> Response:
    """Push ``rows`` to view ``name`` (``mode``: a ``PushMode``) for the key of ``request``: the result, or a 4xx."""
    from featurestore.serving.push import push_rows

    app = request.app.state
    catalog = app.catalog
    check_push(request.scope.get(SCOPE_KEY), name, catalog.service_views)
    try:
        spec = catalog.state.view(name)
    except RegistryError as exc:
        raise NotFoundError(str(exc)) from None
    try:
        result = await run_in_threadpool(
            push_rows,
            app.settings,
            app.store,
            spec,
            rows,
            to_offline=mode.offline,
            to_online=mode.online,
            layout=app.layout,
            resolve=catalog.spec_resolver(name),
        )
    except GateRejectedError as exc:
        # public_dict names the quarantine by run id, never a server path.
        as_dict = getattr(exc.result, "public_dict", None) or getattr(exc.result, "to_dict", None)
        gate = as_dict() if as_dict is not None else None
        return Response(orjson.dumps({"detail": str(exc), "gate": gate}), status_code=422, media_type=JSON)
    app.catalog.invalidate()
    return Response(orjson.dumps(result.to_dict()), media_type=JSON)


def _push_mode(data: dict[str, Any], view: str) -> Any:
    """Where a ``/push`` writes: Feast's ``to`` (a PushMode name), else ``to_online`` / ``to_offline``."""
    from featurestore.serving.push import PushMode

    flags = [k for k in ("to_online", "to_offline") if k in data]
    if "to" in data:
        if flags:
            raise InvalidRequestError(f"give 'to' or {flags}, not both")
        return PushMode.parse(data["to"])
    to_online, to_offline = data.get("to_online", True), data.get("to_offline", False)
    for key, value in (("to_online", to_online), ("to_offline", to_offline)):
        if not isinstance(value, bool):
            raise InvalidRequestError(f"{key!r} must be true or false")
    return PushMode.of(view, to_online=to_online, to_offline=to_offline)


# Built once: liveness probes call this often.
_HEALTH = orjson.dumps({"status": "ok", "version": __version__})


@router.get("/health", summary="Liveness: the process answers (and names the featurestore version)")
async def health() -> Response:
    return Response(_HEALTH, media_type=JSON)


@router.get("/ready", responses={503: {"model": ErrorResponse}}, summary="Readiness: the online store answers")
async def ready(request: Request) -> Response:
    """503 when the store does not answer or no registry could ever be loaded; 200 "degraded" while
    a broken registry file is on disk and the last good one is served."""
    app = request.app.state
    try:
        await app.store.aping()
    except StoreUnavailableError as exc:
        return Response(orjson.dumps({"detail": redact(str(exc))}), status_code=503, media_type=JSON)
    catalog = app.catalog
    catalog.reload_registry()
    if catalog.registry_error is not None:
        status = 200 if catalog.serving else 503
        body = {"status": "degraded" if catalog.serving else "unavailable", "detail": catalog.registry_error}
        return Response(orjson.dumps(body), status_code=status, media_type=JSON)
    return Response(b'{"status":"ready"}', media_type=JSON)


@router.get("/metrics", summary="Prometheus metrics (requests, latency, statuses, store errors, freshness, gates)")
async def metrics(request: Request) -> Response:
    from featurestore.server.metrics import freshness, gate_snapshot

    app = request.app.state
    views: dict[str, dict[str, Any]] = {name: {} for name in app.catalog.state.views}
    try:
        ages = freshness(await app.store.anewest_events(), await app.store.acurrent_versions())
    except StoreUnavailableError:
        ages = {}  # the store is down: the error counters and /ready say so; freshness is unknown
    gates = await run_in_threadpool(gate_snapshot, app.settings.offline_root, list(views))
    for name, info in views.items():
        info["freshness"] = ages.get(name)
        info["gate"] = gates.get(name)
    body, content_type = app.metrics.render(views)
    return Response(body, media_type=content_type)


@router.get("/reports", responses={403: {"model": ErrorResponse}}, summary="Gate report history, newest first")
async def reports(
    request: Request,
    view: str | None = Query(None, max_length=200, description="Only the reports of this feature view."),
    limit: int = Query(50, ge=1, le=1000, description="At most this many reports."),
) -> Response:
    from featurestore.validation import list_reports

    app = request.app.state
    key = request.scope.get(SCOPE_KEY)
    allowed: set[str] | None = None
    if key is not None and (key.services is not None or key.views is not None):
        allowed = set(key.views or ())
        for service in key.services or ():
            try:
                allowed.update(v.name for v in app.catalog.plan(service, False).views)
            except RequestError:
                continue
        if view is not None and view not in allowed:
            raise ForbiddenError(f"API key {key.name!r} may not read the reports of view {view!r}")
    found = await run_in_threadpool(list_reports, app.settings.offline_root, view, None if allowed else limit)
    if allowed is not None:
        found = [r for r in found if r.get("view") in allowed][:limit]
    return Response(orjson.dumps(found, option=orjson.OPT_NON_STR_KEYS), media_type=JSON)
