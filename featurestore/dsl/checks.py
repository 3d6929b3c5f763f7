"""Declarative data-quality checks and the view-level Gate: plain values, serialisable, no I/O."""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any, Literal

__all__ = [
    "Check",
    "FrameCheck",
    "Drift",
    "Gate",
    "POLICIES",
    "not_null",
    "in_range",
    "greater_than",
    "greater_than_or_equal_to",
    "less_than",
    "less_than_or_equal_to",
    "isin",
    "not_in",
    "matches",
    "str_length",
    "unique",
    "expr",
    "min_rows",
    "max_null_fraction",
    "frame_expr",
    "check_from_dict",
    "attached_schema",
]

POLICIES = ("quarantine", "fail", "warn")

# Expert pandera schemas cannot be serialised; they are kept here, keyed by a digest of
# their repr, so a process that imported the definitions can still run them.
_ATTACHED_SCHEMAS: dict[str, Any] = {}


def _encode(value: Any) -> Any:
    """A JSON-able form of a check parameter (datetimes are tagged ISO strings)."""
    if isinstance(value, datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if "$date" in value:
            return date.fromisoformat(value["$date"])
        if "$float" in value:
            return float(value["$float"])
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _serialize_expr(e: Any) -> str:
    import polars as pl

    if not isinstance(e, pl.Expr):
        raise TypeError(f"expected a polars expression, got {type(e).__name__}")
    return str(e.meta.serialize(format="json"))


def _deserialize_expr(text: str) -> Any:
    import polars as pl

    return pl.Expr.deserialize(io.StringIO(text), format="json")


class Check:
    """A row-level check of one feature column; a row fails when the check is false.

    Nulls pass every check except ``not_null`` (declare it to forbid them). Build
    checks with the lowercase constructors: ``in_range(0, 250)``, ``not_null()``...
    """

    level = "row"

    def __init__(self, kind: str, params: dict[str, Any] | None = None, *, name: str | None = None) -> None:
        self.kind = kind
        self.params = dict(params or {})
        self.name = name or self._default_name()

    def _default_name(self) -> str:
        p = self.params
        if self.kind == "expr":
            return "expr"
        if self.kind == "in_range":
            return f"in_range({p['min']!r}, {p['max']!r})"
        if self.kind in ("isin", "not_in"):
            shown = ", ".join(repr(v) for v in p["values"][:5]) + (", ..." if len(p["values"]) > 5 else "")
            return f"{self.kind}([{shown}])"
        if self.kind == "str_length":
            return f"str_length({p.get('min')!r}, {p.get('max')!r})"
        args = ", ".join(repr(v) for v in p.values())
        return f"{self.kind}({args})"

    def valid(self, column: str) -> Any:
        """The polars expression that is true for valid values of ``column``."""
        import polars as pl

        c, p, k = pl.col(column), self.params, self.kind
        if k == "not_null":
            return c.is_not_null()
        if k == "in_range":
            lo, hi = p.get("include_min", True), p.get("include_max", True)
            closed: Literal["both", "left", "right", "none"] = (
                ("both" if hi else "left") if lo else ("right" if hi else "none")
            )
            return c.is_between(pl.lit(p["min"]), pl.lit(p["max"]), closed=closed)
        if k == "greater_than":
            return c > pl.lit(p["value"])
        if k == "greater_than_or_equal_to":
            return c >= pl.lit(p["value"])
        if k == "less_than":
            return c < pl.lit(p["value"])
        if k == "less_than_or_equal_to":
            return c <= pl.lit(p["value"])
        if k == "isin":
            return c.is_in(p["values"])
        if k == "not_in":
            return c.is_in(p["values"]).not_()
        if k == "matches":
            return c.str.contains(p["pattern"])
        if k == "str_length":
            n = c.str.len_chars()
            ok = pl.lit(True)
            if p.get("min") is not None:
                ok = ok & (n >= p["min"])
            if p.get("max") is not None:
                ok = ok & (n <= p["max"])
            return ok
        if k == "unique":
            return c.is_duplicated().not_() | c.is_null()
        if k == "expr":
            return _deserialize_expr(p["expr"])
        raise ValueError(f"unknown check kind {k!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "kind": self.kind, "name": self.name, "params": _encode_params(self.params)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Check) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        return self.name if self.kind != "expr" else f"expr(name={self.name!r})"


def _encode_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _encode(v) for k, v in params.items()}


def _decode_params(params: dict[str, Any]) -> dict[str, Any]:
    return {k: _decode(v) for k, v in params.items()}


class FrameCheck(Check):
    """A dataframe-level check: a batch fails as a whole (``min_rows``, ``max_null_fraction``...)."""

    level = "frame"

    def _default_name(self) -> str:
        p = self.params
        if self.kind == "min_rows":
            return f"min_rows({p['n']})"
        if self.kind == "max_null_fraction":
            return f"max_null_fraction({p['column']!r}, {p['fraction']})"
        return "frame_expr"

    def valid(self, column: str | None = None) -> Any:
        """A polars expression giving one boolean for the whole frame."""
        import polars as pl

        p = self.params
        if self.kind == "min_rows":
            return pl.len() >= p["n"]
        if self.kind == "max_null_fraction":
            col = pl.col(p["column"])
            return (pl.len() == 0) | (col.null_count() / pl.len() <= p["fraction"])
        if self.kind == "frame_expr":
            return _deserialize_expr(p["expr"]).all()
        raise ValueError(f"unknown frame check kind {self.kind!r}")


# -- row-level constructors ------------------------------------------------
def not_null() -> Check:
    """Values must be present."""
    return Check("not_null")


def in_range(min: Any, max: Any, *, include_min: bool = True, include_max: bool = True) -> Check:  # noqa: A002
    """``min <= value <= max`` (bounds inclusive unless told otherwise)."""
    params: dict[str, Any] = {"min": min, "max": max}
    if not include_min:
        params["include_min"] = False
    if not include_max:
        params["include_max"] = False
    return Check("in_range", params)


def greater_than(value: Any) -> Check:
    """``value > bound``."""
    return Check("greater_than", {"value": value})


def greater_than_or_equal_to(value: Any) -> Check:
    """``value >= bound``."""
    return Check("greater_than_or_equal_to", {"value": value})


def less_than(value: Any) -> Check:
    """``value < bound``."""
    return Check("less_than", {"value": value})


def less_than_or_equal_to(value: Any) -> Check:
    """``value <= bound``."""
    return Check("less_than_or_equal_to", {"value": value})


def isin(values: Sequence[Any]) -> Check:
    """The value is one of ``values``."""
    return Check("isin", {"values": list(values)})


def not_in(values: Sequence[Any]) -> Check:
    """The value is none of ``values``."""
    return Check("not_in", {"values": list(values)})


def matches(pattern: str) -> Check:
    """The string contains a match of the regular expression (anchor it with ``^...$``)."""
    import re

    re.compile(pattern)
    return Check("matches", {"pattern": pattern})


def str_length(min: int | None = None, max: int | None = None) -> Check:  # noqa: A002
    """The string has between ``min`` and ``max`` characters."""
    if min is None and max is None:
        raise ValueError("str_length needs min or max")
    return Check("str_length", {"min": min, "max": max})


def unique() -> Check:
    """No two rows of the batch share a value (every copy of a duplicate fails)."""
    return Check("unique")


def expr(expression: Any, *, name: str) -> Check:
    """A custom row-level check: a polars expression, true for valid rows.

    ``expr(pl.col("dewp") <= pl.col("temp"), name="dewpoint_below_temp")``
    """
    return Check("expr", {"expr": _serialize_expr(expression)}, name=name)


# -- dataframe-level constructors -----------------------------------------
def min_rows(n: int) -> FrameCheck:
    """The batch has at least ``n`` rows."""
    return FrameCheck("min_rows", {"n": int(n)})


def max_null_fraction(column: str, fraction: float) -> FrameCheck:
    """At most ``fraction`` of ``column`` is null."""
    return FrameCheck("max_null_fraction", {"column": column, "fraction": float(fraction)})


def frame_expr(expression: Any, *, name: str) -> FrameCheck:
    """A custom dataframe-level check: a polars expression aggregating to true.

    ``frame_expr(pl.col("temp").mean() < 120, name="mean_temp_plausible")``
    """
    return FrameCheck("frame_expr", {"expr": _serialize_expr(expression)}, name=name)


def check_from_dict(data: dict[str, Any]) -> Check:
    """Rebuild a check from ``to_dict()`` output (as stored in the registry)."""
    if "kind" not in data:
        raise ValueError(f"not a featurestore check: {data!r}")
    cls = FrameCheck if data.get("level") == "frame" else Check
    return cls(data["kind"], _decode_params(data.get("params", {})), name=data.get("name"))


class Drift:
    """Population stability index of each feature against the view's stored baseline.

    ``psi_threshold``: a feature drifts when its PSI exceeds it (0.1 slight, 0.25
    major). ``features``: which features (all by default). ``fail``: drift fails the
    gate (otherwise it is only reported).
    """

    def __init__(self, psi_threshold: float = 0.25, *, features: Sequence[str] | None = None, fail: bool = False):
        if psi_threshold <= 0:
            raise ValueError("Drift: psi_threshold must be positive")
        self.psi_threshold = float(psi_threshold)
        self.features = None if features is None else list(features)
        self.fail = bool(fail)

    def to_dict(self) -> dict[str, Any]:
        return {"psi_threshold": self.psi_threshold, "features": self.features, "fail": self.fail}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Drift:
        return cls(data["psi_threshold"], features=data.get("features"), fail=data.get("fail", False))

    def __repr__(self) -> str:
        return f"Drift({self.to_dict()})"


# Event times may run this far ahead of the writer's clock (clock skew between machines).
DEFAULT_MAX_FUTURE = timedelta(minutes=5)


class Gate:
    """The view-level checks and the policy of a view's validation gate.

    ``policy``: ``"quarantine"`` (default: set failing rows aside and write the rest,
    unless more than ``max_bad_fraction`` of the batch fails or a dataframe-level
    check fails, then write nothing), ``"fail"`` (any failure rejects the batch) or
    ``"warn"`` (write everything, report the failures).
    ``unique_key``: (join keys, event time) is unique in the batch. ``max_future``:
    event times further than this in the future fail (default 5 minutes, ``None`` turns
    the check off): one row dated a year ahead would otherwise stay served and make every
    real-time push of its entity look stale.
    ``freshness``: the newest event time is at most this old. ``checks``: dataframe-level
    checks. ``drift``: a :class:`Drift`.
    ``schema``: an expert's ``pandera.polars`` schema or model, run in addition; it
    cannot be serialised, so it only runs in processes that imported the definitions.
    """

    def __init__(
        self,
        policy: str = "quarantine",
        *,
        max_bad_fraction: float = 0.05,
        unique_key: bool = True,
        max_future: timedelta | None = DEFAULT_MAX_FUTURE,
        freshness: timedelta | None = None,
        checks: Sequence[FrameCheck] = (),
        drift: Drift | None = None,
        schema: Any = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"Gate: policy must be one of {POLICIES}, got {policy!r}")
        if not 0 <= max_bad_fraction <= 1:
            raise ValueError("Gate: max_bad_fraction must be between 0 and 1")
        for c in checks:
            if not isinstance(c, FrameCheck):
                raise ValueError(f"Gate: checks must be dataframe-level checks (min_rows, ...), got {c!r}")
        self.policy = policy
        self.max_bad_fraction = float(max_bad_fraction)
        self.unique_key = bool(unique_key)
        self.max_future = max_future
        self.freshness = freshness
        self.checks: list[FrameCheck] = list(checks)
        self.drift = drift
        self.schema = schema
        self.schema_key: str | None = None
        if schema is not None:
            self.schema_key = hashlib.sha256(repr(schema).encode()).hexdigest()[:16]
            _ATTACHED_SCHEMAS[self.schema_key] = schema

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "max_bad_fraction": self.max_bad_fraction,
            "unique_key": self.unique_key,
            "max_future_seconds": None if self.max_future is None else self.max_future.total_seconds(),
            "freshness_seconds": None if self.freshness is None else self.freshness.total_seconds(),
            "checks": [c.to_dict() for c in self.checks],
            "drift": None if self.drift is None else self.drift.to_dict(),
            "schema": None if self.schema is None else {"key": self.schema_key, "repr": repr(self.schema)[:2000]},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Gate:
        """Rebuild a gate from the registry (an expert schema is re-attached when in memory)."""
        if not data:
            return cls()
        if "policy" not in data:
            raise ValueError(f"not a featurestore Gate: {data!r}")
        fr = data.get("freshness_seconds")
        mf = data.get("max_future_seconds", DEFAULT_MAX_FUTURE.total_seconds())
        gate = cls(
            data["policy"],
            max_bad_fraction=data.get("max_bad_fraction", 0.05),
            unique_key=data.get("unique_key", True),
            max_future=None if mf is None else timedelta(seconds=mf),
            freshness=None if fr is None else timedelta(seconds=fr),
            checks=[check_from_dict(c) for c in data.get("checks", [])],  # type: ignore[misc]
            drift=None if data.get("drift") is None else Drift.from_dict(data["drift"]),
        )
        schema = data.get("schema")
        if schema:
            gate.schema_key = schema.get("key")
            gate.schema = _ATTACHED_SCHEMAS.get(gate.schema_key or "")
        return gate

    def __repr__(self) -> str:
        return f"Gate(policy={self.policy!r}, max_bad_fraction={self.max_bad_fraction})"


def attached_schema(key: str | None) -> Any:
    """The expert pandera schema registered under ``key`` in this process, or None."""
    return None if key is None else _ATTACHED_SCHEMAS.get(key)
