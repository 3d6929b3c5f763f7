"""The offline engine contract: what an engine (DuckDB, Spark) does with sources and the Parquet offline store."""

from __future__ import annotations

import abc
import importlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from featurestore.errors import ConfigError, TrainingSetError

if TYPE_CHECKING:
    import polars as pl

    from featurestore.dsl.view import FeatureView
    from featurestore.offline.pit import EntityRows, ViewRequest
    from featurestore.registry.spec import ViewSpec, WindowSpec

__all__ = [
    "OfflineEngine",
    "EngineSettings",
    "ENGINES",
    "engine_class",
    "engine_from_settings",
    "apply_transform",
    "run_transform",
    "TransformOutputError",
    "OfflineFile",
    "SEQ",
]

# An offline file as the layout lists it: a local path (or, on object storage, an ``s3://`` URI).
OfflineFile = Path | str

# The column ``state_events`` gives each event's position in its file (ties of time and created: later wins).
SEQ = "__seq"

# Engine name (setting ``engine``) -> "module:Class", imported only when selected.
# A new engine is one module beside these plus one line here; the contract suite
# (tests/offline/test_engine_contract.py) runs over each.
ENGINES = {
    "duckdb": "featurestore.offline.duckdb:DuckDBEngine",
    "spark": "featurestore.offline.spark:SparkEngine",
}


class EngineSettings(Protocol):
    """The settings an engine is configured from (``featurestore.config.Settings`` has them all)."""

    @property
    def repo(self) -> Path: ...

    @property
    def engine(self) -> str: ...


class TransformOutputError(TypeError):
    """A view's polars transform returned something other than a polars frame."""


def apply_transform(view: FeatureView, frame: pl.LazyFrame) -> pl.LazyFrame:
    """``view``'s polars transform (if any) over ``frame``; ``TransformOutputError`` if it returns no frame."""
    t = view.transform
    if t is None:
        return frame
    assert not isinstance(t, str), "SQL transforms are run by the engine"
    return run_transform(t, frame)


def run_transform(transform: Callable[[Any], Any], frame: pl.LazyFrame) -> pl.LazyFrame:
    """``transform(frame)`` as a LazyFrame (a DataFrame is accepted); ``TransformOutputError`` otherwise."""
    import polars as pl

    out = transform(frame)
    if isinstance(out, pl.DataFrame):
        out = out.lazy()
    if not isinstance(out, pl.LazyFrame):
        raise TransformOutputError(f"transform must return a polars LazyFrame or DataFrame, got {type(out).__name__}")
    return out


class OfflineEngine(abc.ABC):
    """What reads a repository's sources and the Parquet offline store: ingest, materialize, training sets.

    An engine serves one feature repository: relative paths in sources resolve against
    ``repo``; its own configuration (memory limit, cluster URL) goes into the constructor.
    Offline files are what ``OfflineLayout.files(view, version)`` lists, in date order, each
    holding the view version's rows with columns ``<join keys>, event_timestamp (UTC µs),
    <features>`` (and ``created_timestamp`` for an aggregation view's events); the caller holds
    the layout's read snapshot while an engine reads them. Errors are the store's own family
    (``DefinitionError``, ``TrainingSetError``), their messages naming the engine when it matters.

    The semantics are the contract; ``tests/offline/test_engine_contract.py`` checks them on
    every engine, including a property test of the point-in-time join against brute force.
    """

    name: ClassVar[str]

    def __init__(self, repo: Path | str = ".") -> None:
        self.repo = Path(repo)

    @classmethod
    @abc.abstractmethod
    def from_settings(cls, settings: Any) -> OfflineEngine:
        """The engine the settings describe (``engine_from_settings`` picks the class).

        Example::

            DuckDBEngine.from_settings(load_settings("."))  # duckdb_memory_limit, duckdb_temp_dir
        """

    # -- sources (ingest, the plan-time data check) ---------------------------
    @abc.abstractmethod
    def read(self, view: FeatureView, *, limit: int | None = None) -> pl.LazyFrame:
        """``view``'s source rows with its transform applied (only the first ``limit`` source rows).

        The engine knows how to read each kind of source (``source.kind``: parquet, csv, sql);
        a SQL transform runs in the engine's SQL dialect over a table named ``source``; a
        polars transform runs on the source frame (``apply_transform``). Exceptions of reading
        or of user code propagate as they are (ingest names the view); a polars transform that
        returns no frame raises ``TransformOutputError``.

        Example::

            engine.read(driver_stats).collect()  # source -> transform -> polars frame
        """

    def schema(self, view: FeatureView) -> dict[str, pl.DataType]:
        """The column types ``read(view)`` gives, reading as little as the engine can (typing join keys)."""
        return dict(self.read(view).collect_schema())

    # -- materialization ---------------------------------------------------------
    @abc.abstractmethod
    def latest_rows(
        self, spec: ViewSpec, files: Sequence[OfflineFile], start: datetime | None, end: datetime
    ) -> tuple[pl.DataFrame, int]:
        """Per entity key, the stored row with the greatest ``event_timestamp`` in [start, end]; and rows scanned.

        Columns: join keys, ``event_timestamp`` (UTC), the features in ``spec`` order; the
        count is the stored rows in [start, end]. No files: an empty frame of those columns.

        Example::

            df, scanned = engine.latest_rows(spec, layout.files(spec.name, spec.version), None, now)
        """

    @abc.abstractmethod
    def state_events(self, spec: ViewSpec, files: Sequence[OfflineFile], now: datetime) -> tuple[pl.DataFrame, int]:
        """An aggregation view's events its online state holds as of ``now``; and the events scanned.

        Per entity whose newest event at or before ``now`` is within the view's horizon of
        ``now``: its events later than that newest event minus the horizon (none after ``now``).
        Columns: join keys, ``event_timestamp``, ``created_timestamp``, the event columns and
        ``serving.windows.SEQ`` (the row's position in its file). No files: an empty frame, 0.
        """

    # -- training sets -------------------------------------------------------------
    def point_in_time_join(
        self,
        entity: pl.DataFrame,
        requests: list[ViewRequest],
        *,
        timestamp_column: str = "event_timestamp",
        full_feature_names: bool = False,
    ) -> pl.DataFrame:
        """Each entity row with each requested view's features as of its time; in input order, columns kept.

        A plain view with ttl T gives the row of the same keys with the greatest event time
        ``<= t`` and ``>= t - T`` (both inclusive; nulls when there is none); an aggregation
        view gives its windows over the events ``t - w < event time <= t``. The shared steps
        (checks, typing of keys and times, column names) are here; an engine implements
        ``as_of_join`` and ``window_join``.

        Example::

            engine.point_in_time_join(entity_df, [ViewRequest(spec, ("trips",), tuple(files))])
        """
        from featurestore.offline.aggregate import join_features

        return join_features(
            self, entity, requests, timestamp_column=timestamp_column, full_feature_names=full_feature_names
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
        """``point_in_time_join`` written to ``out``; the frame when it was built in the driver, else ``None``.

        ``out`` is one Parquet file (CSV when it ends ``.csv``), replaced whole, or, for an
        engine that writes from its workers, a folder of Parquet part files in input order
        (``part-00000...``, read as one table by polars, DuckDB, pandas and Spark). Nothing is
        left at ``out`` when the join fails. This default writes the polars result.

        Example::

            engine.point_in_time_join_to(entity_df, requests, Path("train.parquet"))
        """
        if out.is_dir():  # the rename at the end would fail after the whole join, leaving the .tmp file
            raise TrainingSetError(f"training set output {out} is a folder; give a file path ({out / 'train.parquet'})")
        df = self.point_in_time_join(
            entity, requests, timestamp_column=timestamp_column, full_feature_names=full_feature_names
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        if out.suffix.lower() == ".csv":
            df.write_csv(tmp)
        else:
            df.write_parquet(tmp)
        tmp.replace(out)
        return df

    @abc.abstractmethod
    def as_of_join(self, entity: EntityRows, requests: list[ViewRequest], names: list[str]) -> pl.DataFrame:
        """The plain views' features for each row of ``entity.frame``, columns ``names``, in ``__fs_row`` order.

        ``entity.frame`` holds ``__fs_row`` (the input order), ``__fs_ts`` (UTC µs time, maybe
        null: no features) and each join key typed as the views declare, named by
        ``entity.key_columns(spec)``. Features go in request order; a view with ttl T only
        matches rows with ``event_timestamp >= __fs_ts - T``; ties cannot occur (one stored
        row per keys and event time).
        """

    @abc.abstractmethod
    def window_join(self, entity: pl.DataFrame, request: ViewRequest, aggregations: list[WindowSpec]) -> pl.DataFrame:
        """An aggregation view's ``aggregations`` for each entity row, in ``__fs_row`` order, one column each.

        ``entity`` holds ``__fs_row``, ``__fs_t`` (UTC µs), ``__fs_k<j>`` (the view's j-th join
        key, typed) and ``__fs_s<w>`` (the window start, µs, for each window length w). The
        events of a window are those of the same keys with ``__fs_s<w> < event time <= __fs_t``;
        ``last`` breaks ties of (event time, created) by the later row of its file.
        """

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027 - an engine without resources has nothing to close
        """Release the engine's connections or sessions; the engine is not used afterwards."""

    def __enter__(self) -> OfflineEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(repo={str(self.repo)!r})"


def engine_class(name: str) -> type[OfflineEngine]:
    """The engine class registered as ``name`` (``ConfigError`` naming the known engines otherwise)."""
    key = str(name).strip().lower()
    target = ENGINES.get(key)
    if target is None:
        raise ConfigError(f"config key 'engine': unknown offline engine {name!r}; use one of {', '.join(ENGINES)}")
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:  # the engine is there but its library is not installed
            raise ConfigError(
                f"offline engine {key!r} needs the Python package {exc.name!r}, which is not installed"
            ) from None
        raise ConfigError(
            f"offline engine {key!r} is not available in this version of featurestore "
            f'({module_name} is missing); use engine = "duckdb"'
        ) from None
    cls: type[OfflineEngine] = getattr(module, cls_name)
    return cls


def engine_from_settings(settings: EngineSettings) -> OfflineEngine:
    """The repository's offline engine: ``engine_class(settings.engine).from_settings(settings)``."""
    return engine_class(settings.engine).from_settings(settings)
