"""Materialization: offline store -> latest row per entity in a window -> gate -> online store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from featurestore.errors import OnlineStoreError, RegistryError
from featurestore.offline.base import OfflineEngine
from featurestore.offline.commit import read_snapshot
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.online.codec import encode_rows
from featurestore.registry.spec import ViewSpec
from featurestore.serving.keys import check_key_dtypes
from featurestore.serving.versions import SpecResolver, carry_forward
from featurestore.validation import gate_for

__all__ = ["MaterializeResult", "materialize_view", "latest_rows", "view_specs"]

TS = "event_timestamp"


@dataclass(frozen=True)
class MaterializeResult:
    """What one view's materialization did."""

    view: str
    version: str
    start: datetime | None
    end: datetime
    rows_read: int
    rows_written: int
    rows_expired: int
    seconds: float
    switched: bool
    gate: Any = None
    rows_stale: int = 0
    rows_carried: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows_written / self.seconds if self.seconds > 0 else 0.0


def latest_rows(
    engine: OfflineEngine, layout: OfflineLayout, spec: ViewSpec, start: datetime | None, end: datetime
) -> tuple[pl.DataFrame, int]:
    """The latest offline row per entity key with ``start <= event_timestamp <= end``, and rows scanned."""
    with read_snapshot(layout, [spec.name]):
        return engine.latest_rows(spec, layout.files(spec.name, spec.version), start, end)


def materialize_view(
    settings: Any,
    engine: OfflineEngine,
    layout: OfflineLayout,
    store: OnlineStore,
    spec: ViewSpec,
    start: datetime | None,
    end: datetime,
    *,
    incremental: bool = False,
    resolve: SpecResolver | None = None,
) -> MaterializeResult:
    """Write the latest row per entity of ``spec`` in [start, end] online, through the gate.

    A stored row is only replaced by a newer one (``codec.newer``), so rows pushed since
    stay, and re-running changes nothing. A version readers do not see yet is marked
    pending (pushes then write to it too), written completely (``start`` is ignored), given
    the rows pushed to the current version (``resolve`` finds that version's spec), and then
    the pointer switches to it. With ``incremental`` the window starts at the stored
    watermark. A rejecting gate raises ``GateRejectedError`` before anything is written.
    """
    if spec.events is not None:  # an aggregation view: its event state is rebuilt as of ``end``
        from featurestore.serving.aggregate import materialize_events

        return materialize_events(settings, engine, layout, store, spec, end)  # type: ignore[no-any-return]
    check_key_dtypes(spec.name, spec.join_keys)
    began = time.perf_counter()
    current, _ = store.pointers(spec.name)
    switching = current != spec.version
    if switching:
        start = None  # a version readers do not see yet is always written from the beginning
    elif incremental:
        start = store.watermark(spec.name, spec.version)
    if start is not None and start > end:
        raise OnlineStoreError(f"materialize {spec.name!r}: start {start} is after end {end}")
    df, scanned = latest_rows(engine, layout, spec, start, end)
    df, gate_result = gate_for(settings, spec, "materialize")(df)
    if switching:
        store.set_pending_version(spec.name, spec.version)
    encoded = encode_rows(df, list(spec.join_keys), list(spec.features), spec.ttl)
    written = store.write_rows(spec.name, spec.version, encoded.keys, encoded.rows, encoded.expire_at_ms)
    if len(encoded):  # rows kept as they were (newer or equal) are there too
        store.set_newest_event(spec.name, spec.version, df.get_column(TS).max())  # type: ignore[arg-type]
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
    return MaterializeResult(
        view=spec.name,
        version=spec.version,
        start=start,
        end=end,
        rows_read=scanned,
        rows_written=written,
        rows_expired=encoded.skipped_expired,
        seconds=time.perf_counter() - began,
        switched=switching,
        gate=gate_result,
        rows_stale=len(encoded) - written,
        rows_carried=carried,
    )


def view_specs(state: Any, views: Sequence[str] | None) -> list[ViewSpec]:
    """The online views to materialize (every ``online=True`` view by default)."""
    if views:
        return [state.view(v) for v in views]
    return [spec for _, spec in sorted(state.views.items()) if spec.online]
