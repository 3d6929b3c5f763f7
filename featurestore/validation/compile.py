"""Registered view specs -> one pandera.polars DataFrameSchema per view version, compiled once."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import polars as pl

from featurestore.dsl.checks import Check, FrameCheck, Gate, check_from_dict
from featurestore.errors import ValidationError

__all__ = [
    "CompiledGate",
    "compile_gate",
    "strictly_increasing",
    "pandera_name",
    "checks_digest",
    "TS",
    "UNIQUE_KEY",
    "MAX_FUTURE",
    "FRESHNESS",
]

TS = "event_timestamp"
UNIQUE_KEY = "unique_key"
MAX_FUTURE = "max_future"
FRESHNESS = "freshness"

# pandera's own names for its built-in checks, as our report names them.
_PANDERA_NAMES = {"multiple_fields_uniqueness": UNIQUE_KEY, "column_in_dataframe": "column_present"}


@dataclass
class CompiledGate:
    """A view version's gate, ready to run: the pandera schema plus what its check names mean."""

    view: str
    version: str
    digest: str
    gate: Gate
    schema: Any
    keys: list[str]
    features: list[str]
    row_checks: dict[tuple[str | None, str], Check] = field(default_factory=dict)
    frame_checks: set[str] = field(default_factory=set)
    # The same schema without the (keys, event time) uniqueness check, for batches that
    # are strictly increasing in (keys, event time): those cannot hold a duplicate.
    schema_sorted: Any = None

    def is_frame_check(self, name: str) -> bool:
        """Whether a failure of check ``name`` condemns the whole batch rather than rows."""
        return name in self.frame_checks or name.startswith("dtype(")


_CACHE: dict[tuple[str, str, str], CompiledGate] = {}
_LOCK = threading.Lock()


def checks_digest(raw: dict[str, Any]) -> str:
    """A digest of a view's checks and gate: they change without changing the version."""
    part = {
        "features": [[f["name"], f["dtype"], f.get("checks", [])] for f in raw["features"]],
        "gate": raw.get("gate"),
    }
    return hashlib.sha256(orjson.dumps(part, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def compile_gate(spec: Any) -> CompiledGate:
    """The compiled gate of a ViewSpec, cached by (view, version, checks digest)."""
    raw = spec.raw
    key = (spec.name, spec.version, checks_digest(raw))
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    compiled = _compile(spec, key[2])
    with _LOCK:
        _CACHE[key] = compiled
    return compiled


def _rebuild_gate(view: str, data: Any) -> Gate:
    if data is None:
        return Gate()
    if isinstance(data, dict) and "policy" in data:
        return Gate.from_dict(data)
    raise ValidationError(
        f"feature view {view!r}: gate {data.get('repr', data) if isinstance(data, dict) else data!r} is not a "
        "featurestore.Gate; use Gate(policy=..., checks=[...]) in the definitions and apply again"
    )


def _rebuild_check(view: str, feature: str, data: Any) -> Check:
    if isinstance(data, dict) and "kind" in data:
        check = check_from_dict(data)
        if isinstance(check, FrameCheck):
            raise ValidationError(
                f"feature view {view!r}, feature {feature!r}: {check.name} is a dataframe-level check; "
                "declare it in the view's Gate(checks=[...])"
            )
        return check
    shown = data.get("repr", data) if isinstance(data, dict) else data
    raise ValidationError(
        f"feature view {view!r}, feature {feature!r}: check {shown} is not a featurestore check; "
        "use not_null(), in_range(...), expr(pl.col(...) ..., name=...) and apply again"
    )


def _row_check(valid: pl.Expr, name: str) -> Any:
    import pandera.polars as pa

    return pa.Check(lambda data: data.lazyframe.select(valid), name=name)


def _frame_check(valid: pl.Expr, name: str) -> Any:
    import pandera.polars as pa

    return pa.Check(lambda data: data.lazyframe.select(valid), name=name)


def _max_future_check(gate: Gate) -> Any:
    import pandera.polars as pa

    tolerance = gate.max_future

    # "now" is taken when the check runs, not when the schema was compiled.
    def fn(data: Any) -> Any:
        bound = datetime.now(UTC) + tolerance if tolerance is not None else None
        return data.lazyframe.select(pl.col(TS) <= pl.lit(bound, dtype=pl.Datetime("us", "UTC")))

    return pa.Check(fn, name=MAX_FUTURE)


def _freshness_check(gate: Gate) -> Any:
    import pandera.polars as pa

    bound = gate.freshness

    def fn(data: Any) -> Any:
        oldest = datetime.now(UTC) - bound if bound is not None else None
        newest = pl.col(TS).max()
        return data.lazyframe.select(newest.is_not_null() & (newest >= pl.lit(oldest, dtype=pl.Datetime("us", "UTC"))))

    return pa.Check(fn, name=FRESHNESS)


def _pandera_polars() -> Any:
    """``pandera.polars``, imported without the warning pyspark gives at pandera's import when pandas is 3.x.

    pandera probes pyspark when it is installed (the ``spark`` extra); featurestore's gates never use it.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        import pandera.polars as pa
    return pa


def _compile(spec: Any, digest: str) -> CompiledGate:
    pa = _pandera_polars()

    raw = spec.raw
    gate = _rebuild_gate(spec.name, raw.get("gate"))
    keys = list(spec.join_keys)
    compiled = CompiledGate(spec.name, spec.version, digest, gate, None, keys, [f["name"] for f in raw["features"]])
    columns: dict[str, Any] = {k: pa.Column(t.polars, nullable=True) for k, t in spec.join_keys.items()}
    ts_checks = []
    if gate.max_future is not None:
        ts_checks.append(_max_future_check(gate))
        compiled.row_checks[(TS, MAX_FUTURE)] = Check("max_future", name=MAX_FUTURE)
    columns[TS] = pa.Column(pl.Datetime("us", "UTC"), checks=ts_checks, nullable=True)
    for f in raw["features"]:
        name = f["name"]
        checks = []
        for data in f.get("checks", []):
            check = _rebuild_check(spec.name, name, data)
            checks.append(_row_check(check.valid(name), check.name))
            compiled.row_checks[(name, check.name)] = check
        columns[name] = pa.Column(spec.features[name].polars, checks=checks, nullable=True)
    frame = []
    for fc in gate.checks:
        frame.append(_frame_check(fc.valid(), fc.name))
        compiled.frame_checks.add(fc.name)
    if gate.freshness is not None:
        frame.append(_freshness_check(gate))
        compiled.frame_checks.add(FRESHNESS)
    compiled.frame_checks.add("column_present")
    # An aggregation view's rows are events: two at the same time are two events.
    unique_key = gate.unique_key and raw.get("events") is None
    unique = [*keys, TS] if unique_key else None
    if unique_key:
        compiled.row_checks[(None, UNIQUE_KEY)] = Check("unique_key", name=UNIQUE_KEY)
    name = f"{spec.name}@{spec.version}"
    compiled.schema = pa.DataFrameSchema(columns, checks=frame, unique=unique, strict=False, name=name)
    compiled.schema_sorted = pa.DataFrameSchema(columns, checks=frame, unique=None, strict=False, name=name)
    return compiled


def strictly_increasing(df: pl.DataFrame, columns: list[str]) -> bool:
    """Whether rows are strictly increasing in ``columns`` (lexicographically), so all distinct.

    One vectorised pass; ingest hands the gate rows sorted this way, which lets it skip
    pandera's costlier hash-based uniqueness check. Nulls make it answer False.
    """
    if df.height < 2:
        return True
    later: pl.Expr = pl.lit(False)
    for c in reversed(columns):
        col, prev = pl.col(c), pl.col(c).shift(1)
        later = (col > prev) | ((col == prev) & later)
    verdict = df.select(later.slice(1).all(ignore_nulls=False)).item()
    return bool(verdict)


def pandera_name(name: str) -> str:
    """Our name for a check pandera reports under ``name``."""
    return _PANDERA_NAMES.get(name, name)
