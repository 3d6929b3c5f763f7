"""FeatureStore: the SDK entry point, thin wiring of registry, offline store, gates and online store."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.config import Settings, load_settings
from featurestore.errors import DefinitionError, IngestError, RegistryError, TrainingSetError, did_you_mean
from featurestore.offline.base import OfflineEngine, engine_from_settings
from featurestore.offline.commit import read_snapshot
from featurestore.offline.frames import utc_datetime
from featurestore.offline.ingest import (
    IngestResult,
    carried_pushed_rows,
    check_ingest_inputs,
    read_key_dtypes,
    read_view,
    storable,
    write_view,
)
from featurestore.offline.layout import open_layout
from featurestore.offline.training import (
    build_training_set,
    load_entity_frame,
    rebuild_training_set,
    save_training_set,
)
from featurestore.registry.discover import Definitions, discover
from featurestore.registry.plan import Plan
from featurestore.registry.refs import resolve_features
from featurestore.registry.spec import build_specs
from featurestore.registry.store import Registry, RegistryState
from featurestore.validation import gate_for

__all__ = ["FeatureStore", "OutputFormat", "read_rows_file"]


class OutputFormat(StrEnum):
    """The frame type a training set is returned as."""

    POLARS = "polars"
    PANDAS = "pandas"
    ARROW = "arrow"
    NONE = "none"  # with out=: the set is only written, nothing is returned

    @classmethod
    def parse(cls, value: OutputFormat | str) -> OutputFormat:
        aliases = {"pyarrow": "arrow", "pl": "polars", "pd": "pandas"}
        try:
            return cls(aliases.get(str(value), str(value)))
        except ValueError:
            raise TrainingSetError(f"output={value!r}: use 'polars', 'pandas', 'arrow' or 'none' (with out=)") from None

    @classmethod
    def of(cls, frame: Any) -> OutputFormat:
        """pandas in, pandas out: the format of an entity frame (polars for a path or polars)."""
        module = type(frame).__module__
        return cls.PANDAS if module.startswith("pandas") else cls.ARROW if module.startswith("pyarrow") else cls.POLARS

    def convert(self, df: pl.DataFrame) -> Any:
        if self is OutputFormat.PANDAS:
            return df.to_pandas()
        if self is OutputFormat.ARROW:
            return df.to_arrow()
        return df


class FeatureStore:
    """A feature repository: ``FeatureStore("path/to/repo")``.

    Methods mirror the CLI: plan, apply, ingest, get_training_set.
    """

    def __init__(self, repo_path: str | os.PathLike[str] = ".", *, settings: Settings | None = None) -> None:
        self.settings = settings or load_settings(repo_path)
        self.registry = Registry(self.settings.registry_location)
        self.layout = open_layout(self.settings.offline_location)

    @property
    def repo(self) -> Path:
        return self.settings.repo

    def definitions(self) -> Definitions:
        """Import the definitions package and return what it declares."""
        return discover(self.settings.definitions)

    @property
    def engine(self) -> OfflineEngine:
        """The offline engine (setting ``engine``, DuckDB by default), created on first use."""
        engine = self.__dict__.get("_engine")
        if engine is None:
            engine = self.__dict__["_engine"] = engine_from_settings(self.settings)
        return engine  # type: ignore[no-any-return]

    def close(self) -> None:
        """Release the offline engine and the online store's connections (both reopen on next use)."""
        engine = self.__dict__.pop("_engine", None)
        if engine is not None:
            engine.close()
        online = self.__dict__.pop("_online", None)
        if online is not None and hasattr(online, "close"):
            online.close()

    def state(self) -> RegistryState:
        return self.registry.load()

    # -- registry -------------------------------------------------------
    def specs(self, defs: Definitions | None = None, registered: RegistryState | None = None) -> dict[str, Any]:
        """The registry form of the definitions.

        Join keys declared without a dtype are typed from the data, or, for a view already
        in ``registered``, keep the type registered for them (the data may have arrived since).
        """

        def key_types(view: Any, keys: list[str]) -> Any:
            known = registered.views.get(view.name) if registered is not None else None
            if known is not None and all(k in known.join_keys for k in keys):
                return {k: known.join_keys[k] for k in keys}
            return read_key_dtypes(view, keys, self.engine)

        return build_specs(defs or self.definitions(), key_types)

    def plan(self, *, data_check: bool = True, sample_rows: int | None = None) -> Plan:
        """What ``apply`` would change, without changing anything.

        Each added or changed view's source and transform first run on its first
        ``sample_rows`` rows (setting ``plan_sample_rows``); a definition the data
        contradicts raises DefinitionError. ``data_check=False`` skips that.
        """
        defs = self.definitions()
        desired = self.specs(defs)
        plan = self.registry.plan(desired)
        if data_check:
            plan.data_checked = self._check_data(defs, desired, plan.changed("view"), sample_rows)
        return plan

    def apply(self, *, allow_breaking: bool = False, data_check: bool = True, sample_rows: int | None = None) -> Plan:
        """Register the current definitions (refuses breaking changes unless allowed).

        Nothing is written when the plan-time data check (see ``plan``) fails.
        """
        defs = self.definitions()
        desired = self.specs(defs)
        checked: dict[str, int] = {}
        if data_check:
            checked = self._check_data(defs, desired, self.registry.plan(desired).changed("view"), sample_rows)
        plan = self.registry.apply(desired, project=self.settings.project, allow_breaking=allow_breaking)
        plan.data_checked = checked
        return plan

    def _check_data(
        self, defs: Definitions, desired: dict[str, Any], views: list[str], sample_rows: int | None
    ) -> dict[str, int]:
        from featurestore.offline.sample import check_view_sample
        from featurestore.registry.spec import ViewSpec

        rows = self.settings.plan_sample_rows if sample_rows is None else sample_rows
        if not views or rows <= 0:
            return {}
        checked = {}
        for name in views:
            spec = ViewSpec(desired["views"][name])
            typed = spec.event_view() if spec.events is not None else spec  # an aggregation view reads events
            checked[name] = check_view_sample(defs.views[name], typed, self.engine, rows)
        return checked

    # -- offline --------------------------------------------------------
    def ingest(
        self,
        views: Sequence[str] | str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        progress: bool = False,
    ) -> list[IngestResult]:
        """Read sources, transform and write the offline store (all views by default).

        With ``start``/``end`` only that range [start, end) is replaced.
        """
        start_dt, end_dt = utc_datetime(start), utc_datetime(end)
        check_ingest_inputs(start_dt, end_dt)
        defs = self.definitions()
        state = self.state()
        names = self._view_names(state, views)
        current_specs = self.specs(defs, registered=state)["views"]
        results = []
        from featurestore._progress import RowProgress

        bar = RowProgress("ingest", enabled=progress)
        for name in bar.steps(names):
            spec = state.view(name)
            view = defs.views.get(name)
            if view is None:
                raise IngestError(f"feature view {name!r} is registered but no longer defined; run apply")
            current = current_specs[name]["version"]
            if current != spec.version:
                raise DefinitionError(
                    f"definition changed since the last apply (registered version {spec.version}, "
                    f"definitions give {current}); run `featurestore apply` first",
                    module=view.module,
                    obj=name,
                )
            events = spec.events is not None  # an aggregation view stores its events
            typed = spec.event_view() if events else spec
            batch = read_view(view, typed, self.engine, start_dt, end_dt, events=events)
            df, gate_result = gate_for(self.settings, typed, "ingest")(batch.rows, **batch.gate_inputs())
            if gate_result.status == "warned":  # warn passes rows no store can hold (null keys or times)
                df = storable(df, typed)
            carried = None
            previous = _previous_version(state, name)
            if previous is not None and not self.layout.dates(name, spec.version):
                before = state.view(name, previous)
                carried = carried_pushed_rows(self.layout, before.event_view() if events else before, typed)
            parts = write_view(self.layout, spec, df, start_dt, end_dt, carried=carried)
            dropped = batch.duplicates_dropped
            results.append(IngestResult(name, spec.version, batch.rows_read, df.height, parts, gate_result, dropped))
            bar.finish(batch.rows_read, note=f"{df.height:,} written")
        return results

    @staticmethod
    def _view_names(state: RegistryState, views: Sequence[str] | str | None) -> list[str]:
        known = state.views
        if not known:
            raise RegistryError("the registry is empty; run `featurestore apply` first")
        if views is None or (not isinstance(views, str) and not views):
            return sorted(known)
        names = [views] if isinstance(views, str) else list(views)
        unknown = [n for n in names if n not in known]
        if unknown:
            hint = did_you_mean(unknown[0], known)
            raise RegistryError(f"unknown feature view(s) {unknown}{hint}; applied views: {sorted(known)}")
        return names

    # -- data quality ---------------------------------------------------
    def validate(self, view: str, start: datetime | str | None = None, end: datetime | str | None = None) -> Any:
        """Run ``view``'s gate (as currently defined) on its source rows; writes nothing.

        Returns the GateResult; ``result.rejected`` tells whether ingest would be refused.
        """
        from featurestore.registry.spec import ViewSpec
        from featurestore.validation import validate_frame

        start_dt, end_dt = utc_datetime(start), utc_datetime(end)
        check_ingest_inputs(start_dt, end_dt)
        defs = self.definitions()
        if view not in defs.views:
            hint = did_you_mean(view, defs.views)
            raise DefinitionError(f"unknown feature view {view!r}{hint}; defined views: {sorted(defs.views)}")
        spec = ViewSpec(self.specs(defs, registered=self.state())["views"][view])
        batch = read_view(defs.views[view], spec, self.engine, start_dt, end_dt)
        return validate_frame(self.settings, spec, batch.rows, **batch.gate_inputs())

    def reports(self, view: str | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
        """Gate reports (every ingest, materialize and push run), newest first."""
        from featurestore.validation import list_reports

        return list_reports(self.settings.offline_root, view, limit)

    def get_training_set(
        self,
        entity_df: Any,
        features: str | Sequence[str],
        *,
        full_feature_names: bool = False,
        timestamp_column: str = "event_timestamp",
        out: str | os.PathLike[str] | None = None,
        output: OutputFormat | str | None = None,
        progress: bool = False,
    ) -> Any:
        """Point-in-time-correct features for each row of ``entity_df``, in its order.

        ``features`` is a service name or ``"view:feature"`` references. With ``out``,
        the set is saved (Parquet or CSV; on Spark a folder of Parquet part files written by
        the executors) with a manifest beside it for rebuilding; ``output="none"`` then
        returns ``None`` instead of the frame (nothing of the set passes through the driver).
        The result has the entity frame's type (polars, pandas or a pyarrow Table; polars
        for a file path) unless ``output="polars" | "pandas" | "arrow"`` says otherwise.
        """
        fmt = OutputFormat.of(entity_df) if output is None else OutputFormat.parse(output)
        if fmt is OutputFormat.NONE and out is None:
            raise TrainingSetError("output='none' returns nothing, so it needs out= (the file the set is written to)")
        state = self.state()
        resolved = resolve_features(state, features)
        # A CSV entity file's String join keys are read as written (02134 keeps its zero).
        entity = load_entity_frame(entity_df, timestamp_column, [spec for spec, _ in resolved])
        from featurestore._progress import RowProgress

        bar = RowProgress("training set", entity.height, enabled=progress)
        # The files read and the files hashed into the manifest are one consistent snapshot.
        with bar, read_snapshot(self.layout, [spec.name for spec, _ in resolved]):
            if out is None:
                df, _ = build_training_set(
                    self.engine,
                    self.layout,
                    entity,
                    resolved,
                    timestamp_column=timestamp_column,
                    full_feature_names=full_feature_names,
                )
            else:
                source = Path(entity_df) if isinstance(entity_df, str | os.PathLike) else None
                refs = [features] if isinstance(features, str) else list(features)
                written = save_training_set(
                    self.engine,
                    self.layout,
                    entity,
                    resolved,
                    Path(out),
                    entity_source=source,
                    references=refs,
                    timestamp_column=timestamp_column,
                    full_feature_names=full_feature_names,
                )
                if fmt is OutputFormat.NONE:
                    bar.finish(entity.height)
                    return None
                # Written from the engine's workers (Spark): read back only because a frame was asked for.
                df = written if written is not None else pl.read_parquet(Path(out))
            bar.finish(df.height)
        return fmt.convert(df)

    def rebuild_training_set(self, manifest: str | os.PathLike[str]) -> pl.DataFrame:
        """Rebuild the identical training set from a manifest written by ``get_training_set(out=...)``."""
        return rebuild_training_set(self.engine, self.state(), Path(manifest), self.layout)

    # -- online ---------------------------------------------------------
    def online_store(self) -> Any:
        """The repository's online store (from ``settings.online_url``), opened on first use."""
        store = self.__dict__.get("_online")
        if store is None:
            from featurestore.online import online_store_from_settings

            store = self.__dict__["_online"] = online_store_from_settings(self.settings)
        return store

    def materialize(
        self,
        views: Sequence[str] | str | None = None,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        *,
        incremental: bool = False,
        progress: bool = False,
    ) -> list[Any]:
        """Write each online view's latest row per entity in [start, end] (end: now) to the online store."""
        from datetime import UTC

        from featurestore._progress import RowProgress
        from featurestore.serving.materialize import materialize_view, view_specs

        state = self.state()
        specs = {s.name: s for s in view_specs(state, self._view_names(state, views) if views else None)}
        end_dt = utc_datetime(end) or datetime.now(UTC)
        store, start_dt = self.online_store(), utc_datetime(start)
        run = (self.settings, self.engine, self.layout, store)
        results = []
        bar = RowProgress("materialize", enabled=progress)
        for name in bar.steps(specs):
            resolve = _resolver(state, name)
            results.append(
                materialize_view(*run, specs[name], start_dt, end_dt, incremental=incremental, resolve=resolve)
            )
            bar.finish(results[-1].rows_read, note=f"{results[-1].rows_written:,} written")
        return results

    def materialize_incremental(
        self, views: Sequence[str] | str | None = None, end: datetime | str | None = None, *, progress: bool = False
    ) -> list[Any]:
        """Materialize each view from its stored watermark (the previous run's end) to ``end`` (now)."""
        return self.materialize(views, None, end, incremental=True, progress=progress)

    def get_online_features(
        self,
        features: str | Sequence[str],
        entities: dict[str, Any],
        *,
        full_feature_names: bool = False,
        as_of: datetime | str | None = None,
    ) -> Any:
        """Latest values, statuses and event times: ``get_online_features(["v:f"], {"driver_id": [1, 2]})``.

        ``as_of`` sets the time aggregation windows end at (default: now), for backtests and tests.
        """
        from featurestore.serving.lookup import read_online

        return read_online(
            self.state(),
            self.online_store(),
            features,
            entities,
            full_feature_names=full_feature_names,
            max_entities=self.settings.max_entities,
            as_of=utc_datetime(as_of),
        )

    def push(self, view: str, rows: Any, *, to_offline: bool = False, to_online: bool = True) -> Any:
        """Write rows (join keys, event_timestamp, every feature) online through the push gate.

        ``rows`` is a polars frame, ``{column: [values]}``, ``[{column: value}, ...]`` or the
        path of a ``.parquet``, ``.csv`` or ``.jsonl`` file. ``to_offline=True`` also merges them
        into the offline store; with ``to_online=False`` too, only there (Feast's ``PushMode.OFFLINE``).
        """
        from featurestore.serving.push import push_rows

        state = self.state()
        spec = state.view(view)
        if isinstance(rows, str | os.PathLike):
            rows = read_rows_file(Path(rows), csv_dtypes(spec))
        return push_rows(
            self.settings,
            self.online_store(),
            spec,
            rows,
            to_offline=to_offline,
            to_online=to_online,
            layout=self.layout,
            resolve=_resolver(state, view, self.registry),
        )


def _previous_version(state: RegistryState, view: str) -> str | None:
    """The version of ``view`` applied before its current one (registry history), or None (none, or
    a registry written before applied versions were kept)."""
    current = state.view(view).version
    for entry in reversed(state.history):
        version = entry.get("views", {}).get(view)
        if version is not None and version != current:
            return str(version) if version in state.data.get("versions", {}).get(view, {}) else None
    return None


def _resolver(state: RegistryState, view: str, registry: Registry | None = None) -> Any:
    """The spec of an applied version of ``view``: from ``state``, else from a fresh read of ``registry``."""

    def resolve(version: str) -> Any:
        try:
            return state.view(view, version)
        except RegistryError:
            if registry is None:
                raise
            return registry.load().view(view, version)

    return resolve


def csv_dtypes(spec: Any) -> dict[str, pl.DataType]:
    """How a CSV file of rows to push is read: join keys as declared (``02134`` stays a String key),
    times and features as text, which the push types as declared, row by row (``abc`` for a number
    fails its row, as at ingest); Bool features as Boolean."""
    from featurestore.dsl.types import Bool

    out: dict[str, pl.DataType] = {name: pl.String() for name in ("event_timestamp", "created", "created_timestamp")}
    out.update({name: dtype.polars for name, dtype in spec.join_keys.items()})
    for name, dtype in spec.features.items():
        if not dtype.is_list:  # a list has no CSV form: left to the reader
            out[name] = pl.Boolean() if dtype == Bool else pl.String()
    return out


def read_rows_file(path: Path, csv_dtypes: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Rows to push from a Parquet, CSV or JSON-lines file (times as ISO text are parsed by the push).

    ``csv_dtypes`` types a CSV file's columns (those it has); others are inferred.
    """
    from featurestore.errors import InvalidRequestError

    if not path.is_file():
        raise InvalidRequestError(f"rows file {path} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path)
        if suffix == ".csv":
            return pl.read_csv(path, schema_overrides=_present(path, csv_dtypes or {}))
        if suffix in (".jsonl", ".ndjson"):
            return pl.read_ndjson(path)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidRequestError(f"rows file {path} cannot be read: {type(exc).__name__}: {exc}") from None
    raise InvalidRequestError(f"rows file {path}: use a .parquet, .csv or .jsonl file")


def _present(path: Path, dtypes: dict[str, pl.DataType]) -> dict[str, pl.DataType]:
    """The entries of ``dtypes`` naming a column of CSV file ``path`` (its header)."""
    header = pl.read_csv(path, n_rows=0).columns
    return {name: dtype for name, dtype in dtypes.items() if name in header}
