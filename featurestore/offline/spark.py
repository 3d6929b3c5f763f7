"""The Spark engine: one session, offline files read by Spark, the point-in-time join and latest rows as windows."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from featurestore._optional import require
from featurestore.errors import TrainingSetError
from featurestore.offline.frames import DTypeMismatchError, entity_time_utc
from featurestore.offline.pit import ViewRequest, output_names
from featurestore.registry.spec import ViewSpec

__all__ = [
    "SPARK_DEFAULTS",
    "spark_session",
    "is_remote",
    "read_offline",
    "point_in_time_join",
    "latest_rows_frame",
    "map_partitions",
    "typed_rows",
]

TS = "event_timestamp"
_ROW = "__fs_row"
_TS = "__fs_ts"
_KIND = "__fs_kind"  # 0: a feature row, 1: an entity row (feature rows sort first at equal times)
_MATCH = "__fs_match"
_PURPOSE = 'engine = "spark"'

# What every session gets unless spark_conf says otherwise: UTC like the DuckDB connection,
# Arrow for conversions, no console progress bars in a library.
SPARK_DEFAULTS: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.showConsoleProgress": "false",
}


def _sql() -> Any:
    return require("pyspark.sql", extra="spark", purpose=_PURPOSE)


def _functions() -> Any:
    return require("pyspark.sql.functions", extra="spark", purpose=_PURPOSE)


def _col(name: str) -> Any:
    """A column by its exact name (dots and spaces included)."""
    return _functions().col("`" + name.replace("`", "``") + "`")


def spark_session(master: str = "local[*]", conf: Mapping[str, Any] | None = None) -> Any:
    """The active SparkSession, or a new one for ``master`` with ``conf`` (``SPARK_DEFAULTS`` first).

    ``master`` is ``local[*]``, ``spark://host:7077``, ``yarn``... or a Spark Connect URL
    ``sc://host:15002`` (then ``builder.remote``). Example::

        spark = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    """
    sql = _sql()
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = sql.SparkSession.builder
    builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
    settings = dict(SPARK_DEFAULTS)
    if master.startswith("local"):  # the executors' Python workers run this interpreter (and its packages)
        settings["spark.pyspark.python"] = sys.executable
    for key, value in {**settings, **{k: str(v) for k, v in (conf or {}).items()}}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def is_remote(ref: str | os.PathLike[str]) -> bool:
    """True for a URI (``s3://``, ``file://``...) that pyarrow's filesystems read; False for a local path."""
    return "://" in str(ref) if not isinstance(ref, Path) else False


def read_offline(spark: Any, files: Sequence[str | os.PathLike[str]], columns: Sequence[str] | None = None) -> Any:
    """A Spark DataFrame over offline Parquet files, local paths or URIs (``s3://...``, ``file://...``).

    Local paths go to ``spark.read.parquet``. URIs are read in the executors, one task per
    file, with pyarrow's filesystems (``mapInArrow``): Spark needs no Hadoop S3 connector,
    and the credentials are the standard AWS settings the executors see. Example::

        df = read_offline(spark, ["s3://bucket/fs/v/v=1/date=2026-01-01/part-0.parquet"], ["k", "x"])
    """
    if not files:
        raise ValueError("read_offline needs at least one file")
    remote = [str(f) for f in files if is_remote(f)]
    local = [str(f) for f in files if not is_remote(f)]
    parts = []
    if local:
        df = spark.read.parquet(*local)
        parts.append(df.select(*[_col(c) for c in columns]) if columns is not None else df)
    if remote:
        parts.append(_read_remote(spark, remote, columns))
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def _read_remote(spark: Any, uris: list[str], columns: Sequence[str] | None) -> Any:
    """Read Parquet URIs in the executors: a DataFrame of URIs, each task reading its files with pyarrow.fs."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    types = require("pyspark.sql.pandas.types", extra="spark", purpose=_PURPOSE)
    fs, path = pafs.FileSystem.from_uri(uris[0])
    schema = pq.read_schema(path, filesystem=fs)  # metadata only: the result's schema
    if columns is not None:
        schema = pa.schema([schema.field(c) for c in columns])
    names = list(schema.names)
    spark_schema = types.from_arrow_schema(schema)

    def read(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow.fs as pafs
        import pyarrow.parquet as pq

        for batch in batches:
            for uri in batch.column(0).to_pylist():
                fs, path = pafs.FileSystem.from_uri(uri)
                table = pq.read_table(path, filesystem=fs, columns=names).cast(schema)
                yield from table.to_batches(max_chunksize=65_536)

    refs = spark.createDataFrame([(u,) for u in uris], "uri string").repartition(min(len(uris), 512))
    return refs.mapInArrow(read, spark_schema)


def map_partitions(df: Any, fn: Callable[[pl.DataFrame], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``fn`` on each partition of ``df`` as a polars frame, in the executors; return its small results.

    ``fn`` is shipped to the executors (it must not hold open connections: open them inside)
    and returns a JSON-able dict per partition, e.g. the rows it wrote.
    """

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        tables = [pa.Table.from_batches([b]) for b in batches]
        frame = pl.from_arrow(pa.concat_tables(tables)) if tables else None
        if isinstance(frame, pl.DataFrame) and frame.height:
            text = orjson.dumps(fn(frame)).decode()
            yield pa.RecordBatch.from_pydict({"out": [text]})

    rows = df.mapInArrow(run, "out string").collect()
    return [orjson.loads(r[0]) for r in rows]


# -- the point-in-time join ------------------------------------------------------


def _entity_prep(
    entity: pl.DataFrame, requests: list[ViewRequest], timestamp_column: str
) -> tuple[pl.DataFrame, dict[tuple[str, str], str]]:
    """The row number, the entity time in UTC microseconds and the typed keys (aliases per (key, dtype))."""
    cols = entity.columns
    prep: list[pl.Expr] = [pl.int_range(pl.len(), dtype=pl.Int64).alias(_ROW)]
    try:
        prep.append(entity_time_utc(pl.col(timestamp_column), entity.schema[timestamp_column]).dt.epoch("us").alias(_TS))
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
        return entity.select(prep), key_alias
    except pl.exceptions.PolarsError as exc:
        raise TrainingSetError(f"entity frame cannot be joined: {type(exc).__name__}: {exc}") from None


def _check_requests(requests: list[ViewRequest]) -> None:
    for req in requests:
        if req.spec.events is not None:
            raise TrainingSetError(
                f"feature view {req.spec.name!r} is an aggregation view: its windows are computed by the "
                'DuckDB engine only; use engine = "duckdb" for training sets with it'
            )
        if not req.files:
            raise TrainingSetError(
                f"feature view {req.spec.name!r} version {req.spec.version} has no offline data; "
                f"run `featurestore ingest {req.spec.name}`"
            )


class _EntityTable:
    """The prepared entity rows as a Spark DataFrame: a Parquet file Spark reads when the session is
    local (no round trip through the driver's JVM heap), else ``createDataFrame`` from Arrow."""

    def __init__(self, spark: Any, ent: pl.DataFrame) -> None:
        self.dir: str | None = None
        master = "" if _is_connect(spark) else str(spark.sparkContext.master)
        if master.startswith("local"):
            self.dir = tempfile.mkdtemp(prefix="fs-spark-entity-")
            path = os.path.join(self.dir, "entity.parquet")
            ent.write_parquet(path)
            self.df = spark.read.parquet(path)
        else:
            self.df = spark.createDataFrame(ent.to_arrow())

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _is_connect(spark: Any) -> bool:
    return type(spark).__module__.startswith("pyspark.sql.connect")


def _view_features(
    ent: Any, req: ViewRequest, keys: list[str], bounds: tuple[int, int], names: list[str]
) -> Any:
    """(row, the view's features as ``names``) for every entity row, by one window over keys.

    Feature rows (pruned to [min entity time - ttl, max entity time]) and entity rows are one
    union; ordered by (time, kind) a feature row comes before an entity row at the same time,
    so the last feature row at or before each entity row is ``last(ignorenulls)`` up to it.
    """
    F = _functions()
    window = require("pyspark.sql.window", extra="spark", purpose=_PURPOSE).Window
    spec = req.spec
    ttl_us = None if spec.ttl is None else int(spec.ttl.total_seconds() * 1_000_000)
    lo, hi = bounds
    feats = read_offline(ent.sparkSession, list(req.files), [*spec.join_keys, TS, *req.features])
    ts = F.unix_micros(_col(TS))
    keep = ts <= F.lit(hi)
    if ttl_us is not None:
        keep = keep & (ts >= F.lit(lo - ttl_us))
    match = F.struct(ts.alias("ts"), *[_col(f).alias(f"v{i}") for i, f in enumerate(req.features)])
    feature_rows = feats.where(keep).select(
        *[_col(k).alias(f"__u{j}") for j, k in enumerate(spec.join_keys)],
        ts.alias(_TS),
        F.lit(0).alias(_KIND),
        F.lit(None).cast("long").alias(_ROW),
        match.alias(_MATCH),
    )
    match_type = feature_rows.schema[_MATCH].dataType
    entity_rows = ent.select(
        *[F.col(k).alias(f"__u{j}") for j, k in enumerate(keys)],
        F.col(_TS),
        F.lit(1).alias(_KIND),
        F.col(_ROW),
        F.lit(None).cast(match_type).alias(_MATCH),
    )
    w = (
        window.partitionBy(*[f"__u{j}" for j in range(len(keys))])
        .orderBy(F.col(_TS).asc_nulls_first(), F.col(_KIND))
        .rowsBetween(window.unboundedPreceding, window.currentRow)
    )
    last = F.last(F.col(_MATCH), ignorenulls=True).over(w)
    joined = feature_rows.unionByName(entity_rows).withColumn(_MATCH, last).where(F.col(_KIND) == 1)
    # An entity row without a time or with a null key matches nothing, as in the ASOF join.
    ok = F.col(_TS).isNotNull() & F.col(f"{_MATCH}.ts").isNotNull()
    for j in range(len(keys)):
        ok = ok & F.col(f"__u{j}").isNotNull()
    if ttl_us is not None:
        ok = ok & (F.col(f"{_MATCH}.ts") >= F.col(_TS) - F.lit(ttl_us))
    return joined.select(
        F.col(_ROW), *[F.when(ok, F.col(f"{_MATCH}.v{i}")).alias(n) for i, n in enumerate(names)]
    )


def point_in_time_join(
    spark: Any,
    entity: pl.DataFrame,
    requests: list[ViewRequest],
    *,
    timestamp_column: str = "event_timestamp",
    full_feature_names: bool = False,
    out: str | os.PathLike[str] | None = None,
) -> pl.DataFrame:
    """The point-in-time join on Spark, with the semantics of ``featurestore.offline.pit.point_in_time_join``.

    For each entity row (keys, ts) and view with ttl T: the view's row with the same keys and
    the greatest ``event_ts <= ts`` (and ``>= ts - T``), else nulls; one output row per entity
    row, in input order, entity columns unchanged. The feature rows never reach the driver;
    the joined features come back through Arrow. With ``out`` Spark also writes the feature
    columns and the row number (``__fs_row``) as a Parquet directory there. Example::

        df = point_in_time_join(spark, entity, [ViewRequest(spec, ("rating",), files)])
    """
    cols = entity.columns
    if timestamp_column not in cols:
        raise TrainingSetError(
            f"entity frame has no {timestamp_column!r} column (columns: {cols}); "
            "pass timestamp_column= to name the event time"
        )
    names = output_names(requests, cols, full_feature_names)
    _check_requests(requests)
    ent, key_alias = _entity_prep(entity, requests, timestamp_column)
    times = ent.get_column(_TS).drop_nulls()
    if times.len() == 0:  # no entity row has a time: every feature is null
        return _with_nulls(entity, requests, names)
    bounds = (int(times.min()), int(times.max()))  # type: ignore[arg-type]
    table = _EntityTable(spark, ent)
    try:
        result = table.df.select(_ROW)
        name_iter = iter(names)
        for i, req in enumerate(requests):
            keys = [key_alias[(k, str(t))] for k, t in req.spec.join_keys.items()]
            view_names = [f"__fs_f{i}_{j}" for j in range(len(req.features))]
            for _ in req.features:
                next(name_iter)
            result = result.join(_view_features(table.df, req, keys, bounds, view_names), on=_ROW, how="left")
        result = result.orderBy(_ROW)
        if out is not None:
            result.write.mode("overwrite").parquet(str(out))
        arrow = result.drop(_ROW).toArrow()
    finally:
        table.close()
    features = pl.from_arrow(arrow)
    assert isinstance(features, pl.DataFrame)
    features = features.rename(dict(zip(features.columns, names, strict=True)))
    return pl.concat([entity, features], how="horizontal")


def _dtypes(requests: list[ViewRequest], names: list[str]) -> dict[str, Any]:
    dtypes = [r.spec.features[f].polars for r in requests for f in r.features]
    return dict(zip(names, dtypes, strict=True))


def _with_nulls(entity: pl.DataFrame, requests: list[ViewRequest], names: list[str]) -> pl.DataFrame:
    nulls = [pl.lit(None, dtype=t).alias(n) for n, t in _dtypes(requests, names).items()]
    return entity.with_columns(nulls)


# -- latest rows (materialize) -------------------------------------------------


def _micros(value: datetime) -> int:
    return int(value.astimezone(UTC).timestamp()) * 1_000_000 + value.astimezone(UTC).microsecond


def latest_rows_frame(
    spark: Any, files: Sequence[str | os.PathLike[str]], spec: ViewSpec, start: datetime | None, end: datetime
) -> tuple[Any, Any]:
    """The latest row per entity key with ``start <= event_timestamp <= end`` (a lazy Spark DataFrame),
    and the rows in that range (also lazy, to count). The offline store holds one row per
    (keys, event time), so ``row_number`` picks exactly one row."""
    F = _functions()
    window = require("pyspark.sql.window", extra="spark", purpose=_PURPOSE).Window
    columns = [*spec.join_keys, TS, *spec.features]
    df = read_offline(spark, files, columns)
    ts = F.unix_micros(_col(TS))
    keep = ts <= F.lit(_micros(end))
    if start is not None:
        keep = keep & (ts >= F.lit(_micros(start)))
    in_range = df.where(keep)
    w = window.partitionBy(*[_col(k) for k in spec.join_keys]).orderBy(_col(TS).desc())
    latest = in_range.withColumn("__fs_n", F.row_number().over(w)).where(F.col("__fs_n") == 1).drop("__fs_n")
    return latest, in_range


def typed_rows(df: pl.DataFrame, spec: ViewSpec) -> pl.DataFrame:
    """A partition's rows as the DuckDB engine returns them: declared dtypes, UTC event times."""
    casts: dict[str, Any] = {k: t.polars for k, t in spec.join_keys.items()}
    casts.update({f: t.polars for f, t in spec.features.items()})
    casts[TS] = pl.Datetime("us", "UTC")
    return df.with_columns(pl.col(TS).dt.convert_time_zone("UTC")).cast(casts)  # type: ignore[arg-type]
