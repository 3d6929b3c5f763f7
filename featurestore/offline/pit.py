"""Point-in-time join: for each entity row, each view's latest row at or before its time, within ttl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from featurestore.dsl.names import quote
from featurestore.errors import TrainingSetError
from featurestore.offline.frames import DTypeMismatchError, entity_time_utc
from featurestore.registry.spec import ViewSpec

__all__ = ["ViewRequest", "point_in_time_join", "output_names"]

_ROW = "__fs_row"
_TS = "__fs_ts"


@dataclass(frozen=True)
class ViewRequest:
    """Features wanted from one view version, and the Parquet files that hold it."""

    spec: ViewSpec
    features: tuple[str, ...]
    files: tuple[Path, ...]


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_list(paths: tuple[Path, ...]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


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


def point_in_time_join(
    con: Any,
    entity: pl.DataFrame,
    requests: list[ViewRequest],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
) -> pl.DataFrame:
    """Join feature values as of each entity row's timestamp, as a DuckDB ASOF JOIN.

    For each entity row (keys, ts) and view with ttl T: the view's row with the same
    keys and the greatest ``event_ts <= ts`` (and ``>= ts - T`` when T is set), else
    nulls. One output row per entity row, in input order; entity columns are kept.
    """
    cols = entity.columns
    if timestamp_column not in cols:
        raise TrainingSetError(
            f"entity frame has no {timestamp_column!r} column (columns: {cols}); "
            "pass timestamp_column= to name the event time"
        )
    out_names = output_names(requests, cols, full_feature_names)
    # Only the row number, the normalised time and the typed keys go through DuckDB;
    # the user's columns are stitched back unchanged, in their order.
    prep: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.UInt32).alias(_ROW)]
    ts_dtype = entity.schema[timestamp_column]
    try:
        # Rounded down to the stored microsecond, as feature event times are rounded up.
        prep.append(entity_time_utc(pl.col(timestamp_column), ts_dtype).alias(_TS))
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
                prep.append(pl.col(key).cast(dtype.polars, strict=True).alias(alias))
    try:
        ent = entity.select(prep)
    except pl.exceptions.PolarsError as exc:
        raise TrainingSetError(f"entity frame cannot be joined: {type(exc).__name__}: {exc}") from None

    joins: list[str] = []
    selects: list[str] = []
    name_iter = iter(out_names)
    for i, req in enumerate(requests):
        if not req.files:
            raise TrainingSetError(
                f"feature view {req.spec.name!r} version {req.spec.version} has no offline data; "
                f"run `featurestore ingest {req.spec.name}`"
            )
        v = f"v{i}"
        inner = [f"{quote(k)} AS __k{j}" for j, k in enumerate(req.spec.join_keys)]
        inner.append("event_timestamp AS __ts")
        inner += [quote(f) for f in req.features]
        cond = [f"e.{key_alias[(k, str(t))]} = {v}.__k{j}" for j, (k, t) in enumerate(req.spec.join_keys.items())]
        cond.append(f"e.{_TS} >= {v}.__ts")
        joins.append(
            f"ASOF LEFT JOIN (SELECT {', '.join(inner)} FROM read_parquet({_sql_list(req.files)})) {v} "
            f"ON {' AND '.join(cond)}"
        )
        ttl = req.spec.ttl
        for feat in req.features:
            name = next(name_iter)
            if ttl is None:
                selects.append(f"{v}.{quote(feat)} AS {_q(name)}")
            else:
                micros = int(ttl.total_seconds() * 1_000_000)
                selects.append(
                    f"CASE WHEN {v}.__ts >= e.{_TS} - to_microseconds({micros}) "
                    f"THEN {v}.{quote(feat)} END AS {_q(name)}"
                )
    sql = f"SELECT {', '.join(selects)} FROM ent e {' '.join(joins)} ORDER BY e.{_ROW}"
    name = f"__fs_entity_{id(ent)}"
    con.register(name, ent)
    try:
        features = con.sql(sql.replace("FROM ent e", f"FROM {name} e")).pl()
    except duckdb.OutOfMemoryException as exc:
        raise TrainingSetError(
            f"the point-in-time join ran out of memory even spilling to disk ({exc}); "
            "raise duckdb_memory_limit (FEATURESTORE_DUCKDB_MEMORY_LIMIT)"
        ) from None
    finally:
        con.unregister(name)
    if not isinstance(features, pl.DataFrame):  # duckdb may hand back a lazy frame in newer versions
        features = features.collect()
    return pl.concat([entity, features], how="horizontal")
