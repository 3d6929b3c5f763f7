"""Window aggregates in training sets: one engine query per aggregation view, every window for every entity row.

The SQL statement of the window rules (the online one is ``featurestore.serving.windows``):
for an entity row (keys, t) and a window w the events of the same keys with
``start < event_ts <= t``, ``start = t - w`` (``floor_g(t) - w`` with a granularity g).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import polars as pl

from featurestore.dsl.aggregation import AggFunction, int_sum_out_of_range
from featurestore.errors import TrainingSetError, one_line
from featurestore.offline.frames import DTypeMismatchError, to_utc
from featurestore.offline.pit import ViewRequest, output_names, point_in_time_join, typed_key

if TYPE_CHECKING:
    from featurestore.offline.base import OfflineEngine

__all__ = ["join_features", "window_features", "event_rows", "CREATED", "NO_CREATED"]

CREATED = "created_timestamp"
_ROW = "__fs_row"
_T = "__fs_t"
# A missing created time sorts before every real one (``last``'s tie-break).
NO_CREATED = -(2**63) + 1


def join_features(
    engine: OfflineEngine,
    entity: pl.DataFrame,
    requests: list[ViewRequest],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pl.DataFrame:
    """``point_in_time_join`` that also computes aggregation views' windows; columns in the requested order."""
    windowed = [r for r in requests if r.spec.events is not None]
    if not windowed:
        return point_in_time_join(
            engine, entity, requests, timestamp_column=timestamp_column, full_feature_names=full_feature_names
        )
    names = output_names(requests, entity.columns, full_feature_names)
    plain = [r for r in requests if r.spec.events is None]
    if plain:
        base = point_in_time_join(
            engine, entity, plain, timestamp_column=timestamp_column, full_feature_names=full_feature_names
        )
    else:
        base = entity
    parts = [base]
    for req in windowed:
        part = window_features(engine, entity, req, timestamp_column=timestamp_column)
        if full_feature_names:
            part = part.rename({f: f"{req.spec.name}__{f}" for f in part.columns})
        parts.append(part)
    return pl.concat(parts, how="horizontal").select([*entity.columns, *names])


def event_rows(df: pl.DataFrame, spec: Any, created: str, order: str, *, keep: Sequence[str] = ()) -> pl.DataFrame:
    """Typed source rows of an aggregation view as stored offline: every event, in (keys, time, created, read) order.

    Repeats of an event id (per entity) are one event: the first in that order is kept.
    """
    keys = list(spec.join_keys)
    events = spec.events
    out = df.sort([*keys, "event_timestamp", created, order], nulls_last=False, maintain_order=True)
    if events is not None and events.event_id is not None:
        eid = pl.col(events.event_id)
        repeat = eid.is_not_null() & pl.struct([*keys, events.event_id]).is_first_distinct().not_()
        out = out.filter(~repeat)
    return out.select([*keys, "event_timestamp", *spec.features, pl.col(created).alias(CREATED), *keep])


def _check_int_sums(out: pl.DataFrame, view: str, sums: list[str]) -> None:
    """Engines give sums of integers exactly (wider than Int64); one past Int64 is an error, as online."""
    for name in sums:
        col = out.get_column(name)
        if not col.dtype.is_integer() and not col.dtype.is_decimal():
            continue  # a sum of floats
        outside = col.is_not_null() & col.cast(pl.Int64, strict=False).is_null()
        if outside.any():
            row = int(outside.arg_true()[0])
            raise TrainingSetError(f"{int_sum_out_of_range(view, name, col[row])} (entity row {row})")


def window_features(
    engine: OfflineEngine, entity: pl.DataFrame, req: ViewRequest, *, timestamp_column: str = "event_timestamp"
) -> pl.DataFrame:
    """The aggregation view's requested features for each entity row, in order (one query)."""
    spec = req.spec
    events = spec.events
    assert events is not None
    if timestamp_column not in entity.columns:
        raise TrainingSetError(
            f"entity frame has no {timestamp_column!r} column (columns: {entity.columns}); "
            "pass timestamp_column= to name the event time"
        )
    wanted = [a for a in events.aggregations if a.name in req.features]
    wanted.sort(key=lambda a: req.features.index(a.name))
    try:
        t = to_utc(pl.col(timestamp_column), entity.schema[timestamp_column]).dt.epoch("us")
    except DTypeMismatchError as exc:
        raise TrainingSetError(f"entity column {timestamp_column!r}: {exc}") from None
    g = events.granularity_us
    aligned = (pl.col(_T) // g * g) if g else pl.col(_T)
    starts = sorted({a.window_us for a in wanted})
    prep: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW), t.alias(_T)]
    for j, (key, dtype) in enumerate(spec.join_keys.items()):
        if key not in entity.columns:
            raise TrainingSetError(
                f"entity frame lacks join key {key!r} of feature view {spec.name!r} (columns: {entity.columns})"
            )
        prep.append(typed_key(entity, key, dtype, spec.name).alias(f"__fs_k{j}"))
    try:
        ent = entity.select(prep).with_columns([(aligned - w).alias(f"__fs_s{w}") for w in starts])
    except pl.exceptions.PolarsError as exc:
        raise TrainingSetError(f"entity frame cannot be joined: {one_line(exc)}") from None
    out = engine.window_join(ent, req, wanted)
    _check_int_sums(out, spec.name, [a.name for a in wanted if a.function is AggFunction.SUM])
    features = spec.features
    # An entity row without a time has no window: its aggregates are null, as a plain view's features.
    out = out.with_columns(ent.get_column(_T).is_null().alias("__fs_no_time"))
    return out.select(
        [
            pl.when(~pl.col("__fs_no_time")).then(pl.col(a.name)).cast(features[a.name].polars).alias(a.name)
            for a in wanted
        ]
    )
