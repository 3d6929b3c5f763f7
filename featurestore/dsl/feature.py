"""Feature: one named, typed column of a feature view."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from featurestore.dsl.names import check_identifier
from featurestore.dsl.types import DType

__all__ = ["Feature"]

RESERVED = {"event_timestamp", "created_timestamp", "__fs_pushed"}


class Feature:
    """A feature column: ``Feature("temp", Float64, checks=[in_range(-40, 130)])``.

    NaN is null: a float NaN is stored (offline and online) as null, unless
    ``allow_nan=True`` keeps it as a value; such a feature's view must be ``online=False``,
    because the online store's JSON rows cannot hold NaN.
    """

    def __init__(
        self,
        name: str,
        dtype: DType,
        *,
        description: str = "",
        checks: Sequence[Any] = (),
        allow_nan: bool = False,
    ) -> None:
        self.name = check_identifier(name, "feature")
        if name in RESERVED:
            raise ValueError(f"feature name {name!r} is reserved")
        if not isinstance(dtype, DType):
            raise ValueError(f"feature {name!r}: dtype must be a featurestore dtype (Int64, Float64...), got {dtype!r}")
        self.dtype = dtype
        base = dtype.inner if dtype.inner is not None else dtype
        if allow_nan and base.name not in ("Float64", "Float32"):
            raise ValueError(f"feature {name!r}: allow_nan applies to Float64/Float32 features, not {dtype}")
        self.allow_nan = bool(allow_nan)
        self.description = description
        self.checks = list(checks)
        for check in self.checks:
            _check_runs_on(name, dtype, check)

    def __repr__(self) -> str:
        return f"Feature({self.name!r}, {self.dtype})"


def _check_runs_on(name: str, dtype: DType, check: Any) -> None:
    """Raise ValueError when a row check cannot run on the feature's dtype (``in_range(0, 9)`` on a String,
    ``matches`` on a number): its gate would fail every batch at ingest and be skipped on push."""
    if getattr(check, "level", None) != "row" or getattr(check, "kind", None) == "expr":
        return  # an expr may read other columns: its view's gate runs it
    import polars as pl

    try:
        pl.DataFrame(schema={name: dtype.polars}).select(check.valid(name))
    except pl.exceptions.PolarsError as exc:
        why = str(exc).strip().splitlines()[0]
        raise ValueError(f"feature {name!r} ({dtype}): check {check!r} cannot run on it: {why}") from None
