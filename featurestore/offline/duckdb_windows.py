"""The DuckDB window joins: a range join for sparse keys, RANGE frames over entity rows and events for dense ones."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from featurestore.dsl.aggregation import AggFunction
from featurestore.dsl.names import quote
from featurestore.errors import ConfigError
from featurestore.offline.pit import ROW

if TYPE_CHECKING:
    from featurestore.registry.spec import ViewSpec, WindowSpec

__all__ = ["WindowPlan", "WindowEstimate", "choose_window_plan", "estimate_sql", "window_sql"]

# AUTO's cost model, in ns, fitted to W2 scaled at 10,000, 1,000 and 300 cards and the example's
# views (duckdb 2.0, 2 shared cores): the range join meets every (entity row, event) pair of equal
# keys in its hash join (PAIR_COST each) and aggregates the joined rows (JOINED_COST per row and
# aggregation); frames evaluate each aggregation on every row of the union (FRAME_COST), events
# counted twice when keys are cut into time buckets.
PAIR_COST = 2.0
JOINED_COST = 15.0
FRAME_COST = 500.0
# Frames partition keys by time buckets when a key holds this many events on average (and more
# than four longest windows): DuckDB's RANGE frames slow down with the partition's size (duckdb
# 2.0, 1.1 M rows, a 7-day max: 0.4 s over 10,000 partitions, 3.1 s over 16), but buckets copy
# every event twice (W2 scaled, 100 events per key: 1.8 s without, 6 to 8 s with).
BUCKET_EVENTS = 2048


class WindowPlan(Enum):
    """How the DuckDB engine computes an aggregation view's windows for the entity rows.

    ``RANGE_JOIN``: each entity row joined with the events of its keys inside its longest window,
    then grouped per entity row; its cost is the joined rows (entity rows x events per window),
    the fastest plan for sparse keys. ``FRAMES``: the entity rows and the events of the same keys
    in one relation, partitioned by keys and ordered by time, each window a RANGE frame ending at
    the row's time; its cost is the rows sorted (events + entity rows), whatever the density.
    ``AUTO``: the plan of least estimated cost (one cheap query over the events' keys and times:
    ``WindowEstimate``).
    """

    AUTO = "auto"
    RANGE_JOIN = "range_join"
    FRAMES = "frames"

    @classmethod
    def parse(cls, value: WindowPlan | str, *, key: str = "duckdb_window_plan") -> WindowPlan:
        """A plan from its name (any case); ``ConfigError`` naming ``key`` and the plans otherwise."""
        if isinstance(value, WindowPlan):
            return value
        try:
            return cls(str(value).strip().lower())
        except ValueError:
            names = ", ".join(p.value for p in cls)
            raise ConfigError(f"config key {key!r}: unknown window plan {value!r}; use one of {names}") from None


@dataclass(frozen=True)
class WindowEstimate:
    """What AUTO weighs (from ``estimate_sql``): the range join's joined rows and candidate pairs, the
    events some window can hold, the events per key in a longest window (summed), keys and entity rows."""

    joined_rows: float
    pairs: float
    events: float
    events_per_window: float  # summed over keys
    keys: int
    entity_rows: int
    aggregations: int = 1

    @property
    def buckets(self) -> bool:
        """Whether frames cut keys into time buckets: when keys hold many events, over several windows."""
        per_key = self.events / max(self.keys, 1)
        return per_key >= BUCKET_EVENTS and self.events >= 4 * self.events_per_window

    @property
    def range_join_cost(self) -> float:
        return self.pairs * PAIR_COST + self.joined_rows * self.aggregations * JOINED_COST

    @property
    def frames_cost(self) -> float:
        copies = 2 if self.buckets else 1
        return (copies * self.events + self.entity_rows) * self.aggregations * FRAME_COST

    @property
    def dense(self) -> bool:
        return self.range_join_cost > self.frames_cost


def choose_window_plan(plan: WindowPlan, estimate: WindowEstimate | None) -> WindowPlan:
    """``plan`` itself unless AUTO; AUTO is FRAMES for a dense estimate, else RANGE_JOIN."""
    if plan is not WindowPlan.AUTO:
        return plan
    return WindowPlan.FRAMES if estimate is not None and estimate.dense else WindowPlan.RANGE_JOIN


def _bounds(ent: str, n: int, longest: int) -> str:
    """Per entity key: its rows, the earliest window start and the latest time (rows with a time)."""
    keys = ", ".join(f"__fs_k{j} AS __k{j}" for j in range(n))
    return (
        f"(SELECT {keys}, count(*) AS __n, min(__fs_s{longest}) AS __lo, max(__fs_t) AS __hi FROM {ent} "
        f"WHERE __fs_t IS NOT NULL GROUP BY ALL)"
    )


def _events_in_bounds(relation: str, ent: str, n: int, longest: int, columns: str, more: str = "") -> str:
    """The events some entity row's window can hold: keys present in ``ent``, times inside their bounds."""
    on = " AND ".join([*(f"v.__k{j} = b.__k{j}" for j in range(n)), "v.__ts > b.__lo", "v.__ts <= b.__hi"])
    return f"SELECT {columns} FROM {relation} v JOIN {_bounds(ent, n, longest)} b ON {on}{more}"


def estimate_sql(ent: str, relation: str, spec: ViewSpec, aggregations: list[WindowSpec]) -> str:
    """One row: ``WindowEstimate``'s fields but the aggregations.

    Per key: entity rows n, events m in its bounds, their time span; joined rows are n x m x the
    share of the span the longest window covers (events spread evenly in time), pairs n x m (the
    hash join on keys meets every pair before its time condition), summed over keys.
    """
    n = len(spec.join_keys)
    longest = max(a.window_us for a in aggregations)
    keys = ", ".join(f"v.__k{j}" for j in range(n))
    columns = f"{keys}, any_value(b.__n) AS __n, any_value(b.__hi - b.__lo) AS __span, count(*) AS __m"
    per_key = f"{_events_in_bounds(relation, ent, n, longest, columns)} GROUP BY {keys}"
    share = f"least(1.0, {longest} / greatest(__span, 1)::DOUBLE)"
    sums = [f"sum(__n * __m * {share})", "sum(__n * __m::DOUBLE)", "sum(__m)", f"sum(__m * {share})"]
    totals = ", ".join(f"coalesce({x}, 0)::DOUBLE" for x in sums)
    return f"SELECT {totals}, count(*), (SELECT count(*) FROM {ent}) FROM ({per_key})"


def window_sql(
    plan: WindowPlan, ent: str, relation: str, spec: ViewSpec, aggregations: list[WindowSpec], *, buckets: bool
) -> str:
    """The query giving ``aggregations`` (one column each) for every row of ``ent``, in ``__fs_row`` order.

    ``relation`` is the view's events (``__k<j>``, ``__ts``, ``__cr``, ``__seq``, value columns);
    ``buckets``: frames partition each key by time buckets (for keys with many events per window).
    """
    if plan is WindowPlan.FRAMES:
        return _frames_sql(ent, relation, spec, aggregations, buckets)
    return _range_join_sql(ent, relation, spec, aggregations)


def _range_join_sql(ent: str, relation: str, spec: ViewSpec, aggregations: list[WindowSpec]) -> str:
    dtypes = _dtypes(spec)
    selects = [f"{_aggregate(a, dtypes.get(a.column), frames=False)} AS {quote(a.name)}" for a in aggregations]
    longest = max(a.window_us for a in aggregations)
    cond = [f"e.__fs_k{j} = v.__k{j}" for j in range(len(spec.join_keys))]
    cond += ["v.__ts <= e.__fs_t", f"v.__ts > e.__fs_s{longest}"]
    return (
        f"SELECT {', '.join(selects)} FROM {ent} e LEFT JOIN {relation} v ON {' AND '.join(cond)} "
        f"GROUP BY e.{ROW} ORDER BY e.{ROW}"
    )


def _frames_sql(ent: str, relation: str, spec: ViewSpec, aggregations: list[WindowSpec], buckets: bool) -> str:
    """Entity rows and events in one relation; each window a RANGE frame over the integer µs time.

    The window ``start < event_ts <= t`` is the frame ``[t - (t - start - 1), t]`` with its peers
    (events at exactly t are in: RANGE's CURRENT ROW takes every row of equal time). Entity rows
    carry no values (null), so every aggregate skips them; ``count`` counts ``__ev`` (1 on events).
    """
    n = len(spec.join_keys)
    events = spec.events
    assert events is not None
    values = [c for c in events.columns if c != events.event_id]
    windows = sorted({a.window_us for a in aggregations})
    longest = windows[-1]
    keys = [f"__k{j}" for j in range(n)]
    # With a granularity the frame's length depends on the row (t - floor_g(t) + w): read per row.
    granular = events.granularity_us is not None
    offsets = [f"__b{w}" for w in windows] if granular else []
    event_cols = [f"v.{k}" for k in keys]
    event_cols += ["v.__ts AS __o", f"NULL::BIGINT AS {ROW}", "1::TINYINT AS __ev", "v.__cr", "v.__seq"]
    event_cols += [f"v.{quote(c)}" for c in values] + [f"0::BIGINT AS {o}" for o in offsets]
    entity_cols = [f"__fs_k{j}" for j in range(n)] + ["__fs_t", ROW, "NULL", "NULL", "NULL"]
    entity_cols += ["NULL" for _ in values]
    entity_cols += [f"coalesce(__fs_t - __fs_s{w} - 1, 0)" for w in windows] if granular else []
    partition = list(keys)
    copies = ""
    if buckets:
        # Partitions by (keys, time bucket of one horizon): a window (less than a horizon long) holds
        # events of its row's bucket and the one before, so each event goes to its bucket and the next.
        horizon = longest + (events.granularity_us or 0)
        event_cols.append(f"v.__ts // {horizon} + d.__d AS __p")
        entity_cols.append(f"__fs_t // {horizon}")
        partition.append("__p")
        copies = " CROSS JOIN (VALUES (0), (1)) d(__d)"
    union = (
        f"{_events_in_bounds(relation, ent, n, longest, ', '.join(event_cols), copies)} "
        f"UNION ALL SELECT {', '.join(entity_cols)} FROM {ent}"
    )
    defs = [
        f"__w{w} AS (PARTITION BY {', '.join(partition)} ORDER BY __o RANGE BETWEEN "
        f"{f'__b{w}' if granular else w - 1} PRECEDING AND CURRENT ROW)"
        for w in windows
    ]
    dtypes = _dtypes(spec)
    selects = [f"{_aggregate(a, dtypes.get(a.column), frames=True)} AS {quote(a.name)}" for a in aggregations]
    return (
        f"SELECT {', '.join(selects)} FROM ({union}) u WINDOW {', '.join(defs)} "
        f"QUALIFY {ROW} IS NOT NULL ORDER BY {ROW}"
    )


def _dtypes(spec: ViewSpec) -> dict[str, str]:
    events = spec.events
    assert events is not None
    return {c: str(t) for c, t in events.columns.items()}


def _aggregate(agg: WindowSpec, dtype_name: str | None, *, frames: bool) -> str:
    """One aggregation as SQL, the same rules in both plans: nulls skipped, an empty count or sum 0.

    ``frames``: over the window ``__w<w>`` of the union (entity rows have null values); else over
    the events ``v`` joined to the entity row ``e``, filtered to this window's start.
    """

    def over(call: str, condition: str = "") -> str:
        if frames:
            return call + (f" FILTER (WHERE {condition})" if condition else "") + f" OVER __w{agg.window_us}"
        inside = f"v.__ts > e.__fs_s{agg.window_us}" + (f" AND {condition}" if condition else "")
        return f"{call} FILTER (WHERE {inside})"

    f = agg.function
    col = quote(agg.column) if frames else f"v.{quote(agg.column)}"
    if f is AggFunction.COUNT:
        return over("count(__ev)" if frames else "count(v.__ts)")
    if f is AggFunction.COUNT_DISTINCT:
        return over(f"count(DISTINCT {col})")
    if f is AggFunction.SUM:
        # A sum of integers stays exact (HUGEINT); ``window_features`` refuses one past Int64.
        cast = "HUGEINT" if dtype_name in ("Int64", "Int32") else "DOUBLE"
        return f"coalesce({over(f'sum({col})')}, 0)::{cast}"
    if f is AggFunction.LAST:  # the greatest (event time, created, row in its file)
        order = "[__o, __cr, __seq]" if frames else "[v.__ts, v.__cr, v.__seq]"
        return over(f"arg_max({col}, {order})", f"{col} IS NOT NULL")
    sql = {
        AggFunction.MEAN: "avg",
        AggFunction.MIN: "min",
        AggFunction.MAX: "max",
        AggFunction.STDDEV: "stddev_samp",
    }[f]
    return over(f"{sql}({col})")
