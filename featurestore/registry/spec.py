"""Definitions -> plain, JSON-serialisable specs, and the content hash that versions a view."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson

from featurestore.dsl.aggregation import AggFunction, window_us
from featurestore.dsl.types import DType, Int64, dtype_from_name
from featurestore.dsl.view import FeatureView
from featurestore.registry.discover import Definitions

__all__ = ["ViewSpec", "EventsSpec", "WindowSpec", "build_specs", "view_version", "to_dict_or_repr"]


def to_dict_or_repr(obj: Any) -> Any:
    """Serialise a check or gate through its ``to_dict`` (declarative) or as text."""
    to_dict = getattr(obj, "to_dict", None)
    return to_dict() if callable(to_dict) else {"repr": repr(obj)}


def _canonical(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def view_version(data_shape: dict[str, Any]) -> str:
    """12 hex digits of the sha256 of what determines a view's stored data."""
    return hashlib.sha256(_canonical(data_shape)).hexdigest()[:12]


@dataclass(frozen=True)
class WindowSpec:
    """One aggregation of an aggregation view: output name, event column, function, window."""

    name: str
    column: str
    function: AggFunction
    window_us: int


@dataclass(frozen=True)
class EventsSpec:
    """What an aggregation view aggregates: typed event columns, the optional event id, the windows."""

    columns: dict[str, DType]
    event_id: str | None
    granularity_us: int | None
    aggregations: tuple[WindowSpec, ...]

    @property
    def horizon_us(self) -> int:
        """How far back from the newest event the online state must reach (longest window + granularity)."""
        return max(a.window_us for a in self.aggregations) + (self.granularity_us or 0)

    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> EventsSpec:
        return cls(
            columns={c["name"]: dtype_from_name(c["dtype"]) for c in raw["columns"]},
            event_id=raw.get("event_id"),
            granularity_us=raw.get("granularity_us"),
            aggregations=tuple(
                WindowSpec(a["name"], a["column"], AggFunction(a["function"]), int(a["window_us"]))
                for a in raw["aggregations"]
            ),
        )


@dataclass(frozen=True)
class ViewSpec:
    """A registered view version as the registry stores it (no Python objects)."""

    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.raw["name"])

    @property
    def version(self) -> str:
        return str(self.raw["version"])

    @property
    def join_keys(self) -> dict[str, DType]:
        return {k: dtype_from_name(v) for k, v in self.raw["join_keys"].items()}

    @property
    def features(self) -> dict[str, DType]:
        return {f["name"]: dtype_from_name(f["dtype"]) for f in self.raw["features"]}

    @property
    def allow_nan(self) -> frozenset[str]:
        """Features that keep NaN as a value (``Feature(..., allow_nan=True)``); others store NaN as null."""
        return frozenset(f["name"] for f in self.raw["features"] if f.get("allow_nan"))

    @property
    def ttl(self) -> timedelta | None:
        s = self.raw.get("ttl_seconds")
        return None if s is None else timedelta(seconds=s)

    @property
    def online(self) -> bool:
        return bool(self.raw.get("online", True))

    @property
    def events(self) -> EventsSpec | None:
        """The aggregation part of an aggregation view (None for a view of plain features)."""
        raw = self.raw.get("events")
        return None if raw is None else EventsSpec.from_raw(raw)

    def event_view(self) -> ViewSpec:
        """This aggregation view as a view of its event columns (typing, gates, offline events)."""
        raw = self.raw["events"]
        return ViewSpec({**self.raw, "features": raw["columns"], "ttl_seconds": None})


KeyTypes = Callable[[FeatureView, list[str]], dict[str, DType]]


def _view_spec(view: FeatureView, defs: Definitions, key_types: KeyTypes | None) -> dict[str, Any]:
    declared = view.join_keys(defs.entities)
    untyped = [k for k, t in declared.items() if t is None]
    if untyped:
        # Keys declared without a dtype are typed from the data when it can be read, else Int64.
        read = key_types(view, untyped) if key_types is not None else {}
        declared = {k: t if t is not None else read.get(k, Int64) for k, t in declared.items()}
    keys = {k: str(t) for k, t in declared.items()}
    features = [
        {
            "name": f.name,
            "dtype": str(f.dtype),
            "description": f.description,
            "checks": [to_dict_or_repr(c) for c in f.checks],
            # Only when set, so views without it keep their version.
            **({"allow_nan": True} if f.allow_nan else {}),
        }
        for f in view.features
    ]
    shape: dict[str, Any] = {
        "join_keys": keys,
        # NaN kept or stored as null changes the stored data, hence the version.
        "features": [[f["name"], f["dtype"], *(["allow_nan"] if f.get("allow_nan") else [])] for f in features],
        "source": view.source.fingerprint(),
        "transform": view.transform_source(),
    }
    events = _events_spec(view)
    if events is not None:
        shape["events"] = events
    out = {
        "name": view.name,
        "version": view_version(shape),
        "module": view.module,
        "entities": [e if isinstance(e, str) else e.name for e in view.entities],
        "join_keys": keys,
        "features": features,
        "ttl_seconds": None if view.ttl is None else view.ttl.total_seconds(),
        "source": view.source.fingerprint(),
        "transform": view.transform_source(),
        "tags": view.tags,
        "owner": view.owner,
        "online": view.online,
        "description": view.description,
        "gate": None if view.gate is None else to_dict_or_repr(view.gate),
    }
    if events is not None:
        out["events"] = events
    return out


def _events_spec(view: FeatureView) -> dict[str, Any] | None:
    """An aggregation view's events and windows as the registry stores them (part of the version)."""
    if not view.aggregations:
        return None
    columns = [
        {
            "name": f.name,
            "dtype": str(f.dtype),
            "description": f.description,
            "checks": [to_dict_or_repr(c) for c in f.checks],
        }
        for f in [*view.event_columns, *([view.event_id] if view.event_id is not None else [])]
    ]
    return {
        "columns": columns,
        "event_id": None if view.event_id is None else view.event_id.name,
        "granularity_us": None if view.granularity is None else window_us(view.granularity),
        "aggregations": [
            {"name": a.name, "column": a.column, "function": a.function.value, "window_us": window_us(a.window)}
            for a in view.aggregations
        ],
    }


def build_specs(defs: Definitions, key_types: KeyTypes | None = None) -> dict[str, Any]:
    """The registry's view of a set of definitions: entities, views and services as dicts.

    ``key_types`` reads the dtypes of join keys declared without one from a view's data.
    """
    return {
        "entities": {
            e.name: {
                "join_keys": {k: None if t is None else str(t) for k, t in e.join_keys.items()},
                "description": e.description,
                "module": e.module,
            }
            for e in sorted(defs.entities.values(), key=lambda e: e.name)
        },
        "views": {v.name: _view_spec(v, defs, key_types) for v in sorted(defs.views.values(), key=lambda v: v.name)},
        "services": {
            s.name: {"features": s.references(), "description": s.description, "tags": s.tags, "module": s.module}
            for s in sorted(defs.services.values(), key=lambda s: s.name)
        },
    }
