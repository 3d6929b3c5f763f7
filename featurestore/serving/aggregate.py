"""Aggregation views' write paths: pushed events are appended online; materialize rebuilds the event state."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import polars as pl

from featurestore.errors import RegistryError, offline_write_errors
from featurestore.offline.aggregate import CREATED
from featurestore.offline.base import OfflineEngine
from featurestore.offline.commit import Transaction, read_snapshot, recover, retry_conflicts
from featurestore.offline.ingest import PUSHED, read_stored_day
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.online.events import superseded
from featurestore.registry.spec import EventsSpec, ViewSpec
from featurestore.serving.keys import check_key_dtypes
from featurestore.serving.versions import SpecResolver, follow_live_versions
from featurestore.serving.windows import SEQ, EncodedEvents, encode_events
from featurestore.validation import gate_for

__all__ = ["push_events", "materialize_events", "state_events", "append_offline_events"]

TS = "event_timestamp"
_CARRY_BATCH = 1000  # entities per append when carrying events to a new version


def push_events(
    settings: Any,
    store: OnlineStore,
    spec: ViewSpec,
    rows: Any,
    *,
    mode: Any = None,
    layout: OfflineLayout | None = None,
    resolve: SpecResolver | None = None,
) -> Any:
    """Append pushed rows (one event each) to an aggregation view's online state, through the push gate.

    Events go to every live version whose event columns are the same (the one readers follow
    and one being materialized); an event older than its entity's longest window (relative
    to the entity's newest event) is not kept, and a repeated event id counts once. ``mode``
    (a ``PushMode``, online by default) says whether they go online, to the offline store, or both.
    """
    from featurestore.serving.push import PushMode, PushResult, push_batch

    mode = mode or PushMode.ONLINE
    if mode.offline and layout is None:
        raise ValueError(f"push_events({mode}) needs the offline layout")
    events = spec.events
    assert events is not None
    typed_spec = spec.event_view()
    batch = push_batch(typed_spec, rows)
    received = batch.rows.height
    df, gate_result = gate_for(settings, typed_spec, "push")(batch.rows, **batch.gate_inputs())
    if "created" in df.columns:
        df = df.rename({"created": CREATED})
    encoded = encode_events(events, list(spec.join_keys), df)
    newest = df.get_column(TS).max() if df.height else None
    partitions: list[str] = []
    if mode.offline:  # first, as for plain views (push_rows): a failed offline write leaves nothing written
        assert layout is not None
        offline = df.with_columns(pl.lit(True).alias(PUSHED))  # kept by a later ingest (``write_view``)
        if CREATED not in df.columns:
            offline = offline.with_columns(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias(CREATED))
        partitions = append_offline_events(layout, spec, offline)
    written: dict[str, int] = {}
    live = spec.version  # offline only: no version reached online
    if mode.online:
        live, written = _append_to_live_versions(store, spec, events, encoded, newest, resolve)  # type: ignore[arg-type]
    served = written.get(live, 0)
    return PushResult(
        view=spec.name,
        version=live,
        rows_received=received,
        rows_written=served,
        rows_stale=encoded.count - served if mode.online else 0,
        rows_expired=0,
        offline_partitions=partitions,
        gate=gate_result,
        versions=written,
    )


def _append_to_live_versions(
    store: OnlineStore,
    spec: ViewSpec,
    events: EventsSpec,
    encoded: EncodedEvents,
    newest: datetime | None,
    resolve: SpecResolver | None,
) -> tuple[str, dict[str, int]]:
    """Append to the current and pending versions: in one step where the store checks the pointers itself
    (``append_events_live``), else following them as plain pushes do. ``events`` is ``spec.events``."""

    def horizon(version: str) -> int | None:
        if version == spec.version:
            return events.horizon_us
        other = _resolve(resolve, version)
        other_events = None if other is None else other.events  # built from the registry on each access
        if other_events is None or other_events.columns != events.columns:
            return None  # that version aggregates other events: its materialization fills it
        return other_events.horizon_us

    def targets(current: str, pending: str | None) -> list[tuple[str, int]]:
        live = [(v, horizon(v)) for v in dict.fromkeys((current, pending)) if v is not None]
        return [(v, h) for v, h in live if h is not None]

    if newest is not None:
        done = store.append_events_live(spec.name, targets, encoded.keys, encoded.events, newest)
        if done is not None:
            return done

    def append(version: str) -> int | None:
        horizon_us = horizon(version)
        if horizon_us is None:
            return None
        n = store.append_events(spec.name, version, encoded.keys, encoded.events, horizon_us)
        if n and newest is not None:
            store.set_newest_event(spec.name, version, newest)
        return n

    return follow_live_versions(store, spec, append)


def _resolve(resolve: SpecResolver | None, version: str) -> ViewSpec | None:
    if resolve is None:
        return None
    try:
        return resolve(version)
    except RegistryError:
        return None


def state_events(
    engine: OfflineEngine, layout: OfflineLayout, spec: ViewSpec, now: datetime
) -> tuple[pl.DataFrame, int]:
    """The offline events the online state holds as of ``now`` (``OfflineEngine.state_events``), and the
    events scanned, read from one snapshot of the view's files."""
    with read_snapshot(layout, [spec.name]):
        return engine.state_events(spec, layout.files(spec.name, spec.version), now)


def materialize_events(
    settings: Any,
    engine: OfflineEngine,
    layout: OfflineLayout,
    store: OnlineStore,
    spec: ViewSpec,
    end: datetime,
    resolve: SpecResolver | None = None,
) -> Any:
    """Rebuild an aggregation view's online state as of ``end`` from its offline events, through the gate.

    Each entity with recent events gets those events (replacing their stored copies,
    atomically per entity); a version readers do not see yet is marked pending, written,
    given the events of the version readers follow that its offline events lack (when the
    two aggregate the same event columns; ``resolve`` gives that version's spec), and then
    switched to.
    """
    from featurestore.serving.materialize import MaterializeResult

    check_key_dtypes(spec.name, spec.join_keys)
    events = spec.events
    assert events is not None
    began = time.perf_counter()
    current, _ = store.pointers(spec.name)
    switching = current != spec.version
    df, scanned = state_events(engine, layout, spec, end)
    gate_result = None
    if df.height:
        seq = df.get_column(SEQ)
        df, gate_result = gate_for(settings, spec.event_view(), "materialize")(df.drop(SEQ))
        if df.height == seq.len():
            df = df.with_columns(seq)
    if switching:
        store.set_pending_version(spec.name, spec.version)
    written, carried = 0, 0
    rebuilt: dict[str, list[tuple[str, bytes]]] = {}
    if df.height:
        encoded = encode_events(events, list(spec.join_keys), df)
        written = store.append_events(
            spec.name, spec.version, encoded.keys, encoded.events, events.horizon_us, replace=True
        )
        store.set_newest_event(spec.name, spec.version, df.get_column(TS).max())  # type: ignore[arg-type]
        rebuilt = dict(zip(encoded.keys, encoded.events, strict=True))
    if switching and current is not None:
        carried = _carry_events(store, spec, current, rebuilt, resolve)
    store.set_watermark(spec.name, spec.version, end)
    if switching:
        store.set_current_version(spec.name, spec.version)
    return MaterializeResult(
        view=spec.name,
        version=spec.version,
        start=None,
        end=end,
        rows_read=scanned,
        rows_written=written,
        rows_expired=0,
        seconds=time.perf_counter() - began,
        switched=switching,
        gate=gate_result,
        rows_carried=carried,
    )


def _carry_events(
    store: OnlineStore,
    spec: ViewSpec,
    current: str,
    rebuilt: dict[str, list[tuple[str, bytes]]],
    resolve: SpecResolver | None,
) -> int:
    """Add to ``spec``'s version the events of version ``current`` its rebuild does not hold (the pushes
    the offline store lacks: ``online.events.superseded`` picks the rest); returns the events added."""
    events = spec.events
    assert events is not None
    previous = _resolve(resolve, current)
    if previous is None or previous.events is None or previous.events.columns != events.columns:
        return 0  # other event columns: the new version holds what its own offline events give
    keys: list[str] = []
    batches: list[list[tuple[str, bytes]]] = []
    carried = 0
    for key, items in store.scan_events(spec.name, current):
        new = rebuilt.get(key)
        gone = set(superseded(items, new)) if new else set()
        kept = [(ident, payload) for ident, payload in items if ident not in gone]
        if kept:
            keys.append(key)
            batches.append(kept)
        if len(keys) >= _CARRY_BATCH:
            carried += store.append_events(spec.name, spec.version, keys, batches, events.horizon_us)
            keys, batches = [], []
    if keys:
        carried += store.append_events(spec.name, spec.version, keys, batches, events.horizon_us)
    return carried


def append_offline_events(layout: OfflineLayout, spec: ViewSpec, df: pl.DataFrame) -> list[str]:
    """Append events to the offline store: each day they fall on is rewritten with them after its rows."""
    with offline_write_errors(f"push to {spec.name!r}"):
        return retry_conflicts(lambda: _append_once(layout, spec, df))


def _append_once(layout: OfflineLayout, spec: ViewSpec, df: pl.DataFrame) -> list[str]:
    events = spec.events
    assert events is not None
    keys = list(spec.join_keys)
    columns = [*keys, TS, *events.columns, CREATED, PUSHED]
    df = df.select(columns)
    view, version = spec.name, spec.version
    with layout.lock(view):
        recover(layout, view)
        existing = set(layout.dates(view, version))
        days = df.get_column(TS).dt.date().cast(pl.String).alias("__date")
        parts = df.with_columns(days).partition_by("__date", as_dict=True, include_key=False)
        txn = Transaction(layout, view, version)
        try:
            for (day,), frame in sorted(parts.items()):
                if day in existing:
                    old = read_stored_day(layout, spec, str(day)).select(columns)
                    frame = pl.concat([old, frame], how="vertical_relaxed")
                # stable: events of one (keys, time) keep their arrival order (``last``'s tie-break)
                frame = frame.sort([*keys, TS], maintain_order=True)
                if events.event_id is not None:
                    eid = pl.col(events.event_id)
                    frame = frame.filter(eid.is_null() | pl.struct([*keys, events.event_id]).is_first_distinct())
                frame.write_parquet(txn.stage_path(str(day)), compression="zstd", statistics=True)
            txn.commit()
        except BaseException:
            txn.abort()
            raise
        return sorted(txn.written)
