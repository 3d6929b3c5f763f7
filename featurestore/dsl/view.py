"""FeatureView: features of one or more entities, read from a source, optionally transformed."""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from featurestore.dsl._origin import defined_in
from featurestore.dsl.aggregation import Aggregation, window_us
from featurestore.dsl.entity import Entity
from featurestore.dsl.feature import Feature
from featurestore.dsl.names import check_identifier
from featurestore.dsl.source import Source
from featurestore.dsl.types import DType, Float64, String

__all__ = ["FeatureView", "FeatureViewProjection"]

Transform = Callable[[Any], Any] | str


class FeatureView:
    """A named group of features sharing entities, a source and an event time.

    ``transform`` is a function ``polars.LazyFrame -> polars.LazyFrame`` or a DuckDB
    SQL string that selects from the table ``source``. Its output must hold the join
    keys, the source's timestamp column and every declared feature.
    ``gate`` (a :class:`featurestore.Gate`) sets view-level checks and the gate policy.
    ``transform_key_local=True`` declares that a polars transform's rows for one join-key
    value depend only on the source rows of that value (per-entity sorts, lags, rolling
    sums), so a distributed engine may run it per key group; it only says how the transform
    may run, so it is not part of the version.

    With ``aggregations`` (a list of :class:`featurestore.Aggregation`) the source is an
    event log and the view's features are the aggregations; ``features`` then optionally
    types (and checks) the event columns. ``granularity`` (None: exact sliding windows)
    aligns window starts to its multiples; ``event_id`` names a column whose repeats are
    one event (a retried push counts once).
    """

    def __init__(
        self,
        name: str,
        entities: Sequence[Entity | str],
        source: Source,
        features: Sequence[Feature] = (),
        *,
        aggregations: Sequence[Aggregation] = (),
        granularity: timedelta | None = None,
        event_id: str | Feature | None = None,
        ttl: timedelta | None = None,
        transform: Transform | None = None,
        transform_key_local: bool = False,
        tags: Mapping[str, str] | None = None,
        owner: str = "",
        online: bool = True,
        description: str = "",
        gate: Any = None,
    ) -> None:
        self.module = defined_in()
        self.name = check_identifier(name, "feature view")
        if isinstance(entities, Entity | str):
            entities = [entities]
        if not entities:
            raise ValueError(f"feature view {name!r} needs at least one entity")
        for e in entities:
            if not isinstance(e, Entity | str):
                raise ValueError(f"feature view {name!r}: entities must be Entity objects or names, got {e!r}")
        self.entities: list[Entity | str] = list(entities)
        if not isinstance(source, Source):
            raise ValueError(f"feature view {name!r}: source must be a ParquetSource, CsvSource or SqlSource")
        self.source = source
        feats = list(features)
        if not all(isinstance(f, Feature) for f in feats) or not (feats or aggregations):
            raise ValueError(f"feature view {name!r}: features must be a non-empty list of Feature")
        _check_unique(name, [f.name for f in feats], "feature")
        self.aggregations: list[Aggregation] = list(aggregations)
        self.event_columns: list[Feature] = []
        self.event_id: Feature | None = None
        self.granularity = granularity
        if self.aggregations:
            feats = self._aggregate(name, feats, granularity, event_id, ttl)
        elif granularity is not None or event_id is not None:
            raise ValueError(f"feature view {name!r}: granularity and event_id need aggregations=[...]")
        self.features = feats
        if ttl is not None and (not isinstance(ttl, timedelta) or ttl <= timedelta(0)):
            raise ValueError(f"feature view {name!r}: ttl must be a positive timedelta or None")
        self.ttl = ttl
        if transform is not None and not (callable(transform) or isinstance(transform, str)):
            raise ValueError(f"feature view {name!r}: transform must be a function or a DuckDB SQL string")
        self.transform = transform
        if transform_key_local and not callable(transform):
            raise ValueError(f"feature view {name!r}: transform_key_local=True declares a polars transform function")
        self.transform_key_local = bool(transform_key_local)
        self.tags = dict(tags or {})
        self.owner = owner
        self.online = bool(online)
        keeps_nan = [f.name for f in feats if f.allow_nan]
        if self.online and keeps_nan:
            # Online rows are JSON, which has no NaN: the online store would answer null where
            # training sets hold NaN. Parity first: such a view stays offline.
            raise ValueError(
                f"feature view {name!r}: feature(s) {keeps_nan} allow NaN, which the online store cannot "
                "serve (JSON has no NaN); declare the view with online=False or drop allow_nan"
            )
        self.description = description
        self.gate = gate

    def _aggregate(
        self,
        name: str,
        columns: list[Feature],
        granularity: timedelta | None,
        event_id: str | Feature | None,
        ttl: timedelta | None,
    ) -> list[Feature]:
        """Check an aggregation view's declarations; return its features (one per aggregation)."""
        if not all(isinstance(a, Aggregation) for a in self.aggregations):
            raise ValueError(f"feature view {name!r}: aggregations must be a list of Aggregation")
        if ttl is not None:
            raise ValueError(f"feature view {name!r}: an aggregation view has windows, not a ttl")
        if granularity is not None:
            if not isinstance(granularity, timedelta) or window_us(granularity) <= 0:
                raise ValueError(f"feature view {name!r}: granularity must be a positive timedelta or None")
            for a in self.aggregations:
                if window_us(a.window) % window_us(granularity):
                    raise ValueError(
                        f"feature view {name!r}: window of {a.name!r} ({a.window}) is not a multiple of "
                        f"the granularity {granularity}"
                    )
        _check_unique(name, [a.name for a in self.aggregations], "aggregation")
        typed = {f.name: f for f in columns}
        for a in self.aggregations:
            if a.reads_column and a.column not in typed:
                typed[a.column] = Feature(a.column, a.dtype or Float64)
            if a.reads_column:
                a.check_column(typed[a.column].dtype)
        if isinstance(event_id, str):
            event_id = Feature(event_id, String)
        if event_id is not None:
            if not isinstance(event_id, Feature) or event_id.dtype.name not in ("String", "Int64", "Int32"):
                raise ValueError(f"feature view {name!r}: event_id must be a column name or a String/Int64 Feature")
            if event_id.name in typed:
                raise ValueError(f"feature view {name!r}: event_id {event_id.name!r} is also an aggregated column")
        self.event_id = event_id
        self.event_columns = list(typed.values())
        return [
            Feature(
                a.name,
                a.output_dtype(typed[a.column].dtype) if a.reads_column else a.output_dtype(Float64),
                description=a.description,
            )
            for a in self.aggregations
        ]

    def __getitem__(self, names: Sequence[str] | str) -> FeatureViewProjection:
        if isinstance(names, str):
            names = [names]
        known = {f.name for f in self.features}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise KeyError(f"feature view {self.name!r} has no feature(s) {unknown}")
        return FeatureViewProjection(self, list(names))

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"feature view {self.name!r} has no feature {name!r}")

    def transform_source(self) -> dict[str, str] | None:
        """The transform as text, for the version hash and the registry."""
        t = self.transform
        if t is None:
            return None
        if isinstance(t, str):
            return {"kind": "sql", "text": t.strip()}
        try:
            text = textwrap.dedent(inspect.getsource(t))
        except (OSError, TypeError):
            text = getattr(t, "__qualname__", repr(t))
        return {"kind": "python", "text": text, "name": getattr(t, "__qualname__", "")}

    def join_keys(self, entities: Mapping[str, Entity]) -> dict[str, DType | None]:
        """Join key -> dtype over the view's entities (None: to be read from the data)."""
        keys: dict[str, DType | None] = {}
        for e in self.entities:
            ent = e if isinstance(e, Entity) else entities[e]
            keys.update(ent.join_keys)
        return keys

    def __repr__(self) -> str:
        return f"FeatureView({self.name!r}, features={[f.name for f in self.features]})"


def _check_unique(view: str, names: list[str], what: str) -> None:
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise ValueError(f"feature view {view!r}: {what} {n!r} is declared twice")
        seen.add(n)


class FeatureViewProjection:
    """A subset of a view's features, written ``view[["a", "b"]]``."""

    def __init__(self, view: FeatureView, features: list[str]) -> None:
        self.view = view
        self.features = features

    def __repr__(self) -> str:
        return f"{self.view.name}[{self.features!r}]"
