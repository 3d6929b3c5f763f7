"""Aggregation: a time-window aggregate of one event column (count, sum, mean... over the last w)."""

from __future__ import annotations

import enum
from datetime import timedelta

from featurestore.dsl.names import check_identifier
from featurestore.dsl.types import DType, Float64, Int64

__all__ = ["Aggregation", "AggFunction", "window_label", "window_us", "INT64_RANGE", "int_sum_out_of_range"]

# The values of an Int64, the dtype of a sum of integers (``Aggregation.output_dtype``).
INT64_RANGE = (-(2**63), 2**63 - 1)


class AggFunction(enum.StrEnum):
    """The functions an aggregation computes over the events of its window."""

    COUNT = "count"
    SUM = "sum"
    MEAN = "mean"
    MIN = "min"
    MAX = "max"
    STDDEV = "stddev"
    LAST = "last"
    COUNT_DISTINCT = "count_distinct"


def int_sum_out_of_range(view: str, feature: str, value: object) -> str:
    """The error a training set and a lookup both give for a sum of integers outside ``INT64_RANGE``:
    neither side wraps, widens or nulls it."""
    return (
        f"feature view {view!r}: {feature!r}, a sum of integers, is {value}, outside the Int64 range; "
        "declare its column Float64 to sum it as floats"
    )


# Units for default names, largest first: a window is named in the largest unit dividing it.
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def window_us(window: timedelta) -> int:
    """A window as whole microseconds (the unit every time comparison uses)."""
    return (window.days * 86_400 + window.seconds) * 1_000_000 + window.microseconds


def window_label(window: timedelta) -> str:
    """``10m``, ``1h``, ``1d``, ``7d``: the window in its largest whole unit (24 hours is ``1d``)."""
    us = window_us(window)
    if us % 1_000_000:
        return f"{us}us"
    seconds = us // 1_000_000
    for suffix, size in _UNITS:
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    raise AssertionError("unreachable: seconds divide by 1")


class Aggregation:
    """``Aggregation("amount", "sum", window=timedelta(hours=24))``: the feature ``amount_sum_1d``.

    For an entity at time t, the aggregate of ``column`` over the entity's events with
    ``t - window < event_ts <= t`` (with a view granularity g: ``floor_g(t) - window < event_ts``).
    ``count`` counts events; the other functions ignore nulls. An empty window gives 0 for
    ``count``, ``count_distinct`` and ``sum``, null for the others. ``dtype`` is the column's
    type in the events when the view does not declare it as a feature (default Float64).
    """

    def __init__(
        self,
        column: str,
        function: AggFunction | str,
        *,
        window: timedelta,
        name: str | None = None,
        dtype: DType | None = None,
        description: str = "",
    ) -> None:
        self.column = check_identifier(column, "aggregation column")
        try:
            self.function = AggFunction(function)
        except ValueError:
            raise ValueError(
                f"aggregation of {column!r}: unknown function {function!r}; use one of {[f.value for f in AggFunction]}"
            ) from None
        if not isinstance(window, timedelta) or window <= timedelta(0):
            raise ValueError(f"aggregation of {column!r}: window must be a positive timedelta, got {window!r}")
        self.window = window
        self.name = check_identifier(
            name if name is not None else f"{column}_{self.function.value}_{window_label(window)}", "aggregation"
        )
        if dtype is not None and (not isinstance(dtype, DType) or dtype.is_list):
            raise ValueError(f"aggregation {self.name!r}: dtype must be a scalar featurestore dtype, got {dtype!r}")
        self.dtype = dtype
        self.description = description

    @property
    def reads_column(self) -> bool:
        """Whether the events must carry ``column`` (``count`` counts events, whatever their values)."""
        return self.function is not AggFunction.COUNT

    def output_dtype(self, column_dtype: DType) -> DType:
        """The feature's dtype given the column's: counts are Int64, means and stddevs Float64."""
        f = self.function
        if f in (AggFunction.COUNT, AggFunction.COUNT_DISTINCT):
            return Int64
        if f in (AggFunction.MEAN, AggFunction.STDDEV):
            return Float64
        if f is AggFunction.SUM:
            return Int64 if column_dtype.name in ("Int64", "Int32") else Float64
        return column_dtype

    def check_column(self, column_dtype: DType) -> None:
        """Refuse a function the column's type cannot take (a sum of strings...)."""
        numeric = (AggFunction.SUM, AggFunction.MEAN, AggFunction.STDDEV)
        if self.function in numeric and not column_dtype.is_numeric:
            raise ValueError(
                f"aggregation {self.name!r}: {self.function.value} needs a numeric column, got {column_dtype}"
            )
        if column_dtype.is_list:
            raise ValueError(f"aggregation {self.name!r}: list columns cannot be aggregated")

    def __repr__(self) -> str:
        return f"Aggregation({self.column!r}, {self.function.value!r}, window={self.window!r}, name={self.name!r})"
