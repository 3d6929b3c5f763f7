"""Source columns -> declared dtypes, row by row: a value that cannot be cast is a failing row, not an error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from featurestore.dsl.types import DType
from featurestore.offline.frames import Rounding, to_utc

__all__ = ["DTYPE_CHECK", "CastColumn", "cast_column"]

# The check name failing casts are reported under (gate report, quarantine ``_check``).
DTYPE_CHECK = "dtype"

_INT = {pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64}
_FLOAT = {pl.Float32, pl.Float64}
# DuckDB's numeric literals (``1.0``), ROUND of them and warehouse exports are decimals: numbers as floats are.
_NUMBER = _FLOAT | {pl.Decimal}
_TEXT = {pl.String, pl.Categorical, pl.Enum}


@dataclass(frozen=True)
class CastColumn:
    """How one column is typed: the cast value and, when a cast can fail, the mask of failing rows.

    ``failed`` is None when no row can fail (the source type already fits). A failing row's
    typed value is null; the gate reports it and its source row goes to the quarantine.
    """

    value: pl.Expr
    failed: pl.Expr | None


def _base(dtype: Any) -> Any:
    return dtype.base_type() if hasattr(dtype, "base_type") else dtype


def _fits(actual: Any, declared: DType) -> bool:
    """Whether every value of ``actual`` is a value of ``declared`` (the cast cannot fail)."""
    want = declared.polars
    if actual == want or actual == pl.Null:
        return True
    base = _base(actual)
    if declared.name == "Int64":
        return base in _INT - {pl.UInt64}
    if declared.name in ("Float64", "Float32"):
        return base in _INT or base in _NUMBER
    if declared.name == "String":
        return base in _TEXT
    return declared.name == "Timestamp" and (isinstance(actual, pl.Datetime) or actual == pl.Date)


def _castable(actual: Any, declared: DType) -> bool:
    """Whether ``actual`` can hold values of ``declared`` at all (some rows may still fail)."""
    base = _base(actual)
    if declared.is_list:
        return isinstance(actual, pl.List) and declared.inner is not None and _castable(actual.inner, declared.inner)
    if declared.name in ("Int64", "Int32", "Float64", "Float32"):
        return base in _INT or base in _NUMBER or base == pl.String
    if declared.name in ("Timestamp", "Bool"):
        return base == pl.String
    return False


def _bool_from_text(text: pl.Expr) -> pl.Expr:
    """``true``/``false`` in any case (what polars' CSV reader reads as booleans); other text is null."""
    lower = text.str.to_lowercase()
    return pl.when(lower == "true").then(True).when(lower == "false").then(False)


def _list_value(col: pl.Expr, actual: Any, declared: DType) -> pl.Expr:
    """A list column cast element by element; an element that does not survive is null."""
    if declared.inner is not None and declared.inner.name == "Bool" and _base(actual.inner) == pl.String:
        return col.list.agg(_bool_from_text(pl.element()))  # element by element
    return col.cast(declared.polars, strict=False)


def _null_count(col: pl.Expr) -> pl.Expr:
    return col.list.len() - col.list.drop_nulls().list.len()


def cast_column(name: str, actual: pl.DataType, declared: DType, rounding: Rounding = Rounding.FLOOR) -> CastColumn:
    """Cast column ``name`` (held as ``actual``) to ``declared``, row by row.

    A value that does not survive the cast (text that is not a number or an ISO time, an
    integer too wide, a float with a fraction for an integer, text other than ``true`` or
    ``false`` in any case for a Bool, a list element) fails its row.
    A column of an unrelated type (a list for a Float64, a datetime for an Int64) fails
    every row that holds a value, so the gate's policy decides, as for any bad row.
    Empty or blank text is read as null. Timestamps finer than a microsecond are rounded
    as ``rounding`` says (event times up, see ``event_time_utc``).
    """
    col = pl.col(name)
    target = declared.polars
    if _fits(actual, declared):
        if declared.name == "Timestamp":
            return CastColumn(to_utc(col, actual, rounding).alias(name), None)
        return CastColumn(col.cast(target).alias(name), None)
    if not _castable(actual, declared):
        return CastColumn(pl.lit(None, dtype=target).alias(name), col.is_not_null())
    base = _base(actual)
    if declared.is_list:
        value = _list_value(col, actual, declared)
        failed = col.is_not_null() & (value.is_null() | (_null_count(value) != _null_count(col)))
        return CastColumn(value.alias(name), failed)
    if base == pl.String:
        text = col.str.strip_chars()
        text = pl.when(text != "").then(text)
        if declared.name == "Timestamp":
            value = to_utc(text, pl.String(), rounding, strict=False)
        elif declared.name == "Bool":
            value = _bool_from_text(text)
        else:
            value = text.cast(target, strict=False)
        return CastColumn(value.alias(name), text.is_not_null() & value.is_null())
    if base in _NUMBER and declared.name in ("Int64", "Int32"):
        number = col if base == pl.Decimal else col.fill_nan(None)  # NaN is null (frames.nan_as_null)
        value = number.cast(target, strict=False)
        failed = number.is_not_null() & (value.is_null() | (value.cast(pl.Float64) != number.cast(pl.Float64)))
        return CastColumn(value.alias(name), failed)
    value = col.cast(target, strict=False)  # integers narrowed: overflow is null
    return CastColumn(value.alias(name), col.is_not_null() & value.is_null())
