"""The DuckDB offline engine (the default): sources, latest rows, point-in-time and window joins in one process."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import polars as pl

from featurestore.dsl.names import quote
from featurestore.dsl.source import CsvSource, ParquetSource, Source, SqlSource
from featurestore.errors import DefinitionError, TrainingSetError
from featurestore.offline.aggregate import CREATED, NO_CREATED
from featurestore.offline.base import SEQ, OfflineEngine, OfflineFile, apply_transform
from featurestore.offline.duckdb_spill import (
    POSITION,
    POSITION_BITS,
    PitPlan,
    choose_plan,
    gather_features,
    join_bytes,
    threads_for,
)
from featurestore.offline.duckdb_windows import (
    WindowEstimate,
    WindowPlan,
    choose_window_plan,
    estimate_sql,
    window_sql,
)
from featurestore.offline.pit import ROW, TS, EntityRows, ViewRequest

if TYPE_CHECKING:
    from featurestore.dsl.view import FeatureView
    from featurestore.registry.spec import ViewSpec, WindowSpec

__all__ = ["DuckDBEngine", "duckdb_connection", "source_relation"]

_EVENT_TS = "event_timestamp"
_OOM_HINT = "raise duckdb_memory_limit (FEATURESTORE_DUCKDB_MEMORY_LIMIT)"


def _pit_oom(plan: PitPlan) -> str:
    return (
        f"the point-in-time join ({plan.value} plan) ran out of memory in the duckdb engine even spilling "
        "to disk; " + _OOM_HINT
    )


def duckdb_connection(
    memory_limit: str = "4GB", temp_dir: str | None = None, threads: int | None = None, search_path: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection in UTC that spills to ``temp_dir`` beyond ``memory_limit``.

    ``search_path``: the folder relative file paths in SQL resolve against (the repository).
    """
    config: dict[str, Any] = {"memory_limit": memory_limit}
    if temp_dir:
        config["temp_directory"] = temp_dir
    if threads:
        config["threads"] = threads
    return _session(duckdb.connect(config=config), search_path)


def _session(con: duckdb.DuckDBPyConnection, search_path: str | None) -> duckdb.DuckDBPyConnection:
    """The per-connection settings every query here relies on: UTC, no progress bar, the search path."""
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar=false")
    if search_path:
        con.execute("SET file_search_path = " + _literal(search_path))
    return con


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _name(text: str) -> str:
    """An output column name as a DuckDB identifier (any text)."""
    return '"' + text.replace('"', '""') + '"'


def source_relation(source: Source, repo: Path) -> str:
    """A DuckDB table expression reading ``source`` (paths relative to ``repo``)."""
    if isinstance(source, ParquetSource):
        return f"read_parquet({_literal(source.resolve(repo))}, union_by_name=true)"
    if isinstance(source, CsvSource):
        return f"read_csv({_literal(source.resolve(repo))}, header=true)"
    if isinstance(source, SqlSource):
        return f"({source.query})"
    raise DefinitionError(f"the duckdb engine cannot read a source of kind {source.kind!r} ({type(source).__name__})")


def _sql_time(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.astimezone(UTC).isoformat()}'"


def _streamed(result: Any) -> pl.DataFrame:
    """A result fetched in Arrow batches: not first collected whole inside DuckDB's memory limit."""
    out = pl.from_arrow(result.to_arrow_reader(1 << 16).read_all())
    assert isinstance(out, pl.DataFrame)
    return out


def _frame(result: Any) -> pl.DataFrame:
    out = result.pl()
    if not isinstance(out, pl.DataFrame):  # duckdb may hand back a lazy frame in newer versions
        out = out.collect()
    return out


class DuckDBEngine(OfflineEngine):
    """One in-process DuckDB connection in UTC, spilling to ``temp_dir`` beyond ``memory_limit``.

    Example::

        engine = DuckDBEngine("path/to/repo", memory_limit="8GB", temp_dir="/tmp/fs")
    """

    name = "duckdb"

    def __init__(
        self,
        repo: Path | str = ".",
        *,
        memory_limit: str = "4GB",
        temp_dir: Path | str | None = None,
        threads: int | None = None,
        pit_plan: PitPlan = PitPlan.AUTO,
        window_plan: WindowPlan | str = WindowPlan.AUTO,
        window_buckets: bool | None = None,
    ) -> None:
        super().__init__(repo)
        self.pit_plan = pit_plan
        self.window_plan = WindowPlan.parse(window_plan)
        # Frames cut keys into time buckets: always, never, or (None) when the estimate finds keys dense.
        self.window_buckets = window_buckets
        self.memory_limit = memory_limit
        self.temp_dir = Path(temp_dir) if temp_dir is not None else None
        self.threads = threads
        self._db: duckdb.DuckDBPyConnection | None = None
        # One cursor per thread: a DuckDB connection runs one query at a time, and registered
        # frames and the ``source`` view are per connection; the cursors share one database.
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Any) -> DuckDBEngine:
        return cls(
            settings.repo,
            memory_limit=settings.duckdb_memory_limit,
            temp_dir=settings.duckdb_temp_dir,
            window_plan=settings.duckdb_window_plan,
        )

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """This thread's connection to the engine's database, both opened on first use."""
        con: duckdb.DuckDBPyConnection | None = getattr(self._local, "con", None)
        if con is None:
            with self._lock:
                if self._db is None:
                    temp = None
                    if self.temp_dir is not None:
                        self.temp_dir.mkdir(parents=True, exist_ok=True)
                        temp = str(self.temp_dir)
                    threads = self.threads or threads_for(self.memory_limit)
                    con = self._db = duckdb_connection(self.memory_limit, temp, threads, str(self.repo))
                else:
                    con = _session(self._db.cursor(), str(self.repo))
                self._cursors.append(con)
            self._local.con = con
        return con

    def close(self) -> None:
        with self._lock:
            for con in reversed(self._cursors):  # the database (the first) last
                con.close()
            self._cursors.clear()
            self._db = None
            self._local = threading.local()

    # -- files --------------------------------------------------------------------
    def _parquet(self, files: Sequence[OfflineFile], *, row_numbers: bool = False, union_by_name: bool = False) -> str:
        """The one place offline files become a DuckDB relation (``read_parquet`` over the list).

        Files on object storage (``s3://``) are read through pyarrow's filesystem, registered
        with the connection: DuckDB's own S3 support is an extension it would download.
        """
        if any(str(f).startswith("s3://") for f in files):
            return self._arrow_relation([str(f) for f in files], row_numbers, union_by_name)
        options = (", file_row_number=true" if row_numbers else "") + (", union_by_name=true" if union_by_name else "")
        return f"read_parquet([{', '.join(_literal(str(f)) for f in files)}]{options})"

    def _arrow_relation(self, uris: list[str], row_numbers: bool, union_by_name: bool) -> str:
        import pyarrow as pa
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        from featurestore.storage import open_storage

        storage = open_storage("s3://" + uris[0].removeprefix("s3://").partition("/")[0])
        fs, paths = storage.filesystem(), [storage.fs_path(u) for u in uris]
        schema = pa.unify_schemas([pq.read_schema(p, filesystem=fs) for p in paths]) if union_by_name else None
        source: Any
        if row_numbers:  # read_parquet's file_row_number: the row's position in its file
            tables = [pq.read_table(p, filesystem=fs) for p in paths]
            tables = [
                t.append_column("file_row_number", pa.array(range(t.num_rows), pa.int64())).append_column(
                    "file_index", pa.array([i] * t.num_rows, pa.int64())
                )
                for i, t in enumerate(tables)
            ]
            # "default" fills a column some files lack (a pushed row's created time) with nulls.
            source = pa.concat_tables(tables, promote_options="permissive" if union_by_name else "default")
        else:  # streamed: DuckDB pushes projections and filters into the scan
            source = ds.dataset(paths, filesystem=fs, format="parquet", schema=schema)
        name = f"__fs_offline_{id(source)}"
        con = self.con  # registrations are per connection: this thread's, where its query runs
        registered: list[str] = self._local.__dict__.setdefault("arrow", [])  # oldest first
        con.register(name, source)
        registered.append(name)
        if len(registered) > 64:  # bounded: a query never uses more than one per view it joins
            con.unregister(registered.pop(0))
        return name

    @contextmanager
    def _registered(self, prefix: str, frame: pl.DataFrame) -> Iterator[str]:
        name = f"{prefix}_{id(frame)}"
        self.con.register(name, frame)
        try:
            yield name
        finally:
            self.con.unregister(name)

    # -- sources --------------------------------------------------------------------
    def read(self, view: FeatureView, *, limit: int | None = None) -> pl.LazyFrame:
        relation = source_relation(view.source, self.repo)
        if limit is not None:
            relation = f"(SELECT * FROM {relation} LIMIT {int(limit)})"
        t = view.transform
        if isinstance(t, str):
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {relation}")
            return self.con.sql(t).pl().lazy()
        if isinstance(view.source, ParquetSource):  # polars reads Parquet itself, lazily
            frame = pl.scan_parquet(view.source.resolve(self.repo))
            frame = frame if limit is None else frame.head(limit)
        else:
            frame = self.con.sql(f"SELECT * FROM {relation}").pl().lazy()
        return apply_transform(view, frame)

    def schema(self, view: FeatureView) -> dict[str, pl.DataType]:
        t = view.transform
        if isinstance(t, str):  # the query's types without running it over the data
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {source_relation(view.source, self.repo)}"
            )
            return dict(self.con.sql(f"SELECT * FROM ({t}) LIMIT 0").pl().schema)
        return dict(self.read(view).collect_schema())

    # -- materialization ----------------------------------------------------------------
    def latest_rows(
        self, spec: ViewSpec, files: Sequence[OfflineFile], start: datetime | None, end: datetime
    ) -> tuple[pl.DataFrame, int]:
        columns = [*spec.join_keys, _EVENT_TS, *spec.features, CREATED]
        if not files:
            schema = {**{k: t.polars for k, t in spec.join_keys.items()}, _EVENT_TS: pl.Datetime("us", "UTC")}
            schema.update({f: t.polars for f, t in spec.features.items()})
            return pl.DataFrame(schema={**schema, CREATED: pl.Datetime("us", "UTC")}), 0
        # By name: files written before created_timestamp was stored lack it (null: created at 0).
        relation = self._parquet(files, union_by_name=True)
        where = [f"{quote(_EVENT_TS)} <= {_sql_time(end)}"]
        if start is not None:
            where.append(f"{quote(_EVENT_TS)} >= {_sql_time(start)}")
        keys = ", ".join(quote(k) for k in spec.join_keys)

        # One row per (keys, event_timestamp) in the offline store, so row_number picks exactly one
        # row. The rows scanned are counted by a second query: a count over one column (or from
        # Parquet metadata without a window) costs ~10 ms, where a window count over the first
        # query's rows costs more than the query itself.
        def latest(created: str) -> str:
            return (
                f"SELECT {', '.join(quote(c) for c in columns[:-1])}, {created} FROM {relation} "
                f"WHERE {' AND '.join(where)} "
                f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY {quote(_EVENT_TS)} DESC) = 1"
            )

        try:
            df = self.con.sql(latest(quote(CREATED))).pl()
        except duckdb.BinderException:  # no file has created_timestamp (all written by older versions)
            df = self.con.sql(latest(f"NULL::TIMESTAMPTZ AS {quote(CREATED)}")).pl()
        # fetchall, not fetchone: a partly fetched result would keep the connection busy for the next query
        ((scanned,),) = self.con.execute(f"SELECT count(*) FROM {relation} WHERE {' AND '.join(where)}").fetchall()
        utc = [pl.col(_EVENT_TS).dt.convert_time_zone("UTC"), pl.col(CREATED).dt.convert_time_zone("UTC")]
        return df.with_columns(utc), int(scanned)

    def state_events(self, spec: ViewSpec, files: Sequence[OfflineFile], now: datetime) -> tuple[pl.DataFrame, int]:
        events = spec.events
        assert events is not None
        if not files:
            return pl.DataFrame(), 0
        columns = [*spec.join_keys, _EVENT_TS, CREATED, *events.columns]
        relation = self._parquet(files, row_numbers=True, union_by_name=True)
        keys = ", ".join(quote(k) for k in spec.join_keys)
        horizon = f"to_microseconds({events.horizon_us})"
        stamp = _sql_time(now)
        sql = (
            f"SELECT {', '.join(quote(c) for c in columns)}, file_row_number AS {SEQ} FROM ("
            f"SELECT *, max({_EVENT_TS}) OVER (PARTITION BY {keys}) AS __newest "
            f"FROM {relation} WHERE {_EVENT_TS} <= {stamp}) "
            f"WHERE __newest > {stamp} - {horizon} AND {_EVENT_TS} > __newest - {horizon}"
        )
        df = self.con.sql(sql).pl()
        ((scanned,),) = self.con.execute(f"SELECT count(*) FROM {self._parquet(files)}").fetchall()
        return df.with_columns(pl.col(_EVENT_TS).dt.convert_time_zone("UTC")), int(scanned)

    # -- training sets -------------------------------------------------------------------
    def as_of_join(self, entity: EntityRows, requests: list[ViewRequest], names: list[str]) -> pl.DataFrame:
        with self._registered("__fs_entity", entity.frame) as ent:
            wide = self._as_of_sql(ent, entity, requests, names, positions=False)
            estimate = partial(join_bytes, entity.frame.height, entity.frame.width, requests)
            plan = choose_plan(self.pit_plan, self.memory_limit, estimate)
            if plan is PitPlan.WIDE:
                try:
                    return _frame(self.con.sql(wide))
                except duckdb.OutOfMemoryException:
                    if self.pit_plan is not PitPlan.AUTO:
                        raise TrainingSetError(_pit_oom(plan)) from None
            # Phase one: the ASOF JOIN over keys, times and row positions only (narrow, spills);
            # phase two: the feature values gathered by position, one file at a time.
            schema = dict(_frame(self.con.sql(wide).limit(0)).schema)
            try:
                positions = _streamed(self.con.sql(self._as_of_sql(ent, entity, requests, names, positions=True)))
            except duckdb.OutOfMemoryException:
                raise TrainingSetError(_pit_oom(PitPlan.BY_POSITION)) from None
        return gather_features(positions, requests, names, schema)

    def _as_of_sql(
        self, ent: str, entity: EntityRows, requests: list[ViewRequest], names: list[str], *, positions: bool
    ) -> str:
        """The ASOF JOIN of the entity rows with each view: feature values, or (``positions``) beside
        ``ROW`` the matched row's position ``__fs_p{i}``: its file's index, then its row number in the file."""
        joins: list[str] = []
        selects: list[str] = [f"e.{ROW}"] if positions else []
        name_iter = iter(names)
        for i, req in enumerate(requests):
            v = f"v{i}"
            inner = [f"{quote(k)} AS __k{j}" for j, k in enumerate(req.spec.join_keys)]
            inner.append(f"{_EVENT_TS} AS __ts")
            if positions:
                inner.append(f"(file_index::BIGINT << {POSITION_BITS}) | file_row_number AS __p")
                relation = self._parquet(req.files, row_numbers=True)
                values = [(POSITION.format(i=i), "__p")]
            else:
                inner += [quote(f) for f in req.features]
                relation = self._parquet(req.files)
                values = [(next(name_iter), quote(f)) for f in req.features]
            cond = [f"e.{alias} = {v}.__k{j}" for j, alias in enumerate(entity.key_columns(req.spec))]
            cond.append(f"e.{TS} >= {v}.__ts")
            joins.append(f"ASOF LEFT JOIN (SELECT {', '.join(inner)} FROM {relation}) {v} ON {' AND '.join(cond)}")
            ttl = req.spec.ttl
            for name, col in values:
                if ttl is None:
                    selects.append(f"{v}.{col} AS {_name(name)}")
                else:
                    micros = int(ttl.total_seconds() * 1_000_000)
                    selects.append(
                        f"CASE WHEN {v}.__ts >= e.{TS} - to_microseconds({micros}) THEN {v}.{col} END AS {_name(name)}"
                    )
        # Positions come back in any order (gather_features sorts by ROW): no ORDER BY to spill.
        order = "" if positions else f" ORDER BY e.{ROW}"
        return f"SELECT {', '.join(selects)} FROM {ent} e {' '.join(joins)}{order}"

    def window_join(self, entity: pl.DataFrame, request: ViewRequest, aggregations: list[WindowSpec]) -> pl.DataFrame:
        spec = request.spec
        events = spec.events
        assert events is not None
        relation = self._events_relation(spec, request.files)
        with self._registered("__fs_windows", entity) as ent:
            estimate = self._window_estimate(ent, relation, spec, aggregations)
            plan = choose_window_plan(self.window_plan, estimate)
            buckets = self.window_buckets
            if buckets is None:
                buckets = estimate is not None and estimate.buckets
            sql = window_sql(plan, ent, relation, spec, aggregations, buckets=buckets)
            try:
                return _frame(self.con.sql(sql))
            except duckdb.OutOfMemoryException as exc:
                raise TrainingSetError(
                    f"the window aggregation of {spec.name!r} ({plan.value} plan) ran out of memory in the "
                    f"duckdb engine even spilling to disk ({exc}); " + _OOM_HINT
                ) from None

    def window_plan_for(
        self, entity: pl.DataFrame, request: ViewRequest, aggregations: list[WindowSpec]
    ) -> tuple[WindowPlan, WindowEstimate | None]:
        """The plan ``window_join`` takes for these arguments, and its estimate (None for a forced range join)."""
        with self._registered("__fs_windows", entity) as ent:
            relation = self._events_relation(request.spec, request.files)
            estimate = self._window_estimate(ent, relation, request.spec, aggregations)
        return choose_window_plan(self.window_plan, estimate), estimate

    def _window_estimate(
        self, ent: str, relation: str, spec: ViewSpec, aggregations: list[WindowSpec]
    ) -> WindowEstimate | None:
        if self.window_plan is WindowPlan.RANGE_JOIN:
            return None
        ((joined, pairs, events, per_window, keys, rows),) = self.con.execute(
            estimate_sql(ent, relation, spec, aggregations)
        ).fetchall()
        return WindowEstimate(joined, pairs, events, per_window, keys, rows, len(aggregations))

    def _events_relation(self, spec: ViewSpec, files: Sequence[OfflineFile]) -> str:
        """A view version's offline events: keys as ``__k<i>``, ``__ts``/``__cr`` (µs), ``__seq``.

        ``__seq`` (the row's position in its file) breaks ties of (event time, created): the later row wins.
        """
        events = spec.events
        assert events is not None
        values = [c for c in events.columns if c != events.event_id]
        if not files:  # no events (yet): every window is empty
            typed = [f"NULL::{t.duckdb} AS __k{j}" for j, t in enumerate(spec.join_keys.values())]
            typed += ["NULL::BIGINT AS __ts", "NULL::BIGINT AS __cr", "NULL::BIGINT AS __seq"]
            typed += [f"NULL::{events.columns[c].duckdb} AS {quote(c)}" for c in values]
            return f"(SELECT {', '.join(typed)} WHERE false)"
        cols = [f"{quote(k)} AS __k{j}" for j, k in enumerate(spec.join_keys)]
        cols += [
            f"epoch_us({_EVENT_TS}) AS __ts",
            f"coalesce(epoch_us({quote(CREATED)}), {NO_CREATED}) AS __cr",
            "file_row_number AS __seq",
        ]
        cols += [quote(c) for c in values]
        return f"(SELECT {', '.join(cols)} FROM {self._parquet(files, row_numbers=True, union_by_name=True)})"
