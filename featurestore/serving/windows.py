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
import threading
import time
from bisect import bisect_right
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:  # polars only where events are encoded: lookups never load it
    import polars as pl

from featurestore.dsl.aggregation import INT64_RANGE, AggFunction, int_sum_out_of_range
from featurestore.errors import InvalidRequestError
from featurestore.offline.base import SEQ
from featurestore.online.codec import KEY_SEPARATOR, event_time_us
from featurestore.registry.spec import EventsSpec, ViewSpec

__all__ = [
    "EncodedEvents",
    "encode_events",
    "arrival_sequence",
    "window_start",
    "evaluate",
    "IntSumOutOfRangeError",
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
    """Group a frame of events (keys, ``event_timestamp``, event columns, optional ``created_timestamp``
    and ``__seq``) by entity and encode them.

    Series operations and one Python loop, no polars query: a push's batch is small, and a query
    waits on polars' thread pool, which on a busy machine costs more than the work.
    """
    import polars as pl

    n = df.height
    value_cols = [c for c in spec.columns if c != spec.event_id]
    key_parts = [_as_text(df.get_column(k)) for k in join_keys]
    keys = key_parts[0] if len(key_parts) == 1 else [KEY_SEPARATOR.join(p) for p in zip(*key_parts, strict=True)]
    ts = _epoch_us(df.get_column(TS))
    created = _epoch_us(df.get_column(CREATED)) if CREATED in df.columns else [None] * n
    if SEQ in df.columns:
        seq = df.get_column(SEQ).cast(pl.Int64).to_list()
    else:
        first = arrival_sequence(n)
        seq = list(range(first, first + n))
    if spec.event_id is not None:
        idents = ["i:" + v if v is not None else None for v in _as_text(df.get_column(spec.event_id))]
    else:
        idents = [None] * n
    values = [df.get_column(c).to_list() for c in value_cols]
    grouped: dict[str, list[tuple[str, bytes]]] = {}
    dumps, option = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY
    noise = os.urandom(8 * n).hex()  # one read for every random identity (16 hex digits each)
    for i, row in enumerate(zip(ts, created, seq, *values, strict=True)):
        ident = idents[i]
        if ident is None:
            ident = "n:" + noise[16 * i : 16 * i + 16]
        grouped.setdefault(keys[i], []).append((ident, dumps(row, option=option)))
    return EncodedEvents(list(grouped), list(grouped.values()))


def _as_text(series: pl.Series) -> list[Any]:
    """A column's values as polars casts them to text (keys, event ids), nulls as None."""
    import polars as pl

    if series.dtype == pl.String:
        return series.to_list()
    return series.cast(pl.String).to_list()


def _epoch_us(series: pl.Series) -> list[Any]:
    """A datetime column as microseconds since the epoch (``dt.epoch("us")``: a datetime's integer is its epoch
    in its unit, UTC whatever its zone), nulls as None."""
    import polars as pl

    unit = getattr(series.dtype, "time_unit", None)
    if unit == "us":
        return series.cast(pl.Int64).to_list()
    if unit == "ns":
        return [None if v is None else v // 1000 for v in series.cast(pl.Int64).to_list()]
    if unit == "ms":
        return [None if v is None else v * 1000 for v in series.cast(pl.Int64).to_list()]
    return series.to_frame().select(pl.col(series.name).dt.epoch("us")).to_series().to_list()


_arrival_lock = threading.Lock()
_arrival_next = 0


def arrival_sequence(n: int) -> int:
    """The first of ``n`` sequence numbers for pushed events: ``last``'s "later row" among pushes is arrival order.

    Offline events (materialize) carry their row in their file (from 0); pushed ones carry the
    wall clock in nanoseconds when they arrived (about 1.8e18, within Int64), made strictly
    increasing within the process, plus their row in the push. So among events tied on
    (event time, created) a pushed event is later than the offline ones and than every event
    pushed before it; pushes to different processes within the same nanoseconds have no order.
    """
    global _arrival_next
    with _arrival_lock:
        first = max(time.time_ns(), _arrival_next)
        _arrival_next = first + n
    return first


def _last_key(event: list[Any]) -> tuple[int, int, int]:
    created = event[1]
    return (event[0], _NO_CREATED if created is None else created, event[2])


class _WindowPlan:
    """An EventsSpec compiled for evaluation: its distinct windows, and per aggregation its window and column."""

    __slots__ = ("windows", "steps")

    def __init__(self, spec: EventsSpec) -> None:
        position = {c: i + 3 for i, c in enumerate(c for c in spec.columns if c != spec.event_id)}
        self.windows = sorted({a.window_us for a in spec.aggregations})
        index = {w: i for i, w in enumerate(self.windows)}
        self.steps = [
            (index[a.window_us], a.function, None if a.function is AggFunction.COUNT else position[a.column])
            for a in spec.aggregations
        ]


_PLANS: dict[Any, _WindowPlan] = {}


def _plan(spec: EventsSpec) -> _WindowPlan:
    key = (tuple(spec.columns), spec.event_id, spec.aggregations)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 1024:  # bounded: a long-lived process sees few view versions
            _PLANS.clear()
        plan = _PLANS[key] = _WindowPlan(spec)
    return plan


class IntSumOutOfRangeError(ArithmeticError):
    """A sum of integers outside Int64 (its feature's dtype): ``aggregation`` is its index in the spec."""

    def __init__(self, aggregation: int, value: int) -> None:
        super().__init__(aggregation, value)
        self.aggregation = aggregation
        self.value = value


def evaluate(spec: EventsSpec, payloads: Sequence[bytes], t_us: int) -> list[Any]:
    """The value of each aggregation of ``spec`` at time ``t_us`` over one entity's events.

    One pass: the events are parsed and sorted by time once; each distinct window is a slice
    of them (found by bisection), and each (window, column) list of values is built once for
    every aggregation that reads it. A sum of integers outside Int64 raises ``IntSumOutOfRangeError``.
    """
    plan = _plan(spec)
    loads = orjson.loads
    events = sorted((loads(p) for p in payloads), key=_event_time)  # stable: ties keep the store's order
    times = [e[0] for e in events]
    end = bisect_right(times, t_us)
    slices = [(bisect_right(times, window_start(t_us, w, spec.granularity_us), 0, end), end) for w in plan.windows]
    columns: dict[tuple[int, int], list[Any]] = {}
    out: list[Any] = []
    for window, f, i in plan.steps:
        lo, hi = slices[window]
        if i is None:  # COUNT
            out.append(max(hi - lo, 0))
            continue
        if f is AggFunction.LAST:
            present = [e for e in events[lo:hi] if e[i] is not None]
            out.append(max(present, key=_last_key)[i] if present else None)
            continue
        values = columns.get((window, i))
        if values is None:
            values = columns[(window, i)] = [e[i] for e in events[lo:hi] if e[i] is not None]
        value = _reduce(f, values)
        if f is AggFunction.SUM and type(value) is int and not INT64_RANGE[0] <= value <= INT64_RANGE[1]:
            raise IntSumOutOfRangeError(len(out), value)
        out.append(value)
    return out


def _event_time(event: list[Any]) -> int:
    return event[0]  # type: ignore[no-any-return]


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


def aggregate_rows(
    view: str, spec: EventsSpec, events_per_key: Sequence[Sequence[bytes]], t_us: int
) -> list[bytes | None]:
    """Encoded rows ``[t, v1, ..., vN, 0]`` (as ``OnlineStore.read_rows`` returns them) for each entity at t.

    A sum of integers outside Int64 is an ``InvalidRequestError`` naming the view and feature,
    as a training set refuses it (``int_sum_out_of_range``).
    """
    dumps = orjson.dumps
    try:
        return [dumps([t_us, *evaluate(spec, events, t_us), 0]) for events in events_per_key]
    except IntSumOutOfRangeError as exc:
        raise InvalidRequestError(
            int_sum_out_of_range(view, spec.aggregations[exc.aggregation].name, exc.value)
        ) from None


def to_us(when: datetime) -> int:
    """An aware datetime as microseconds since the epoch (exact: no float rounding)."""
    delta = when - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _version_spec(state: Any, view: str, version: str | None) -> ViewSpec:
    # Before the first push or materialize an aggregation view has no pointer: the registered
    # version's windows are all empty (counts 0), not unknown.
    return state.view(view) if version is None else state.view(view, version)


# (view, version) -> its EventsSpec, version and row layout: a version names one content, so this
# holds for every registry state; a lookup then skips rebuilding the spec's typed parts.
_VIEWS: dict[tuple[str, str], tuple[EventsSpec, str, dict[str, int]]] = {}


def _aggregated_view(state: Any, view: str, version: str | None) -> tuple[EventsSpec, str, dict[str, int]]:
    known = _VIEWS.get((view, version)) if version is not None else None
    if known is not None:
        return known
    spec = _version_spec(state, view, version)
    assert spec.events is not None
    found = (spec.events, spec.version, {f: i + 1 for i, f in enumerate(spec.features)})
    if version is not None:
        if len(_VIEWS) > 1024:
            _VIEWS.clear()
        _VIEWS[(view, version)] = found
    return found


def read_aggregated(
    store: Any, state: Any, view: str, version: str | None, keys: Sequence[str], t_us: int
) -> tuple[list[bytes | None], dict[str, int]]:
    """Rows of aggregation view ``view`` for ``keys`` at ``t_us``, as ``read_rows`` gives them, and their layout."""
    events, resolved, layout = _aggregated_view(state, view, version)
    return aggregate_rows(view, events, store.read_events(view, resolved, keys), t_us), layout


async def aread_aggregated(
    store: Any, state: Any, view: str, version: str | None, keys: Sequence[str], t_us: int
) -> tuple[list[bytes | None], dict[str, int]]:
    """``read_aggregated`` for the event loop (the server)."""
    events, resolved, layout = _aggregated_view(state, view, version)
    return aggregate_rows(view, events, await store.aread_events(view, resolved, keys), t_us), layout
