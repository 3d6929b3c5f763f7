"""Frame helpers shared by ingest, push and training sets: UTC timestamps, NaN, dtype checks."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import Enum
from typing import TypeVar

import polars as pl

from featurestore.dsl.types import DType
from featurestore.times import utc_datetime

__all__ = [
    "Rounding",
    "to_utc",
    "event_time_utc",
    "entity_time_utc",
    "nan_as_null",
    "finite_or_null",
    "utc_datetime",
    "check_timestamp_text",
    "parse_canonical_timestamps",
    "TIMESTAMP_FORMATS",
    "coerce_column",
    "DTypeMismatchError",
]

TIMESTAMP_FORMATS = "ISO 8601 (2024-01-31, 2024-01-31T12:00:00, 2024-01-31 12:00:00Z or 2024-01-31T12:00:00+02:00)"

UTC_US = pl.Datetime("us", "UTC")
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


class Rounding(Enum):
    """How a time finer than the stored microsecond is rounded."""

    FLOOR = "floor"  # toward the past: entity (request) times
    CEIL = "ceil"  # toward the future: feature event times, so a row is never earlier than its truth


class DTypeMismatchError(ValueError):
    """A column's data cannot be read as the declared dtype."""


def to_utc(expr: pl.Expr, dtype: pl.DataType, rounding: Rounding = Rounding.FLOOR, *, strict: bool = True) -> pl.Expr:
    """An expression turning a datetime/date/string column into UTC microseconds (naive = UTC).

    Nanoseconds are rounded as ``rounding`` says. With ``strict=False`` text that is not
    ISO 8601 becomes null instead of failing the whole column.
    """
    if isinstance(dtype, pl.Datetime):
        if dtype.time_unit == "ns":
            ns = expr.dt.epoch("ns")
            us = ns // 1000 if rounding is Rounding.FLOOR else -((-ns) // 1000)
            return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")
        if dtype.time_zone is None:
            return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC").cast(UTC_US)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        return _parse_iso_utc(expr, rounding, strict)
    if dtype == pl.Null:
        return expr.cast(UTC_US)
    raise DTypeMismatchError(f"cannot read {dtype} as a timestamp")


def event_time_utc(expr: pl.Expr, dtype: pl.DataType, *, strict: bool = True) -> pl.Expr:
    """A feature row's event time (source rows, pushes) in UTC microseconds, nanoseconds rounded UP.

    With entity times rounded down (``entity_time_utc``) a row is never joined to an
    entity row earlier than itself: a row at +500 ns is stored at +1 us, which an entity
    row at +50 ns (read as +0 us) does not reach.
    """
    return to_utc(expr, dtype, Rounding.CEIL, strict=strict)


def entity_time_utc(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An entity (request) row's time in UTC microseconds, nanoseconds rounded DOWN."""
    return to_utc(expr, dtype, Rounding.FLOOR)


def check_timestamp_text(df: pl.DataFrame, column: str) -> None:
    """Raise DTypeMismatchError naming ``column`` and its first value that is not an ISO timestamp (text only)."""
    if df.schema[column] != pl.String:
        return
    text = df.get_column(column)
    parsed = df.select(_parse_iso_utc(pl.col(column), Rounding.FLOOR, strict=False)).to_series()
    bad = text.filter(text.is_not_null() & parsed.is_null())
    if bad.len():
        raise DTypeMismatchError(
            f"column {column!r}: {bad[0]!r} is not a timestamp ({bad.len():,} such values); use {TIMESTAMP_FORMATS}"
        )


def parse_canonical_timestamps(df: pl.DataFrame, column: str) -> pl.DataFrame:
    """``df`` with ``column``'s text parsed to UTC microseconds when every value has the one form
    ``datetime.isoformat()`` writes (``2024-01-31T12:00:00[.ffffff]+02:00``); else ``df`` as it was.

    The fast path of pushes (one strptime instead of the general parser's ten regex passes,
    ~0.2 ms instead of ~4 ms for 100 rows). At most six fractional digits, so no rounding
    applies and the result is the general parser's; any other form (``Z``, a space, a date,
    nanoseconds, a bad value) leaves the text for the general parser and its error message.
    """
    if df.schema[column] != pl.String:
        return df
    text = pl.col(column)
    parsed = text.str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=False)
    check = df.select(
        parsed.alias("__parsed"),
        ((parsed.is_null() & text.is_not_null()) | text.str.contains(r"\.[0-9]{7}")).any().alias("__other"),
    )
    if check.get_column("__other")[0]:
        return df
    return df.with_columns(check.get_column("__parsed").alias(column))


def _parse_iso_utc(expr: pl.Expr, rounding: Rounding, strict: bool) -> pl.Expr:
    """ISO 8601 text to UTC, row by row: ``Z`` or ``+HH:MM`` offsets, naive (UTC), date only, ``T`` or space.

    Digits past the microsecond are cut off (a floor) and, for ``Rounding.CEIL``, a
    microsecond is added when any of them is not zero.
    """
    text = (
        expr.str.strip_chars()
        .str.replace(r"Z$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
        .str.replace(r"T(\d{2}:\d{2})($|[+-])", "T${1}:00${2}")  # no seconds
    )
    below_us = text.str.extract(r"\.\d{6}(\d+)")
    text = text.str.replace(r"(\.\d{6})\d+", "${1}")
    date_only = text.str.contains(r"^\d{4}-\d{2}-\d{2}$")
    has_offset = text.str.contains(r"[+-]\d{2}:?\d{2}$")
    full = pl.when(date_only).then(text + "T00:00:00+00:00").when(~has_offset).then(text + "+00:00").otherwise(text)
    out = full.str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=strict)
    if rounding is Rounding.CEIL:
        out = out + pl.when(below_us.str.contains("[1-9]")).then(pl.duration(microseconds=1)).otherwise(
            pl.duration(microseconds=0)
        )
    return out


def finite_or_null(expr: pl.Expr) -> pl.Expr:
    """A float expression with NaN and infinities made null (null stays null)."""
    return pl.when(expr.is_finite()).then(expr)


def nan_as_null(frame: Frame, dtypes: Mapping[str, DType], keep_nan: Collection[str] = ()) -> Frame:
    """NaN is null: float NaN and infinities (also inside lists) in ``dtypes``' columns become null.

    The one rule for every write (ingest and push), so the offline store, training sets
    and the online store hold the same null: online rows are JSON, which has neither NaN nor
    infinity (a float column of the offline store holding inf while the online store answered
    null made training and serving disagree, in window aggregations too). Features declared
    ``allow_nan=True`` (named in ``keep_nan``, offline only) keep them as values.
    """
    exprs = []
    for name, dtype in dtypes.items():
        if name in keep_nan:
            continue
        base = dtype.inner if dtype.is_list else dtype
        if base is None or base.name not in ("Float64", "Float32"):
            continue
        col = pl.col(name)
        # list.agg runs the element-wise expression inside each list (as list.eval does).
        exprs.append(col.list.agg(finite_or_null(pl.element())) if dtype.is_list else finite_or_null(col))
    return frame.with_columns(exprs) if exprs else frame


_INT = {pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32}
_FLOAT = {pl.Float32, pl.Float64}


def _compatible(actual: pl.DataType, declared: DType) -> bool:
    want = declared.polars
    if actual == want or actual == pl.Null:
        return True
    if declared.is_list:
        return isinstance(actual, pl.List) and (
            actual.inner == pl.Null or _compatible(actual.inner, declared.inner)  # type: ignore[arg-type]
        )
    base = actual.base_type() if hasattr(actual, "base_type") else actual
    if declared.name == "Int64":
        return base in _INT
    if declared.name == "Int32":
        return base in _INT  # a wider integer is narrowed with a checked cast (overflow is an error)
    if declared.name in ("Float64", "Float32"):
        return base in _INT or base in _FLOAT or base == pl.Decimal  # decimals: DuckDB's literals, warehouses
    if declared.name == "Timestamp":
        return isinstance(actual, pl.Datetime) or actual == pl.Date
    return False


def coerce_column(name: str, actual: pl.DataType, declared: DType) -> pl.Expr:
    """An expression casting ``name`` to ``declared``; raises DTypeMismatchError when that would lose meaning."""
    if not _compatible(actual, declared):
        raise DTypeMismatchError(f"column {name!r} holds {actual}, which does not match the declared dtype {declared}")
    col = pl.col(name)
    if declared.name == "Timestamp":
        return to_utc(col, actual, Rounding.FLOOR).alias(name)
    return col.cast(declared.polars).alias(name)
