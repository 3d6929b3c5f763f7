"""Materialization: offline store -> latest row per entity in a window -> gate -> online store."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from featurestore.errors import InvalidRequestError
from featurestore.offline.base import OfflineEngine
from featurestore.offline.commit import read_snapshot
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.online.codec import EncodedRows, encode_rows, stored_created_us
from featurestore.registry.spec import ViewSpec
from featurestore.serving.keys import check_key_dtypes
from featurestore.serving.versions import SpecResolver, finish_switch
from featurestore.validation import gate_for

__all__ = ["MaterializeResult", "materialize_view", "latest_rows", "view_specs"]

TS = "event_timestamp"
# Rows per slice encoded ahead of the write (large enough that a slice's fixed cost is noise).
_SLICE = 25_000


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

        return materialize_events(settings, engine, layout, store, spec, end, resolve)  # type: ignore[no-any-return]
    check_key_dtypes(spec.name, spec.join_keys)
    began = time.perf_counter()
    current, _ = store.pointers(spec.name)
    switching = current != spec.version
    if switching:
        start = None  # a version readers do not see yet is always written from the beginning
    elif incremental:
        start = store.watermark(spec.name, spec.version)
    if start is not None and start > end:
        # The caller's mistake (an end before the watermark), not the store's: a 422 over HTTP.
        raise InvalidRequestError(f"materialize {spec.name!r}: start {start} is after end {end}")
    if getattr(engine, "writes_from_executors", False):  # Spark: each partition is gated and written where it is
        from featurestore.serving.distributed import materialize_from_executors

        return materialize_from_executors(  # type: ignore[no-any-return]
            settings,
            engine,
            layout,
            store,
            spec,
            start,
            end,
            switching=switching,
            current=current,
            resolve=resolve,
            began=began,
        )
    df, scanned = latest_rows(engine, layout, spec, start, end)
    df, gate_result = gate_for(settings, spec, "materialize")(df)
    if switching:
        store.set_pending_version(spec.name, spec.version)
    written, encoded, expired = _write_latest(store, spec, df)
    if encoded:  # rows kept as they were (newer or equal) are there too
        store.set_newest_event(spec.name, spec.version, df.get_column(TS).max())  # type: ignore[arg-type]
    carried = finish_switch(store, spec, current, end, switching=switching, resolve=resolve)
    return MaterializeResult(
        view=spec.name,
        version=spec.version,
        start=start,
        end=end,
        rows_read=scanned,
        rows_written=written,
        rows_expired=expired,
        seconds=time.perf_counter() - began,
        switched=switching,
        gate=gate_result,
        rows_stale=encoded - written,
        rows_carried=carried,
    )


def _write_latest(store: OnlineStore, spec: ViewSpec, df: pl.DataFrame) -> tuple[int, int, int]:
    """Encode and write ``df`` (one row per entity) to ``spec``'s version; rows written, encoded, skipped as expired.

    Large frames go in slices, each encoded on a worker thread (polars runs without the GIL)
    while the previous one is written, so encoding overlaps the store's work.
    """
    keys, features = list(spec.join_keys), list(spec.features)

    def encode(part: pl.DataFrame) -> EncodedRows:
        return encode_rows(part, keys, features, spec.ttl, created_us=stored_created_us(part))

    def write(enc: EncodedRows) -> int:
        return store.write_rows(spec.name, spec.version, enc.keys, enc.rows, enc.expire_at_ms)

    slices = [df.slice(lo, _SLICE) for lo in range(0, df.height, _SLICE)] or [df]
    if len(slices) == 1:
        enc = encode(df)
        return write(enc), len(enc), enc.skipped_expired
    from concurrent.futures import ThreadPoolExecutor

    written = encoded = expired = 0
    with ThreadPoolExecutor(1, thread_name_prefix="materialize-encode") as pool:
        ahead = pool.submit(encode, slices[0])
        for nxt in [*slices[1:], None]:
            enc = ahead.result()
            if nxt is not None:
                ahead = pool.submit(encode, nxt)
            written += write(enc)
            encoded += len(enc)
            expired += enc.skipped_expired
    return written, encoded, expired


def view_specs(state: Any, views: Sequence[str] | None) -> list[ViewSpec]:
    """The online views to materialize (every ``online=True`` view by default)."""
    if views:
        return [state.view(v) for v in views]
    return [spec for _, spec in sorted(state.views.items()) if spec.online]
