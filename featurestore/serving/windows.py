"""Window aggregates at request time: encoded events of one entity -> the aggregation view's values at t.

The one online statement of the window rules (the training-set SQL is in
``featurestore.offline.aggregate``; the tests check both against a brute force written
from the definition). An *event* is stored as JSON ``[event_ts_us, created_us, seq, v1, ..., vN]``
(the view's event columns in their declared order; ``created_us`` may be null) under an
*identity*: ``"i:<event id>"`` when the view has an ``event_id`` (repeats are one event),
else a random ``"n:<hex>"`` (every event counts).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # polars only where events are encoded: lookups never load it
    import polars as pl

from featurestore.dsl.aggregation import AggFunction
from featurestore.offline.base import SEQ
from featurestore.online.codec import KEY_SEPARATOR, event_time_us
from featurestore.registry.spec import EventsSpec, ViewSpec

__all__ = [
    "EncodedEvents",
    "encode_events",
    "window_start",
    "evaluate",
    "aggregate_rows",
    "event_time_us",
    "read_aggregated",
    "aread_aggregated",
    "to_us",
]

TS = "event_timestamp"
CREATED = "created_timestamp"
_NO_CREATED = -(2**63)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(t_us: int, window_us: int, granularity_us: int | None) -> int:
    """The exclusive start of a window ending at t: ``t - w``, or ``floor_g(t) - w`` with a granularity."""
    if granularity_us:
        t_us -= t_us % granularity_us  # Python's % floors, so times before 1970 round down too
    return t_us - window_us


class EncodedEvents:
    """Events ready for ``OnlineStore.append_events``: entity keys and, per key, ``(identity, payload)`` pairs."""

    __slots__ = ("keys", "events", "count")

    def __init__(self, keys: list[str], events: list[list[tuple[str, bytes]]]) -> None:
        self.keys = keys
        self.events = events
        self.count = sum(len(e) for e in events)


def encode_events(spec: EventsSpec, join_keys: Sequence[str], df: pl.DataFrame) -> EncodedEvents:
    import polars as pl

    """Group a frame of events (keys, ``event_timestamp``, event columns, optional ``created_timestamp``
    and ``__seq``) by entity and encode them."""
    value_cols = [c for c in spec.columns if c != spec.event_id]
    key_cols = [pl.col(k).cast(pl.String) for k in join_keys]
    key = key_cols[0] if len(key_cols) == 1 else pl.concat_str(key_cols, separator=KEY_SEPARATOR)
    created = pl.col(CREATED).dt.epoch("us") if CREATED in df.columns else pl.lit(None, dtype=pl.Int64)
    seq = pl.col(SEQ) if SEQ in df.columns else pl.int_range(pl.len(), dtype=pl.Int64)
    ident = (
        pl.lit("i:") + pl.col(spec.event_id).cast(pl.String)
        if spec.event_id is not None
        else pl.lit(None, dtype=pl.String)
    )
    frame = df.select(
        key.alias("__key"),
        ident.alias("__ident"),
        pl.col(TS).dt.epoch("us").alias("__ts"),
        created.alias("__created"),
        seq.cast(pl.Int64).alias("__s"),
        *[pl.col(c) for c in value_cols],
    )
    grouped: dict[str, list[tuple[str, bytes]]] = {}
    dumps = orjson.dumps
    for row in frame.iter_rows():
        k, ident_ = row[0], row[1]
        ident_ = ident_ if ident_ is not None else "n:" + os.urandom(8).hex()
        grouped.setdefault(k, []).append((ident_, dumps(row[2:], option=orjson.OPT_SERIALIZE_NUMPY)))
    return EncodedEvents(list(grouped), list(grouped.values()))


def _last_key(event: list[Any]) -> tuple[int, int, int]:
    created = event[1]
    return (event[0], _NO_CREATED if created is None else created, event[2])


def evaluate(spec: EventsSpec, payloads: Sequence[bytes], t_us: int) -> list[Any]:
    """The value of each aggregation of ``spec`` at time ``t_us`` over one entity's events."""
    events = [orjson.loads(p) for p in payloads]
    position = {c: i + 3 for i, c in enumerate(c for c in spec.columns if c != spec.event_id)}
    out: list[Any] = []
    for agg in spec.aggregations:
        start = window_start(t_us, agg.window_us, spec.granularity_us)
        inside = [e for e in events if start < e[0] <= t_us]
        f = agg.function
        if f is AggFunction.COUNT:
            out.append(len(inside))
            continue
        i = position[agg.column]
        if f is AggFunction.LAST:
            present = [e for e in inside if e[i] is not None]
            out.append(max(present, key=_last_key)[i] if present else None)
            continue
        values = [e[i] for e in inside if e[i] is not None]
        out.append(_reduce(f, values))
    return out


def _reduce(f: AggFunction, values: list[Any]) -> Any:
    if f is AggFunction.COUNT_DISTINCT:
        return len(set(values))
    if f is AggFunction.SUM:
        if all(type(v) is int for v in values):
            return sum(values)
        return math.fsum(values)
    if not values:
        return None
    if f is AggFunction.MIN:
        return min(values)
    if f is AggFunction.MAX:
        return max(values)
    mean = math.fsum(values) / len(values)
    if f is AggFunction.MEAN:
        return mean
    if len(values) < 2:  # STDDEV (sample)
        return None
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def aggregate_rows(spec: EventsSpec, events_per_key: Sequence[Sequence[bytes]], t_us: int) -> list[bytes | None]:
    """Encoded rows ``[t, v1, ..., vN, 0]`` (as ``OnlineStore.read_rows`` returns them) for each entity at t."""
    dumps = orjson.dumps
    return [dumps([t_us, *evaluate(spec, events, t_us), 0]) for events in events_per_key]


def to_us(when: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact: no float rounding)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _version_spec(state: Any, view: str, version: str | None) -> ViewSpec:
    # Before the first push or materialize an aggregation view has no pointer: the registered
    # version's windows are all empty (counts 0), not unknown.
    return state.view(view) if version is None else state.view(view, version)


def read_aggregated(
    store: Any, state: Any, view: str, version: str | None, keys: Sequence[str], t_us: int
) -> tuple[list[bytes | None], dict[str, int]]:
    """Rows of aggregation view ``view`` for ``keys`` at ``t_us``, as ``read_rows`` gives them, and their layout."""
    spec = _version_spec(state, view, version)
    assert spec.events is not None
    rows = aggregate_rows(spec.events, store.read_events(view, spec.version, keys), t_us)
    return rows, {f: i + 1 for i, f in enumerate(spec.features)}


async def aread_aggregated(
    store: Any, state: Any, view: str, version: str | None, keys: Sequence[str], t_us: int
) -> tuple[list[bytes | None], dict[str, int]]:
    """``read_aggregated`` for the event loop (the server)."""
    spec = _version_spec(state, view, version)
    assert spec.events is not None
    rows = aggregate_rows(spec.events, await store.aread_events(view, spec.version, keys), t_us)
    return rows, {f: i + 1 for i, f in enumerate(spec.features)}
