"""Aggregation windows on Spark: every window of an aggregation view for each entity row, in one range join.

The same rule as the DuckDB engine (``featurestore.offline.aggregate``): for an entity row
(keys, t) and a window w, the events of the same keys with ``start_w < event_ts <= t``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from featurestore._optional import require
from featurestore.dsl.aggregation import AggFunction
from featurestore.offline.aggregate import CREATED, NO_CREATED
from featurestore.offline.base import SEQ, OfflineFile
from featurestore.offline.pit import ROW

if TYPE_CHECKING:
    from featurestore.registry.spec import ViewSpec, WindowSpec

__all__ = ["window_frame"]

_EVENT_TS = "event_timestamp"
_PURPOSE = 'engine = "spark"'


def window_frame(
    spark: Any,
    entity: pl.DataFrame,
    spec: ViewSpec,
    files: Sequence[OfflineFile],
    aggregations: list[WindowSpec],
    *,
    entity_table: Any,
    read_offline: Any,
) -> pl.DataFrame:
    """The aggregates of each entity row (``__fs_row``, ``__fs_t``, ``__fs_k<i>``, ``__fs_s<w>`` in µs), in row order.

    The entity rows go to Spark (``entity_table``), are left-joined with the view's events on the
    keys and ``start_longest < event_ts <= t``, and grouped per row; each aggregate keeps the
    events after its own window's start. ``last`` is the value of the greatest (event time,
    created time, position in its file) among the events with a value, as on DuckDB.
    """
    events = spec.events
    assert events is not None
    if not files:  # no events yet: every window is empty
        names = [a.name for a in aggregations]  # with_columns repeats a literal on every row (select would not)
        return entity.with_columns([pl.lit(_empty_value(a)).alias(a.name) for a in aggregations]).select(names)
    fn = require("pyspark.sql.functions", extra="spark", purpose=_PURPOSE)
    values = [c for c in events.columns if c != events.event_id]
    raw = read_offline(spark, list(files), [*spec.join_keys, _EVENT_TS, CREATED, *values], seq=True)
    ev = raw.select(
        *[_col(fn, k).alias(f"__k{j}") for j, k in enumerate(spec.join_keys)],
        fn.unix_micros(_col(fn, _EVENT_TS)).alias("__ts"),
        fn.coalesce(fn.unix_micros(_col(fn, CREATED)), fn.lit(NO_CREATED)).alias("__cr"),
        fn.col(SEQ).alias("__seq"),
        *[_col(fn, c).alias(f"__v{i}") for i, c in enumerate(values)],
    )
    value_of = {c: f"__v{i}" for i, c in enumerate(values)}
    table = entity_table(spark, entity.with_columns(pl.col(ROW).cast(pl.Int64)))
    try:
        e = table.df.alias("e")
        v = ev.alias("v")
        longest = max(a.window_us for a in aggregations)
        cond = fn.col("v.__ts") <= fn.col("e.__fs_t")
        cond = cond & (fn.col("v.__ts") > fn.col(f"e.__fs_s{longest}"))
        for j in range(len(spec.join_keys)):
            cond = cond & (fn.col(f"e.__fs_k{j}") == fn.col(f"v.__k{j}"))
        joined = e.join(v, on=cond, how="left")
        ints = {c for c, t in events.columns.items() if t.name in ("Int64", "Int32")}
        aggs = [
            _aggregate(
                fn, a, fn.col(f"v.{value_of[a.column]}") if a.column in value_of else None, a.column in ints
            ).alias(f"__a{i}")
            for i, a in enumerate(aggregations)
        ]
        grouped = joined.groupBy(fn.col(f"e.{ROW}").alias(ROW)).agg(*aggs).orderBy(ROW)
        arrow = grouped.select(*[f"__a{i}" for i in range(len(aggregations))]).toArrow()
    finally:
        table.close()
    out = pl.from_arrow(arrow)
    assert isinstance(out, pl.DataFrame)
    return out.rename({f"__a{i}": a.name for i, a in enumerate(aggregations)})


def _col(fn: Any, name: str) -> Any:
    return fn.col("`" + name.replace("`", "``") + "`")


def _empty_value(agg: WindowSpec) -> int | None:
    return 0 if agg.function in (AggFunction.COUNT, AggFunction.COUNT_DISTINCT, AggFunction.SUM) else None


def _aggregate(fn: Any, agg: WindowSpec, col: Any, integers: bool) -> Any:
    inside = fn.col("v.__ts") > fn.col(f"e.__fs_s{agg.window_us}")
    f = agg.function
    if f is AggFunction.COUNT:
        return fn.count(fn.when(inside, fn.lit(1)))
    assert col is not None, agg.column
    kept = fn.when(inside, col)
    if f is AggFunction.COUNT_DISTINCT:
        return fn.count_distinct(kept)
    if f is AggFunction.SUM:
        # A sum of integers as decimal(38,0) is exact, never wrapped; ``window_features`` refuses
        # one past Int64, as with DuckDB's HUGEINT and online.
        total = fn.sum(kept.cast("decimal(38,0)")) if integers else fn.sum(kept)
        return fn.coalesce(total, fn.lit(0))
    if f is AggFunction.LAST:
        latest = fn.when(
            inside & col.isNotNull(),
            fn.struct(*[fn.col(f"v.__{k}").alias(k) for k in ("ts", "cr", "seq")], col.alias("x")),
        )
        return fn.max(latest).getField("x")
    return {
        AggFunction.MEAN: fn.avg,
        AggFunction.MIN: fn.min,
        AggFunction.MAX: fn.max,
        AggFunction.STDDEV: fn.stddev_samp,
    }[f](kept)
