"""The describe command: one view, service or entity with everything registered and stored about it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, format_duration, open_store
from featurestore.errors import RegistryError, did_you_mean

__all__ = ["register", "describe"]


def _facts(title: str, rows: list[tuple[str, str]]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _source(raw: dict[str, Any]) -> str:
    src = raw.get("source") or {}
    where = src.get("path") or src.get("query") or ""
    text = f"{src.get('kind', '?')} {where}, timestamp={src.get('timestamp')}"
    return text + (f", created={src['created']}" if src.get("created") else "")


def _transform(raw: dict[str, Any]) -> str:
    t = raw.get("transform")
    if not t:
        return "none"
    if isinstance(t, dict):
        kind = t.get("kind", "")
        body = str(t.get("source") or t.get("sql") or t.get("name") or "")
        first = body.strip().splitlines()[0] if body.strip() else ""
        return f"{kind}: {first}" if first else str(kind)
    return str(t)


def _versions(state: Any, name: str) -> str:
    applied: dict[str, str] = {}
    for entry in state.history:
        version = (entry.get("views") or {}).get(name)
        if version and version not in applied:
            applied[version] = str(entry.get("applied_at", ""))
    current = state.view(name).version
    return ", ".join(f"{v} ({when}{', current' if v == current else ''})" for v, when in applied.items()) or current


def _online(store: Any, name: str, version: str) -> tuple[str, str]:
    """The online version pointer and watermark, or why they cannot be shown (never an error)."""
    url = store.settings.online_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return "not materialized yet", "-"
    try:
        online = store.online_store()
        live = online.current_version(name)
        mark = online.watermark(name, version)
        newest = online.newest_events().get((name, version))
    except Exception as exc:  # an unreachable store is a fact to show, not a failure of describe
        return f"unavailable ({type(exc).__name__})", "-"
    pointer = "not materialized yet" if live is None else live + ("" if live == version else " (older version)")
    marks = "-" if mark is None else mark.isoformat(timespec="seconds")
    if newest is not None:
        marks += f"; newest event {newest.isoformat(timespec='seconds')}"
    return pointer, marks


def _last_gate(store: Any, name: str) -> str:
    reports = store.reports(name, 1)
    if not reports:
        return "none yet"
    r = reports[0]
    when = str(r.get("time", ""))[:19]
    return f"{r.get('status')} on {r.get('path')} at {when} (run {r.get('run_id')}): {r.get('message')}"


def describe_view(store: Any, state: Any, name: str) -> None:
    spec = state.view(name)
    raw = spec.raw
    pointer, watermark = _online(store, name, spec.version) if spec.online else ("offline only (online=False)", "-")
    gate = raw.get("gate")
    rows = [
        ("version", spec.version),
        ("entities", ", ".join(raw.get("entities") or [])),
        ("join keys", ", ".join(f"{k}:{t}" for k, t in spec.join_keys.items())),
        ("source", _source(raw)),
        ("transform", _transform(raw)),
        ("ttl", format_duration(raw.get("ttl_seconds"))),
        ("gate", "default" if gate is None else ", ".join(f"{k}={v}" for k, v in gate.items())),
        ("online", pointer),
        ("watermark", watermark),
        ("last gate", _last_gate(store, name)),
        ("versions", _versions(state, name)),
        ("module", str(raw.get("module", ""))),
    ]
    rows += [(k, str(raw[k])) for k in ("description", "owner") if raw.get(k)]
    if raw.get("tags"):
        rows.append(("tags", ", ".join(f"{k}={v}" for k, v in raw["tags"].items())))
    _facts(f"feature view {name}", rows)
    table = Table(title="features", title_justify="left")
    for col in ("feature", "dtype", "checks", "description"):
        table.add_column(col, overflow="fold")
    for f in raw["features"]:
        checks = ", ".join(str(c.get("name") or c.get("repr") or c) for c in f.get("checks") or []) or "-"
        table.add_row(f["name"], f["dtype"], checks, f.get("description") or "")
    console.print(table)


def describe_service(state: Any, name: str) -> None:
    svc = state.services[name]
    by_view: dict[str, list[str]] = {}
    for ref in svc["features"]:
        view, _, feat = ref.partition(":")
        by_view.setdefault(view, []).append(feat)
    views = state.views
    rows = [
        (view, f"v={views[view].version if view in views else '?'}: " + ", ".join(feats))
        for view, feats in by_view.items()
    ]
    rows += [("description", svc["description"])] if svc.get("description") else []
    rows.append(("module", str(svc.get("module", ""))))
    _facts(f"feature service {name} ({len(svc['features'])} features)", rows)


def describe_entity(state: Any, name: str) -> None:
    ent = state.entities[name]
    views = {v: s for v, s in state.views.items() if name in (s.raw.get("entities") or [])}
    keys = []
    for key, dtype in ent["join_keys"].items():
        # A key declared without a dtype is typed from the data: show what the views registered.
        typed = {str(s.join_keys.get(key)) for s in views.values() if key in s.join_keys}
        keys.append(f"{key}:{dtype or '/'.join(sorted(typed)) or 'from the data'}")
    services = [s for s, svc in state.services.items() if any(f.split(":")[0] in views for f in svc["features"])]
    rows = [
        ("join keys", ", ".join(keys)),
        ("views", ", ".join(sorted(views)) or "-"),
        ("services", ", ".join(sorted(services)) or "-"),
        ("module", str(ent.get("module", ""))),
    ]
    rows += [("description", ent["description"])] if ent.get("description") else []
    _facts(f"entity {name}", rows)


def describe(
    name: str = typer.Argument(..., help="A feature view, feature service or entity name."),
    repo: Path | None = RepoOption,
) -> None:
    """Show a view (features, dtypes, checks, versions, ttl, source, online state, last gate), service or entity."""
    with errors_to_exit():
        store = open_store(repo)
        state = store.state()
        found = False
        if name in state.views:
            describe_view(store, state, name)
            found = True
        if name in state.services:
            describe_service(state, name)
            found = True
        if name in state.entities:
            describe_entity(state, name)
            found = True
        if not found:
            known = [*state.views, *state.services, *state.entities]
            if not known:
                raise RegistryError("the registry is empty; run `featurestore apply` first")
            raise RegistryError(
                f"no feature view, service or entity named {name!r}{did_you_mean(name, known)}; see `featurestore list`"
            )


def register(app: typer.Typer) -> None:
    """Add ``describe`` to ``app``."""
    app.command()(describe)
