"""Point-in-time join: for each entity row, each view's latest row at or before its time, within ttl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from featurestore.dsl.types import DType
from featurestore.errors import TrainingSetError, one_line
from featurestore.offline.cast import cast_column
from featurestore.offline.frames import DTypeMismatchError, entity_time_utc
from featurestore.registry.spec import ViewSpec

if TYPE_CHECKING:
    from featurestore.offline.base import OfflineEngine

__all__ = [
    "ViewRequest",
    "EntityRows",
    "point_in_time_join",
    "output_names",
    "entity_rows",
    "typed_key",
    "join_inputs",
    "ROW",
    "TS",
]

ROW = "__fs_row"
TS = "__fs_ts"
_INT_KEYS = ("Int64", "Int32")


@dataclass(frozen=True)
class ViewRequest:
    """Features wanted from one view version, and the Parquet files that hold it."""

    spec: ViewSpec
    features: tuple[str, ...]
    files: tuple[Path, ...]


@dataclass(frozen=True)
class EntityRows:
    """What of an entity frame an engine joins: ``__fs_row``, ``__fs_ts`` (UTC µs) and the typed join keys.

    ``aliases`` maps (join key, dtype name) to its column in ``frame``: views that share a
    key of the same type share one column.
    """

    frame: pl.DataFrame
    aliases: dict[tuple[str, str], str]

    def key_columns(self, spec: ViewSpec) -> list[str]:
        """The columns of ``frame`` holding ``spec``'s join keys, in the view's key order."""
        return [self.aliases[(k, str(t))] for k, t in spec.join_keys.items()]


def output_names(requests: list[ViewRequest], entity_columns: list[str], full_feature_names: bool) -> list[str]:
    """The feature column names of the result; a clash is an error naming both sides."""
    names: dict[str, str] = {}
    for req in requests:
        for feat in req.features:
            out = f"{req.spec.name}__{feat}" if full_feature_names else feat
            ref = f"{req.spec.name}:{feat}"
            if out in names:
                raise TrainingSetError(
                    f"feature name {out!r} is produced by both {names[out]} and {ref}; "
                    "pass full_feature_names=True (columns named view__feature)"
                )
            if out in entity_columns:
                raise TrainingSetError(
                    f"feature {ref} would be named {out!r}, which is already a column of the entity frame"
                )
            names[out] = ref
    return list(names)


def entity_rows(entity: pl.DataFrame, requests: list[ViewRequest], timestamp_column: str) -> EntityRows:
    """The row number, the normalised time and the typed keys of ``entity``: all an engine needs of it."""
    cols = entity.columns
    prep: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt32).alias(ROW)]
    ts_dtype = entity.schema[timestamp_column]
    try:
        # Rounded down to the stored microsecond, as feature event times are rounded up.
        prep.append(entity_time_utc(pl.col(timestamp_column), ts_dtype).alias(TS))
    except DTypeMismatchError as exc:
        raise TrainingSetError(f"entity column {timestamp_column!r}: {exc}") from None
    key_alias: dict[tuple[str, str], str] = {}
    for req in requests:
        for key, dtype in req.spec.join_keys.items():
            if key not in cols:
                raise TrainingSetError(
                    f"entity frame lacks join key {key!r} of feature view {req.spec.name!r} (columns: {cols})"
                )
            if (key, str(dtype)) not in key_alias:
                alias = f"__fs_k{len(key_alias)}"
                key_alias[(key, str(dtype))] = alias
                prep.append(typed_key(entity, key, dtype, req.spec.name).alias(alias))
    try:
        return EntityRows(entity.select(prep), key_alias)
    except pl.exceptions.PolarsError as exc:
        raise TrainingSetError(f"entity frame cannot be joined: {one_line(exc)}") from None


def typed_key(entity: pl.DataFrame, key: str, dtype: DType, view: str) -> pl.Expr:
    """Entity column ``key`` as join key dtype ``dtype`` of ``view``; a value it cannot be exactly is an error.

    An integer key takes whole floats (``1.0``: pandas holds an integer column with nulls as
    floats), read as at ingest (``featurestore.offline.cast``: NaN is null). A float with a
    fraction, one outside the dtype's range, or a bool is refused: truncated, it would join
    another entity's rows.
    """
    actual = entity.schema[key]
    if dtype.name not in _INT_KEYS or not (actual.is_float() or actual == pl.Boolean):
        return pl.col(key).cast(dtype.polars, strict=True)
    typed = cast_column(key, actual, dtype)
    if typed.failed is not None:
        bad = entity.get_column(key).filter(entity.select(typed.failed).to_series())
        if bad.len():
            raise TrainingSetError(
                f"entity column {key!r}: {bad[0]!r} ({actual}, {bad.len()} of {entity.height} rows) is not "
                f"an {dtype} key of feature view {view!r}; give integers (a whole float such as 1.0 is read as one)"
            )
    return typed.value


def point_in_time_join(
    engine: OfflineEngine,
    entity: pl.DataFrame,
    requests: list[ViewRequest],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pl.DataFrame:
    """Join plain views' feature values as of each entity row's timestamp (``engine.as_of_join``).

    For each entity row (keys, ts) and view with ttl T: the view's row with the same
    keys and the greatest ``event_ts <= ts`` (and ``>= ts - T`` when T is set), else
    nulls. One output row per entity row, in input order; entity columns are kept.
    """
    rows, out_names = join_inputs(entity, requests, timestamp_column, full_feature_names)
    # Only the row number, the normalised time and the typed keys go through the engine;
    # the user's columns are stitched back unchanged, in their order.
    features = engine.as_of_join(rows, requests, out_names)
    return pl.concat([entity, features], how="horizontal")


def join_inputs(
    entity: pl.DataFrame, requests: list[ViewRequest], timestamp_column: str, full_feature_names: bool
) -> tuple[EntityRows, list[str]]:
    """The checked inputs of a plain views' join: the entity rows an engine joins and the feature column names."""
    cols = entity.columns
    if timestamp_column not in cols:
        raise TrainingSetError(
            f"entity frame has no {timestamp_column!r} column (columns: {cols}); "
            "pass timestamp_column= to name the event time"
        )
    out_names = output_names(requests, cols, full_feature_names)
    rows = entity_rows(entity, requests, timestamp_column)
    for req in requests:
        if not req.files:
            raise TrainingSetError(
                f"feature view {req.spec.name!r} version {req.spec.version} has no offline data; "
                f"run `featurestore ingest {req.spec.name}`"
            )
    return rows, out_names
