"""The Spark engine: offline files read by Spark, the point-in-time join and latest rows as window functions."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from featurestore._optional import require
from featurestore.errors import DefinitionError, TrainingSetError
from featurestore.offline.aggregate import CREATED
from featurestore.offline.base import SEQ, OfflineEngine, OfflineFile, apply_transform
from featurestore.offline.pit import ROW, TS, EntityRows, ViewRequest, join_inputs
from featurestore.offline.spark_transform import per_key_transform

if TYPE_CHECKING:
    from featurestore.dsl.view import FeatureView
    from featurestore.registry.spec import ViewSpec, WindowSpec

__all__ = ["SparkEngine", "SPARK_DEFAULTS", "spark_session", "is_remote", "read_offline", "map_partitions"]

_EVENT_TS = "event_timestamp"
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


def _functions() -> Any:
    return require("pyspark.sql.functions", extra="spark", purpose=_PURPOSE)


def _window() -> Any:
    return require("pyspark.sql.window", extra="spark", purpose=_PURPOSE).Window


def _col(name: str) -> Any:
    """A column by its exact name (dots and spaces included)."""
    return _functions().col("`" + name.replace("`", "``") + "`")


def spark_session(master: str = "local[*]", conf: Mapping[str, Any] | None = None) -> Any:
    """The active SparkSession, or a new one for ``master`` with ``conf`` (over ``SPARK_DEFAULTS``).

    ``master`` is ``local[*]``, ``spark://host:7077``, ``yarn``... or a Spark Connect URL
    ``sc://host:15002`` (then ``builder.remote``). Example::

        spark = spark_session("local[2]", {"spark.sql.shuffle.partitions": "4"})
    """
    sql = require("pyspark.sql", extra="spark", purpose=_PURPOSE)
    active = sql.SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = sql.SparkSession.builder
    builder = builder.remote(master) if master.startswith("sc://") else builder.master(master)
    settings = dict(SPARK_DEFAULTS)
    if master.startswith("local"):  # the Python workers run this interpreter (and its packages)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in {**settings, **{k: str(v) for k, v in (conf or {}).items()}}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def is_remote(ref: OfflineFile) -> bool:
    """True for a URI (``s3://``, ``file://``...) that pyarrow's filesystems read; False for a local path."""
    return not isinstance(ref, Path) and "://" in str(ref)


def read_offline(
    spark: Any, files: Sequence[OfflineFile], columns: Sequence[str] | None = None, *, seq: bool = False
) -> Any:
    """A Spark DataFrame over offline Parquet files: local paths or URIs (``s3://...``, ``file://...``).

    Local paths go to ``spark.read.parquet``. URIs are read in the executors, one task per
    file, with pyarrow's filesystems (``mapInArrow`` over a DataFrame of URIs): Spark needs no
    Hadoop S3 connector, and the credentials are the standard AWS settings the executors see.
    With ``seq`` every file is read that way and gets ``__seq``, the row's position in its file.
    Example::

        df = read_offline(spark, ["s3://bucket/fs/v/v=1/date=2026-01-01/part-0.parquet"], ["k", "x"])
    """
    if not files:
        raise ValueError("read_offline needs at least one file")
    local = [str(f) for f in files if not is_remote(f)]
    if local and not seq and len(local) == len(files):
        df = spark.read.parquet(*local)
        return df.select(*[_col(c) for c in columns]) if columns is not None else df
    return _read_in_executors(spark, [str(f) for f in files], columns, seq)


def _read_in_executors(spark: Any, refs: list[str], columns: Sequence[str] | None, seq: bool) -> Any:
    """Parquet files read by pyarrow in the executors: a DataFrame of references, one file per task."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = require("pyspark.sql.pandas.types", extra="spark", purpose=_PURPOSE)
    fs, path = _filesystem(refs[0])
    schema = pq.read_schema(path, filesystem=fs)  # metadata only: the result's schema
    fields = [_plain(schema.field(c)) for c in (columns if columns is not None else schema.names)]
    if seq:
        fields.append(pa.field(SEQ, pa.int64()))
    schema = pa.schema(fields)
    names = [f.name for f in fields if f.name != SEQ] if seq else [f.name for f in fields]

    def read(batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            for ref in batch.column(0).to_pylist():
                fs, path = _filesystem(ref)
                table = pq.read_table(path, filesystem=fs, columns=names)
                if seq:
                    table = table.append_column(SEQ, pa.array(range(table.num_rows), pa.int64()))
                yield from table.cast(schema).to_batches(max_chunksize=65_536)

    frame = spark.createDataFrame([(r,) for r in refs], "ref string")
    return frame.repartition(min(len(refs), 512)).mapInArrow(read, types.from_arrow_schema(schema))


def _plain(field: Any) -> Any:
    """``field`` with the large Arrow types polars writes (large_list, large_string) as the ones Spark reads."""
    import pyarrow as pa

    def plain(t: Any) -> Any:
        if pa.types.is_large_list(t) or pa.types.is_list(t):
            return pa.list_(plain(t.value_type))
        if pa.types.is_large_string(t):
            return pa.string()
        if pa.types.is_large_binary(t):
            return pa.binary()
        return t

    return field.with_type(plain(field.type))


def _filesystem(ref: str) -> tuple[Any, str]:
    import pyarrow.fs as pafs

    if "://" in ref:
        fs, path = pafs.FileSystem.from_uri(ref)
        return fs, path
    return pafs.LocalFileSystem(), os.path.abspath(ref)


def map_partitions(df: Any, fn: Callable[[pl.DataFrame], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run ``fn`` on each non-empty partition of ``df`` as a polars frame, in the executors; its results.

    ``fn`` is shipped to the executors (it opens its own connections inside) and returns a
    small JSON-able dict per partition, e.g. the rows it wrote. Example::

        counts = map_partitions(df, lambda part: {"rows": part.height})
    """

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        tables = [pa.Table.from_batches([b]) for b in batches]
        frame = pl.from_arrow(pa.concat_tables(tables)) if tables else None
        if isinstance(frame, pl.DataFrame) and frame.height:
            yield pa.RecordBatch.from_pydict({"out": [orjson.dumps(fn(frame)).decode()]})

    return [orjson.loads(r[0]) for r in df.mapInArrow(run, "out string").collect()]


def _micros(value: datetime) -> int:
    value = value.astimezone(UTC)
    return int(value.replace(microsecond=0).timestamp()) * 1_000_000 + value.microsecond


def _to_polars(df: Any) -> pl.DataFrame:
    out = pl.from_arrow(df.toArrow())
    assert isinstance(out, pl.DataFrame)
    return out


class SparkEngine(OfflineEngine):
    """Apache Spark: the offline store read and joined by a cluster (or ``local[*]``).

    The session is the active one or is built from ``master`` and ``conf`` on first use
    (``spark_session``). Training sets and latest rows run as window functions in Spark and
    only their results come back (through Arrow); ``latest_frame`` and ``map_partitions`` let
    materialization write from the executors. Aggregation views' windows are one range join per view.

    Example::

        engine = SparkEngine("path/to/repo", master="spark://head:7077", conf={"spark.executor.memory": "8g"})
    """

    name = "spark"
    # Materialization writes the online store from the executors (serving.distributed), not the driver.
    writes_from_executors = True

    def __init__(
        self, repo: Path | str = ".", *, master: str = "local[*]", conf: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(repo)
        self.master = master
        self.conf = dict(conf or {})
        self._spark: Any = None

    @classmethod
    def from_settings(cls, settings: Any) -> SparkEngine:
        return cls(settings.repo, master=settings.spark_master, conf=settings.spark_conf)

    @property
    def spark(self) -> Any:
        """The SparkSession (the active one, or one built from ``master`` and ``conf``)."""
        if self._spark is None:
            self._spark = spark_session(self.master, self.conf)
        return self._spark

    def close(self) -> None:
        # The session may be shared (one per process in Spark): it is left running for others.
        self._spark = None

    # -- sources --------------------------------------------------------------------
    def _source(self, view: FeatureView, limit: int | None) -> Any:
        from featurestore.dsl.source import CsvSource, ParquetSource, SqlSource

        src = view.source
        if isinstance(src, ParquetSource):
            df = self.spark.read.parquet(src.resolve(self.repo))
        elif isinstance(src, CsvSource):
            df = self.spark.read.csv(src.resolve(self.repo), header=True, inferSchema=True)
        elif isinstance(src, SqlSource):
            try:  # a query of the catalog's tables; DuckDB's table functions and quoted paths are not Spark SQL
                df = self.spark.sql(src.query)
            except Exception as exc:  # Spark's analysis errors
                raise DefinitionError(
                    f"the spark engine runs SQL sources as Spark SQL, and this query failed there: "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                    module=view.module,
                    obj=view.name,
                ) from None
        else:
            raise DefinitionError(
                f"the spark engine cannot read a source of kind {src.kind!r} ({type(src).__name__})",
                module=view.module,
                obj=view.name,
            )
        return df.limit(int(limit)) if limit is not None else df

    def _sql_transform(self, view: FeatureView, limit: int | None) -> Any:
        """The view's SQL transform run by Spark SQL over its source registered as ``source``."""
        self._source(view, limit).createOrReplaceTempView("source")
        return self.spark.sql(str(view.transform))

    def read(self, view: FeatureView, *, limit: int | None = None) -> pl.LazyFrame:
        """Sources and SQL transforms run in Spark; a key-local polars transform per key group in the executors."""
        if isinstance(view.transform, str):
            return _to_polars(self._sql_transform(view, limit)).lazy()
        src = self._source(view, limit)
        if view.transform is None:
            return _to_polars(src).lazy()
        return _to_polars(per_key_transform(view, src)).lazy()

    def schema(self, view: FeatureView) -> dict[str, pl.DataType]:
        # The types without running anything over the data.
        if isinstance(view.transform, str):
            return dict(_to_polars(self._sql_transform(view, None).limit(0)).schema)
        empty = _to_polars(self._source(view, None).limit(0))
        if view.transform is None:
            return dict(empty.schema)
        return dict(apply_transform(view, empty.lazy()).collect_schema())

    # -- materialization --------------------------------------------------------------
    def latest_frame(self, spec: ViewSpec, files: Sequence[OfflineFile], start: datetime | None, end: datetime) -> Any:
        """(latest row per key in [start, end], all rows in [start, end]) as lazy Spark DataFrames.

        The offline store holds one row per (keys, event time), so ``row_number`` picks one row.
        """
        fn = _functions()
        columns = [*spec.join_keys, _EVENT_TS, *spec.features]
        try:
            df = read_offline(self.spark, files, [*columns, CREATED])
        except Exception as exc:  # files written before created_timestamp was stored: null (created at 0)
            if CREATED not in str(exc):
                raise
            df = read_offline(self.spark, files, columns).withColumn(CREATED, fn.lit(None).cast("timestamp"))
        ts = fn.unix_micros(_col(_EVENT_TS))
        keep = ts <= fn.lit(_micros(end))
        if start is not None:
            keep = keep & (ts >= fn.lit(_micros(start)))
        in_range = df.where(keep)
        w = _window().partitionBy(*[_col(k) for k in spec.join_keys]).orderBy(_col(_EVENT_TS).desc())
        latest = in_range.withColumn("__fs_n", fn.row_number().over(w)).where(fn.col("__fs_n") == 1).drop("__fs_n")
        return latest, in_range

    def latest_rows(
        self, spec: ViewSpec, files: Sequence[OfflineFile], start: datetime | None, end: datetime
    ) -> tuple[pl.DataFrame, int]:
        if not files:
            return _empty(spec), 0
        latest, in_range = self.latest_frame(spec, files, start, end)
        return typed_rows(_to_polars(latest), spec), int(in_range.count())

    def state_events(self, spec: ViewSpec, files: Sequence[OfflineFile], now: datetime) -> tuple[pl.DataFrame, int]:
        events = spec.events
        assert events is not None
        if not files:
            return pl.DataFrame(), 0
        fn = _functions()
        columns = [*spec.join_keys, _EVENT_TS, CREATED, *events.columns]
        df = read_offline(self.spark, files, columns, seq=True)
        ts = fn.unix_micros(_col(_EVENT_TS))
        stamp, horizon = _micros(now), events.horizon_us
        newest = fn.max(ts).over(_window().partitionBy(*[_col(k) for k in spec.join_keys]))
        kept = (
            df.where(ts <= fn.lit(stamp))
            .withColumn("__newest", newest)
            .where((fn.col("__newest") > fn.lit(stamp - horizon)) & (ts > fn.col("__newest") - fn.lit(horizon)))
            .drop("__newest")
        )
        out = _to_polars(kept).with_columns(pl.col(_EVENT_TS).dt.convert_time_zone("UTC"))
        return out, int(df.count())

    # -- training sets ------------------------------------------------------------------
    def as_of_join(self, entity: EntityRows, requests: list[ViewRequest], names: list[str]) -> pl.DataFrame:
        """One window per view over the union of its feature rows and the entity rows (see ``_view_features``)."""
        for req in requests:
            if req.spec.events is not None:
                raise _aggregation_error(req.spec.name)
        ent = _spark_rows(entity)
        if ent.get_column(TS).is_null().all():  # no entity row has a time: every feature is null
            dtypes = [r.spec.features[f].polars for r in requests for f in r.features]
            return pl.DataFrame(
                [pl.Series(n, [None] * ent.height, dtype=t) for n, t in zip(names, dtypes, strict=True)]
            )
        table = _EntityTable(self.spark, ent)
        try:
            result, inner = _join_views(table.df, table.df.select(ROW), entity, requests, _bounds(ent))
            features = _to_polars(result.orderBy(ROW).select(*inner))
        finally:
            table.close()
        return features.rename(dict(zip(features.columns, names, strict=True)))

    def window_join(self, entity: pl.DataFrame, request: ViewRequest, aggregations: list[WindowSpec]) -> pl.DataFrame:
        """A range join of the entity rows with the view's events, grouped per row (``spark_windows``)."""
        from featurestore.offline.spark_windows import window_frame

        return window_frame(
            self.spark,
            entity,
            request.spec,
            request.files,
            aggregations,
            entity_table=_EntityTable,
            read_offline=read_offline,
        )

    def point_in_time_join_to(
        self,
        entity: pl.DataFrame,
        requests: list[ViewRequest],
        out: Path,
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pl.DataFrame | None:
        """Spark writes ``out`` as a folder of Parquet part files in input order; ``None`` (nothing collected).

        The entity rows go to Spark with their own columns; the joined rows are sorted by
        input position (a range partitioning, so ``part-00000`` holds the first rows) and
        written by the executors into a folder beside ``out``, renamed into place when the
        job succeeded. A ``.csv`` ``out`` is written from the driver (the default).
        """
        if out.suffix.lower() == ".csv" or any(req.spec.events is not None for req in requests):
            # CSV, and aggregation views' windows (computed by Spark, joined in the driver), are written there
            return super().point_in_time_join_to(
                entity, requests, out, timestamp_column=timestamp_column, full_feature_names=full_feature_names
            )
        rows, names = join_inputs(entity, requests, timestamp_column, full_feature_names)
        ent = _spark_rows(rows)
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = out.with_name(f".{out.name}.spark-{os.getpid()}")
        shutil.rmtree(staged, ignore_errors=True)
        table = _EntityTable(self.spark, pl.concat([ent, entity], how="horizontal"))
        try:
            kept = table.df.select(ROW, *[_col(c) for c in entity.columns])
            result, inner = _join_views(table.df, kept, rows, requests, _bounds(ent))
            columns = [
                *[_col(c) for c in entity.columns],
                *[_col(i).alias(n) for i, n in zip(inner, names, strict=True)],
            ]
            with _session_conf(self.spark, _TIMESTAMPS):
                # file:// so a cluster whose default filesystem is HDFS still writes this local path.
                result.orderBy(ROW).select(*columns).write.mode("error").parquet(staged.resolve().as_uri())
        except BaseException:
            shutil.rmtree(staged, ignore_errors=True)
            raise
        finally:
            table.close()
        _replace(staged, out)
        return None


def _spark_rows(entity: EntityRows) -> pl.DataFrame:
    """The entity rows as Spark joins them: ``__fs_row`` as a long, ``__fs_ts`` as UTC µs, the typed keys."""
    f = entity.frame
    return f.select(
        pl.col(ROW).cast(pl.Int64),
        pl.col(TS).dt.epoch("us").alias(TS),
        *[pl.col(c) for c in f.columns if c not in (ROW, TS)],
    )


def _bounds(ent: pl.DataFrame) -> tuple[int, int]:
    """(min, max) entity time in µs; (0, 0) when no row has one (then nothing matches)."""
    times = ent.get_column(TS).drop_nulls()
    return (int(times.min()), int(times.max())) if times.len() else (0, 0)  # type: ignore[arg-type]


def _join_views(
    table: Any, base: Any, entity: EntityRows, requests: list[ViewRequest], bounds: tuple[int, int]
) -> tuple[Any, list[str]]:
    """``base`` (which has ``__fs_row``) left-joined with each view's features; and their inner column names."""
    inner: list[str] = []
    result = base
    for i, req in enumerate(requests):
        cols = [f"__fs_f{i}_{j}" for j in range(len(req.features))]
        result = result.join(_view_features(table, req, entity.key_columns(req.spec), bounds, cols), on=ROW, how="left")
        inner.extend(cols)
    return result, inner


# Spark writes timestamps as INT96 by default, which other readers take as naive nanoseconds;
# microseconds marked UTC are what the offline store and the DuckDB engine write.
_TIMESTAMPS = {"spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}


@contextlib.contextmanager
def _session_conf(spark: Any, conf: Mapping[str, str]) -> Iterator[None]:
    """``conf`` set on the (maybe shared) session for the block, the previous values restored after."""
    before = {k: spark.conf.get(k, None) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                spark.conf.unset(k)
            else:
                spark.conf.set(k, v)


def _replace(staged: Path, out: Path) -> None:
    """Put the folder ``staged`` at ``out``, replacing a file or folder there (the old one removed last).

    Only the part files stay: Hadoop's ``.crc`` checksums and ``_SUCCESS`` marker would make
    the folder unreadable as one table to polars.
    """
    for extra in staged.iterdir():
        if not extra.name.endswith(".parquet") or extra.name.startswith((".", "_")):
            extra.unlink()
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.is_dir() or out.exists():
        out.rename(old)
    staged.rename(out)
    if old.is_dir():
        shutil.rmtree(old, ignore_errors=True)
    elif old.exists():
        old.unlink()


def _aggregation_error(view: str) -> TrainingSetError:
    return TrainingSetError(
        f"feature view {view!r} is an aggregation view: as_of_join takes plain views only; its windows are "
        "computed by window_join (point_in_time_join calls both)"
    )


def _empty(spec: ViewSpec) -> pl.DataFrame:
    schema = {**{k: t.polars for k, t in spec.join_keys.items()}, _EVENT_TS: pl.Datetime("us", "UTC")}
    schema.update({f: t.polars for f, t in spec.features.items()})
    return pl.DataFrame(schema={**schema, CREATED: pl.Datetime("us", "UTC")})


def typed_rows(df: pl.DataFrame, spec: ViewSpec) -> pl.DataFrame:
    """Rows back from Spark as the DuckDB engine gives them: UTC event times, declared dtypes."""
    casts: dict[str, Any] = {k: t.polars for k, t in spec.join_keys.items()}
    casts.update({f: t.polars for f, t in spec.features.items()})
    casts[_EVENT_TS] = pl.Datetime("us", "UTC")
    times = [_EVENT_TS, *([CREATED] if CREATED in df.columns else [])]
    casts.update(dict.fromkeys(times, pl.Datetime("us", "UTC")))
    return df.with_columns(pl.col(t).dt.convert_time_zone("UTC") for t in times).cast(casts)  # type: ignore[arg-type]


class _EntityTable:
    """The entity rows as a Spark DataFrame: a Parquet file Spark reads when the session is local
    (no round trip through the driver JVM's heap), else ``createDataFrame`` from Arrow."""

    def __init__(self, spark: Any, ent: pl.DataFrame) -> None:
        self.dir: str | None = None
        connect = type(spark).__module__.startswith("pyspark.sql.connect")
        if not connect and str(spark.sparkContext.master).startswith("local"):
            self.dir = tempfile.mkdtemp(prefix="fs-spark-entity-")
            path = os.path.join(self.dir, "entity.parquet")
            ent.write_parquet(path)
            self.df = spark.read.parquet(path)
        else:
            self.df = spark.createDataFrame(ent.to_arrow())

    def close(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _view_features(ent: Any, req: ViewRequest, keys: list[str], bounds: tuple[int, int], names: list[str]) -> Any:
    """(row, the view's features as ``names``) for every entity row, by one window over the keys.

    Feature rows (pruned to [min entity time - ttl, max entity time]) and entity rows form one
    union; ordered by (time, kind), a feature row comes before an entity row of the same time,
    so the last feature row at or before each entity row is ``last(ignorenulls)`` up to it. The
    match carries its own time, so a newer row with null features still wins, as in ASOF.
    """
    fn = _functions()
    window = _window()
    spec = req.spec
    ttl_us = None if spec.ttl is None else int(spec.ttl.total_seconds() * 1_000_000)
    lo, hi = bounds
    feats = read_offline(ent.sparkSession, list(req.files), [*spec.join_keys, _EVENT_TS, *req.features])
    ts = fn.unix_micros(_col(_EVENT_TS))
    keep = ts <= fn.lit(hi)
    if ttl_us is not None:
        keep = keep & (ts >= fn.lit(lo - ttl_us))
    match = fn.struct(ts.alias("ts"), *[_col(f).alias(f"v{i}") for i, f in enumerate(req.features)])
    feature_rows = feats.where(keep).select(
        *[_col(k).alias(f"__u{j}") for j, k in enumerate(spec.join_keys)],
        ts.alias(TS),
        fn.lit(0).alias(_KIND),
        fn.lit(None).cast("long").alias(ROW),
        match.alias(_MATCH),
    )
    match_type = feature_rows.schema[_MATCH].dataType
    entity_rows = ent.select(
        *[fn.col(k).alias(f"__u{j}") for j, k in enumerate(keys)],
        fn.col(TS),
        fn.lit(1).alias(_KIND),
        fn.col(ROW),
        fn.lit(None).cast(match_type).alias(_MATCH),
    )
    w = (
        window.partitionBy(*[f"__u{j}" for j in range(len(keys))])
        .orderBy(fn.col(TS).asc_nulls_first(), fn.col(_KIND))
        .rowsBetween(window.unboundedPreceding, window.currentRow)
    )
    last = fn.last(fn.col(_MATCH), ignorenulls=True).over(w)
    joined = feature_rows.unionByName(entity_rows).withColumn(_MATCH, last).where(fn.col(_KIND) == 1)
    # An entity row without a time or with a null key matches nothing, as in the ASOF join.
    ok = fn.col(TS).isNotNull() & fn.col(f"{_MATCH}.ts").isNotNull()
    for j in range(len(keys)):
        ok = ok & fn.col(f"__u{j}").isNotNull()
    if ttl_us is not None:
        ok = ok & (fn.col(f"{_MATCH}.ts") >= fn.col(TS) - fn.lit(ttl_us))
    return joined.select(fn.col(ROW), *[fn.when(ok, fn.col(f"{_MATCH}.v{i}")).alias(n) for i, n in enumerate(names)])
