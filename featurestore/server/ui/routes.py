"""The UI's HTTP side: the static single-page app at /ui and its read-only JSON endpoints under /ui/api."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from featurestore.errors import NotFoundError, StoreUnavailableError, TrainingSetError
from featurestore.registry.store import RegistryState
from featurestore.server.auth import OPEN_PREFIX, SCOPE_KEY
from featurestore.server.ui.quality import ReportCache, quality, quarantine_page
from featurestore.server.ui.scope import Scope, service_views
from featurestore.server.ui.views import OnlineFacts, RowCounts, overview, view_detail

__all__ = ["mount_ui", "UiState", "STATIC_DIR", "UI_ASSETS"]

STATIC_DIR = Path(__file__).parent / "static"
# Served without a key (the page asks for one and sends it with each API call): see auth.OPEN_PREFIX.
UI_ASSETS = OPEN_PREFIX
_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"

router = APIRouter(prefix="/ui/api", include_in_schema=False)


@dataclass
class UiState:
    """Caches the UI keeps between requests: Parquet row counts and the parsed report history."""

    counts: RowCounts = field(default_factory=RowCounts)
    reports: ReportCache | None = None


def _json(data: Any) -> Response:
    body = orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str)
    return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})


def _context(request: Request) -> tuple[Any, RegistryState, Scope, UiState]:
    app = request.app.state
    app.catalog.reload_registry()  # a stat; the file is re-read only when it changed
    state = app.catalog.state
    ui: UiState = app.ui
    if ui.reports is None:
        ui.reports = ReportCache(app.settings.offline_root)
    return app, state, Scope.of(request.scope.get(SCOPE_KEY), state), ui


async def _online_facts(app: Any, names: list[str]) -> tuple[OnlineFacts, bool]:
    """Live version, watermark and newest event per view; (empty, False) when the store is down."""
    store = app.store
    try:
        versions = await store.acurrent_versions()
        newest = await store.anewest_events()
    except StoreUnavailableError:
        return {}, False

    def watermarks() -> OnlineFacts:
        out: OnlineFacts = {}
        for name in names:
            live = versions.get(name)
            mark = store.watermark(name, live) if live else None
            out[name] = (live, mark, newest.get((name, live)) if live else None)
        return out

    try:
        return await run_in_threadpool(watermarks), True
    except StoreUnavailableError:
        return {}, False


@router.get("/session")
async def session(request: Request) -> Response:
    """Who the key is and what it may read (the page's first call: a wrong key gets 401 here)."""
    app, state, scope, _ = _context(request)
    return _json(
        {
            "auth": app.settings.auth == "on",
            "key": scope.key_name,
            "project": state.data.get("project") or app.settings.project,
            "views": None if scope.views is None else sorted(scope.views),
            "services": None if scope.services is None else sorted(scope.services),
        }
    )


@router.get("/overview")
async def get_overview(request: Request) -> Response:
    app, state, scope, ui = _context(request)
    names = [n for n in state.views if scope.can_view(n)]
    facts, up = await _online_facts(app, names)
    assert ui.reports is not None
    data = await run_in_threadpool(overview, state, scope, facts, ui.reports.last_gates(), app.layout, ui.counts)
    data["online_available"] = up
    return _json(data)


@router.get("/views/{name}")
async def get_view(request: Request, name: str) -> Response:
    app, state, scope, ui = _context(request)
    keys, auth = app.settings.api_keys, app.settings.auth == "on"
    data = await run_in_threadpool(view_detail, state, scope, name, app.layout, ui.counts, keys, auth)
    facts, _ = await _online_facts(app, [name])
    live, mark, newest = facts.get(name, (None, None, None))
    data["online_version"], data["watermark"], data["newest_event"] = live, mark, newest
    return _json(data)


def _readable_view(state: RegistryState, scope: Scope, name: str) -> Any:
    spec = state.views.get(name)
    if spec is None:
        raise NotFoundError(f"unknown feature view {name!r}")
    scope.require_view(name)
    return spec


@router.get("/quality/{name}")
async def get_quality(request: Request, name: str) -> Response:
    app, state, scope, ui = _context(request)
    spec = _readable_view(state, scope, name)
    assert ui.reports is not None
    return _json(await run_in_threadpool(quality, ui.reports, app.settings.offline_root, name, spec.version))


@router.get("/quarantine/{name}")
async def get_quarantine(
    request: Request,
    name: str,
    check: str | None = Query(None, max_length=300),
    run: str | None = Query(None, max_length=100),
    offset: int = Query(0, ge=0, le=1_000_000_000),
    limit: int = Query(50, ge=1, le=200),
) -> Response:
    app, state, scope, ui = _context(request)
    _readable_view(state, scope, name)
    scope.require_rows(name)
    page = await run_in_threadpool(
        quarantine_page,
        app.settings.offline_root,
        name,
        check=check or None,
        run=run or None,
        offset=offset,
        limit=limit,
        counts=ui.counts,
    )
    return _json(page)


@router.get("/training-sets")
async def training_sets(request: Request) -> Response:
    app, state, scope, _ = _context(request)
    return _json(await run_in_threadpool(_training_sets, app.settings, scope))


def _training_sets(settings: Any, scope: Scope) -> list[dict[str, Any]]:
    from featurestore.offline.manifest import find_manifests, read_manifest

    out = []
    for path in find_manifests(settings.repo, skip=(settings.offline_root,)):
        try:
            data = read_manifest(path)
        except TrainingSetError:
            continue
        views = data.get("views") or {}
        if not all(scope.can_view(v) for v in views):
            continue
        output = data.get("output") or {}
        out.append(
            {
                "manifest": str(path),
                "created_at": data.get("created_at"),
                "features": data.get("features"),
                "entities": data.get("entities", {}).get("path"),
                "entity_rows": data.get("entity_rows"),
                "rows": output.get("rows"),
                "output": output.get("path"),
                "views": {n: {"version": v.get("version"), "files": len(v.get("files", []))} for n, v in views.items()},
                "rebuild": f"featurestore training-set --manifest {path} --out {output.get('path', 'again.parquet')}",
            }
        )
    return sorted(out, key=lambda m: str(m.get("created_at")), reverse=True)


@router.get("/playground")
async def playground(request: Request) -> Response:
    """What the lookup playground offers: readable services and views with their join keys and features."""
    _, state, scope, _ = _context(request)
    views = {
        name: {"join_keys": list(spec.join_keys), "features": list(spec.features)}
        for name, spec in sorted(state.views.items())
        if scope.can_view(name)
    }
    services = {}
    for name, svc in sorted(state.services.items()):
        if scope.can_service(name):
            keys: list[str] = []
            for view in service_views(state, name):
                for k in views.get(view, {}).get("join_keys", []):
                    if k not in keys:
                        keys.append(k)
            services[name] = {"join_keys": keys, "features": svc.get("features", [])}
    return _json({"views": views, "services": services, "max_entities": request.app.state.settings.max_entities})


@router.get("/skew")
async def skew(request: Request, target: str | None = Query(None, max_length=200)) -> Response:
    """The newest `featurestore skew` result per (service or view, view) that the key may read."""
    _, state, scope, ui = _context(request)
    assert ui.reports is not None
    found = [r for r in ui.reports.skew(target) if scope.can_view(str(r.get("view")))]
    return _json(found)


def mount_ui(app: FastAPI) -> None:
    """Add the UI to the server: /ui (the page), /ui/static (its assets) and /ui/api (JSON, needs a key)."""
    app.state.ui = UiState()
    index = STATIC_DIR / "index.html"

    async def page(request: Request) -> Response:
        return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def slash(request: Request) -> Response:
        return RedirectResponse("/ui")

    async def auth(request: Request) -> Response:
        # Whether the page must ask for a key before its first API call (open: it says nothing else).
        return _json({"auth": request.app.state.settings.auth == "on"})

    app.add_api_route("/ui", page, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/auth", auth, methods=["GET"], include_in_schema=False)
    app.add_api_route("/ui/", slash, methods=["GET"], include_in_schema=False)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    app.include_router(router)
