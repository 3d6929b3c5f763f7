"""Writes that follow version pointers: a pushed row stays served across a version switch.

A view's online rows live per version, and readers follow the view's *current* pointer. A
materialization of a new version first marks it *pending*, writes it, carries every pushed
row of the current version forward into it, and only then switches the pointer. A push
writes to both the current and the pending version and then reads the pointers again; if
they changed meanwhile (a switch, a new pending version) it writes again to the versions it
missed. Each write keeps the newer row (``codec.newer``), so writing twice changes nothing
and no interleaving of pushes and materializations can lose a pushed row or bring back an
older one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import orjson
import polars as pl

from featurestore.errors import RegistryError, StoreUnavailableError
from featurestore.online.base import OnlineStore
from featurestore.online.codec import EXPIRY_TTLS, encode_rows, now_us
from featurestore.registry.spec import ViewSpec

__all__ = ["SpecResolver", "follow_live_versions", "write_to_live_versions", "carry_forward", "finish_switch"]

TS = "event_timestamp"
CREATED_US = "__created_us"
# Pointers that keep changing while a push writes (a flood of new versions) end in a 503.
_ATTEMPTS = 5
# Rows read per round trip when carrying pushed rows forward.
_CHUNK = 5000

# The spec of an applied version of the view being written (from the registry's history).
SpecResolver = Callable[[str], ViewSpec]


def frame_for(spec: ViewSpec, latest: pl.DataFrame) -> pl.DataFrame:
    """``latest`` (typed for the registered version) with the columns of version ``spec``.

    A feature the version has and the push lacks is null; one whose dtype changed is cast
    (null where the value cannot be represented).
    """
    cols = [pl.col(k) for k in spec.join_keys] + [pl.col(TS)]
    for name, dtype in spec.features.items():
        if name in latest.columns:
            cols.append(pl.col(name).cast(dtype.polars, strict=False))
        else:
            cols.append(pl.lit(None, dtype=dtype.polars).alias(name))
    cols.append(pl.col(CREATED_US))
    return latest.select(cols)


def follow_live_versions(
    store: OnlineStore, spec: ViewSpec, write: Callable[[str], int | None]
) -> tuple[str, dict[str, int]]:
    """Call ``write(version)`` once for every live version of ``spec``'s view, until the pointers hold still.

    Live: the version readers follow and one being materialized (or ``spec``'s own when the
    view has neither; it then becomes the current one unless a switch got there first). After
    writing, the pointers are read again; if they moved, the versions missed are written too.
    ``write`` returns the rows it wrote, or None when that version takes no rows from this
    write. Returns the version readers follow afterwards and the rows written per version;
    raises ``StoreUnavailableError`` when the pointers keep changing.
    """
    written: dict[str, int] = {}
    for _ in range(_ATTEMPTS):
        current, pending = store.pointers(spec.name)
        targets = [v for v in dict.fromkeys((current, pending)) if v is not None] or [spec.version]
        for version in targets:
            if version not in written:
                n = write(version)
                if n is not None:
                    written[version] = n
        if current is None and pending is None:
            store.set_current_version(spec.name, spec.version, if_absent=True)
        after = store.pointers(spec.name)
        if {v for v in after if v is not None} <= set(targets):
            return after[0] or targets[0], written
    raise StoreUnavailableError(f"push to {spec.name!r}: the view's version pointers kept changing; retry")


def write_to_live_versions(
    store: OnlineStore, spec: ViewSpec, latest: pl.DataFrame, resolve: SpecResolver
) -> tuple[str, dict[str, int], int]:
    """Write one row per entity (``latest``: keys, event time, features, ``__created_us``) to every live version.

    Returns the version readers follow afterwards, the rows written per version (newer
    rows only) and the rows of ``spec``'s version skipped as older than the ttl.
    """
    keys = list(spec.join_keys)
    expired: dict[str, int] = {}

    def write(version: str) -> int:
        vspec = spec if version == spec.version else resolve(version)
        frame = latest if vspec is spec else frame_for(vspec, latest)
        enc = encode_rows(frame, keys, list(vspec.features), vspec.ttl, created_us=pl.col(CREATED_US))
        expired[version] = enc.skipped_expired
        n = store.write_rows(spec.name, version, enc.keys, enc.rows, enc.expire_at_ms, pushed=True)
        if n:
            store.set_newest_event(spec.name, version, latest.get_column(TS).max())  # type: ignore[arg-type]
        return n

    live, written = follow_live_versions(store, spec, write)
    return live, written, expired.get(live, 0)


def carry_forward(store: OnlineStore, old: ViewSpec, new: ViewSpec) -> int:
    """Copy the rows pushed to version ``old`` into version ``new`` (newer rows only); return rows written.

    Called before ``new`` goes live, so a row pushed while ``old`` was served stays served.
    Features are matched by name; one the new version adds, or whose dtype changed, is null.
    """
    keys = store.pushed_keys(old.name, old.version)
    if not keys:
        return 0
    old_pos = {f: i + 1 for i, f in enumerate(old.features)}
    old_types, new_types = old.features, new.features
    mapping = [old_pos[f] if f in old_pos and old_types[f] == t else None for f, t in new_types.items()]
    ttl_us = None if new.ttl is None else int(new.ttl.total_seconds() * 1_000_000)
    now = now_us()
    written = 0
    for lo in range(0, len(keys), _CHUNK):
        part = keys[lo : lo + _CHUNK]
        out_keys: list[str] = []
        out_rows: list[bytes] = []
        expiry: list[int] = []
        for key, raw in zip(part, store.read_rows(old.name, old.version, part), strict=True):
            if raw is None:
                continue
            row = orjson.loads(raw)
            ts, created = row[0], row[-1]
            if ttl_us is not None:
                if ts + ttl_us <= now:
                    continue
                expiry.append((ts + EXPIRY_TTLS * ttl_us) // 1000)
            values = [None if i is None else row[i] for i in mapping]
            out_keys.append(key)
            out_rows.append(orjson.dumps([ts, *values, created]))
        if out_keys:
            written += store.write_rows(
                new.name, new.version, out_keys, out_rows, expiry if ttl_us is not None else None, pushed=True
            )
    return written


def finish_switch(
    store: OnlineStore,
    spec: ViewSpec,
    current: str | None,
    end: datetime,
    *,
    switching: bool,
    resolve: SpecResolver | None,
) -> int:
    """The end of a materialize of ``spec``: carry rows pushed to the served version, mark the watermark, switch.

    Returns the rows carried forward (0 unless the materialize switches versions and the
    served version's spec can be resolved).
    """
    carried = 0
    if switching and current is not None and resolve is not None:
        try:
            previous = resolve(current)
        except RegistryError:  # the served version is not in this registry: nothing to map rows from
            previous = None
        if previous is not None:
            carried = carry_forward(store, previous, spec)
    store.set_watermark(spec.name, spec.version, end)
    if switching:
        store.set_current_version(spec.name, spec.version)
    return carried
