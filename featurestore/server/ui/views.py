"""The UI's registry pages as JSON: the overview of views and services, and one view's details and lineage."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from featurestore.config import ApiKey
from featurestore.errors import NotFoundError
from featurestore.offline.layout import OfflineLayout
from featurestore.registry.store import RegistryState
from featurestore.server.ui.scope import Scope, service_views

__all__ = ["RowCounts", "overview", "view_detail", "field_diff", "OnlineFacts", "COUNTS_FILE"]

# Online facts per view: (live version, watermark, newest event time).
OnlineFacts = dict[str, tuple[str | None, datetime | None, datetime | None]]


# Where the overview keeps the row counts of view versions between restarts (under the offline root).
COUNTS_FILE = "_ui/row_counts.json"
# A version whose folders changed less than this long ago is counted but not cached: directory times
# tick coarsely, and a commit in the same tick as the count must not hide behind an unchanged time.
SETTLE_NS = 2_000_000_000


class RowCounts:
    """Row counts of Parquet files from their footers, and of whole view versions, without reading data.

    Files are cached per (path, mtime, size). A view version's total is cached under the times of its
    folder and of its view's transaction folder: every offline write is a commit that creates and then
    removes a folder there after its swap, so an unchanged signature means unchanged files, and the
    overview neither opens a footer nor lists partitions. Version totals are kept in
    ``<offline_root>/_ui/row_counts.json`` so a restarted server's first overview is cheap too.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._cache: dict[str, tuple[tuple[int, int], int]] = {}
        self._versions: dict[str, tuple[list[int], int, int]] | None = None
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.footers_read = 0

    def rows(self, path: Path | str) -> int:
        import pyarrow.parquet as pq

        if isinstance(path, str) and path.startswith("s3://"):
            return self._object_rows(path)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return 0
        stamp = (st.st_mtime_ns, st.st_size)
        key = str(path)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        try:
            n = int(pq.read_metadata(path).num_rows)
        except (OSError, ValueError):  # a file being replaced: count it next time
            return 0
        with self._lock:
            self.footers_read += 1
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[key] = (stamp, n)
        return n

    def version(self, layout: OfflineLayout, view: str, version: str) -> tuple[int, int]:
        """``(rows, partitions)`` of one view version, from the version cache while no commit touched it."""
        signature = _signature(layout, view, version)
        files: list[Any]
        if signature is None:  # a write in progress, or object storage (its file names are never reused)
            files = list(layout.files(view, version))
            return sum(self.rows(f) for f in files), len(files)
        key = f"{view}/{version}"
        versions = self._load(layout)
        hit = versions.get(key)
        if hit is not None and hit[0] == signature:
            return hit[1], hit[2]
        files = list(layout.files(view, version))
        rows = sum(self.rows(f) for f in files)
        if time.time_ns() - max(signature) > SETTLE_NS:
            with self._lock:
                versions[key] = (signature, rows, len(files))
                _save(layout, versions)
        return rows, len(files)

    def _load(self, layout: OfflineLayout) -> dict[str, tuple[list[int], int, int]]:
        if self._versions is None:
            import orjson

            try:
                data = orjson.loads((layout.root / COUNTS_FILE).read_bytes())
                self._versions = {k: (list(v[0]), int(v[1]), int(v[2])) for k, v in data.items()}
            except (OSError, ValueError, TypeError, IndexError, AttributeError):  # absent or unreadable: recount
                self._versions = {}
        return self._versions

    def _object_rows(self, uri: str) -> int:
        """An object-storage file's rows: its name is never reused (object_log.py), so no stamp is needed."""
        import pyarrow.parquet as pq

        from featurestore.storage import open_storage

        hit = self._cache.get(uri)
        if hit is not None:
            return hit[1]
        storage = open_storage("s3://" + uri.removeprefix("s3://").partition("/")[0])
        try:
            n = int(pq.read_metadata(storage.fs_path(uri), filesystem=storage.filesystem()).num_rows)
        except (OSError, ValueError):  # collected meanwhile: the next listing will not name it
            return 0
        with self._lock:
            if len(self._cache) >= self.max_entries:
                self._cache.clear()
            self._cache[uri] = ((0, 0), n)
        return n


def _signature(layout: OfflineLayout, view: str, version: str) -> list[int] | None:
    """The times of a version's folder and of its view's transaction folder; None while a write is staged."""
    version_dir = layout.version_dir(view, version)
    if not isinstance(version_dir, Path):  # object storage: no folder times to key a cache on
        return None
    txn = layout.txn_root(view)
    try:
        folder = os.stat(version_dir).st_mtime_ns
    except FileNotFoundError:
        return None
    try:
        txn_time = os.stat(txn).st_mtime_ns
        if any(txn.iterdir()):
            return None  # a write is staged or being swapped: count, do not cache
    except FileNotFoundError:
        txn_time = 0
    return [folder, txn_time]


def _save(layout: OfflineLayout, versions: dict[str, tuple[list[int], int, int]]) -> None:
    import orjson

    path = layout.root / COUNTS_FILE
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(orjson.dumps(versions))
        tmp.replace(path)  # several workers may save: each writes a whole file
    except OSError:  # a read-only offline root: the in-memory cache still serves
        pass


def _partition(counts: RowCounts, f: Path | str) -> dict[str, Any]:
    """One partition file of the view page: its date, rows and bytes (bytes unknown on object storage)."""
    if isinstance(f, str):
        return {"date": f.rsplit("/", 2)[-2].removeprefix("date="), "rows": counts.rows(f), "bytes": None}
    return {"date": f.parent.name.removeprefix("date="), "rows": counts.rows(f), "bytes": f.stat().st_size}


def _freshness_limit(raw: dict[str, Any]) -> float | None:
    """Seconds past which a view is stale: its ``freshness`` check, else its ttl."""
    gate = raw.get("gate") or {}
    limit = gate.get("freshness_seconds") if isinstance(gate, dict) else None
    return limit if limit is not None else raw.get("ttl_seconds")


def overview(
    state: RegistryState,
    scope: Scope,
    online: OnlineFacts,
    gates: dict[str, dict[str, Any]],
    layout: OfflineLayout,
    counts: RowCounts,
    now: float | None = None,
) -> dict[str, Any]:
    """Every readable view (versions, freshness, last gate, offline rows) and service."""
    now = time.time() if now is None else now
    views = []
    for name, spec in sorted(state.views.items()):
        if not scope.can_view(name):
            continue
        raw = spec.raw
        live, watermark, newest = online.get(name, (None, None, None))
        age = None if newest is None else max(0.0, now - newest.timestamp())
        limit = _freshness_limit(raw)
        gate = gates.get(name)
        rows, partitions = counts.version(layout, name, spec.version)
        views.append(
            {
                "name": name,
                "version": spec.version,
                "online_version": live,
                "online": spec.online,
                "watermark": None if watermark is None else watermark.isoformat(),
                "newest_event": None if newest is None else newest.isoformat(),
                "freshness_seconds": age,
                "freshness_limit_seconds": limit,
                "stale": age is not None and limit is not None and age > limit,
                "ttl_seconds": raw.get("ttl_seconds"),
                "features": len(raw.get("features", [])),
                "entities": raw.get("entities", []),
                "gate": gate,
                "offline_rows": rows,
                "partitions": partitions,
                "description": raw.get("description"),
            }
        )
    services = [
        {
            "name": name,
            "description": svc.get("description"),
            "features": len(svc.get("features", [])),
            "views": service_views(state, name),
        }
        for name, svc in sorted(state.services.items())
        if scope.can_service(name)
    ]
    return {"views": views, "services": services, "registry_serial": state.serial}


def _feature_map(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in spec.get("features", [])}


def field_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[dict[str, Any]]:
    """Field-level changes from one registered spec of a view to the next: ``{field, old, new}`` rows."""
    if old is None:
        return [{"field": "view", "old": None, "new": "created"}]
    rows: list[dict[str, Any]] = []
    of, nf = _feature_map(old), _feature_map(new)
    for name in nf.keys() - of.keys():
        rows.append({"field": f"feature {name}", "old": None, "new": nf[name]["dtype"]})
    for name in sorted(of.keys() - nf.keys()):
        rows.append({"field": f"feature {name}", "old": of[name]["dtype"], "new": None})
    for name in sorted(of.keys() & nf.keys()):
        for attr in ("dtype", "description", "checks"):
            if of[name].get(attr) != nf[name].get(attr):
                rows.append({"field": f"feature {name}.{attr}", "old": of[name].get(attr), "new": nf[name].get(attr)})
    for key in ("join_keys", "source", "transform", "ttl_seconds", "gate", "online", "tags", "owner", "description"):
        if old.get(key) != new.get(key):
            rows.append({"field": key, "old": old.get(key), "new": new.get(key)})
    return sorted(rows, key=lambda r: (not r["field"].startswith("feature"), r["field"]))


def _history(state: RegistryState, name: str) -> list[dict[str, Any]]:
    """Each apply that touched the view, newest first, with its change lines and field-level diff."""
    versions = state.data.get("versions", {}).get(name, {})
    out = []
    previous: str | None = None
    for entry in state.history:
        version = (entry.get("views") or {}).get(name)
        lines = [c for c in entry.get("changes", []) if f" view {name}" in f" {c.split(':', 1)[0]}"]
        if version is None and previous is None:
            continue
        if version == previous and not lines:
            continue
        old = versions.get(previous) if previous else None
        diff = field_diff(old, versions[version]) if version in versions and version != previous else []
        out.append(
            {
                "serial": entry.get("serial"),
                "applied_at": entry.get("applied_at"),
                "version": version,
                "previous_version": previous,
                "changes": lines or (["view removed"] if version is None else []),
                "diff": diff,
            }
        )
        previous = version
    out.reverse()
    return out


def _keys_reading(name: str, state: RegistryState, keys: tuple[ApiKey, ...], auth: bool) -> list[dict[str, Any]]:
    if not auth:
        return [{"name": "(auth off: anyone)", "scope": "all"}]
    out = []
    for key in keys:
        scope = Scope.of(key, state)
        if scope.can_view(name):
            what = "all" if scope.views is None else ", ".join(sorted((key.services or ()) + (key.views or ())))
            out.append({"name": key.name, "scope": what})
    return out


def view_detail(
    state: RegistryState,
    scope: Scope,
    name: str,
    layout: OfflineLayout,
    counts: RowCounts,
    keys: tuple[ApiKey, ...],
    auth: bool,
) -> dict[str, Any]:
    """One view: features with dtypes, descriptions and checks; source and transform; history; partitions; lineage."""
    spec = state.views.get(name)
    if spec is None:
        raise NotFoundError(f"unknown feature view {name!r}")
    scope.require_view(name)
    raw = spec.raw
    partitions = [_partition(counts, f) for f in layout.files(name, spec.version)]
    services = [s for s in sorted(state.services) if name in service_views(state, s) and scope.can_service(s)]
    return {
        "name": name,
        "version": spec.version,
        "description": raw.get("description"),
        "owner": raw.get("owner"),
        "tags": raw.get("tags") or {},
        "module": raw.get("module"),
        "entities": raw.get("entities", []),
        "join_keys": raw.get("join_keys", {}),
        "ttl_seconds": raw.get("ttl_seconds"),
        "online": spec.online,
        "features": raw.get("features", []),
        "gate": raw.get("gate"),
        "source": raw.get("source"),
        "transform": raw.get("transform"),
        "history": _history(state, name),
        "partitions": partitions,
        "offline_rows": sum(p["rows"] for p in partitions),
        "offline_glob": layout.glob(name, spec.version),
        "lineage": {
            "source": raw.get("source"),
            "transform": (raw.get("transform") or {}).get("kind"),
            "view": name,
            "services": services,
            "keys": _keys_reading(name, state, keys, auth),
        },
    }
