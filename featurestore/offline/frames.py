"""Frame helpers shared by ingest and training sets: UTC timestamps and dtype checks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl

from featurestore.dsl.types import DType

__all__ = [
    "to_utc",
    "utc_datetime",
    "coerce_column",
    "check_timestamp_text",
    "TIMESTAMP_FORMATS",
    "DTypeMismatchError",
    "duckdb_connection",
]

TIMESTAMP_FORMATS = "ISO 8601 (2024-01-31, 2024-01-31T12:00:00, 2024-01-31 12:00:00Z or 2024-01-31T12:00:00+02:00)"

UTC_US = pl.Datetime("us", "UTC")


class DTypeMismatchError(ValueError):
    """A column's data cannot be read as the declared dtype."""


def utc_datetime(value: Any) -> datetime | None:
    """A datetime/ISO string as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if not isinstance(value, datetime):
        raise ValueError(f"expected a datetime or ISO string, got {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def to_utc(expr: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """An expression turning a datetime/date/string column into UTC microseconds (naive = UTC)."""
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return expr.dt.convert_time_zone("UTC").cast(UTC_US)
    if dtype == pl.Date:
        return expr.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if dtype == pl.String:
        return _parse_iso_utc(expr)
    if dtype == pl.Null:
        return expr.cast(UTC_US)
    raise DTypeMismatchError(f"cannot read {dtype} as a timestamp")


def check_timestamp_text(df: pl.DataFrame, column: str) -> None:
    """Raise DTypeMismatchError naming ``column`` and its first value that is not an ISO timestamp (text only)."""
    if df.schema[column] != pl.String:
        return
    text = df.get_column(column)
    parsed = df.select(_parse_iso_utc(pl.col(column), strict=False)).to_series()
    bad = text.filter(text.is_not_null() & parsed.is_null())
    if bad.len():
        raise DTypeMismatchError(
            f"column {column!r}: {bad[0]!r} is not a timestamp ({bad.len():,} such values); use {TIMESTAMP_FORMATS}"
        )


def _parse_iso_utc(expr: pl.Expr, strict: bool = True) -> pl.Expr:
    """ISO 8601 text to UTC, row by row: ``Z`` or ``+HH:MM`` offsets, naive (UTC), date only, ``T`` or space."""
    text = (
        expr.str.strip_chars()
        .str.replace(r"Z$", "+00:00")
        .str.replace(r"^(\d{4}-\d{2}-\d{2})[ T]", "${1}T")
        .str.replace(r"T(\d{2}:\d{2})($|[+-])", "T${1}:00${2}")  # no seconds
    )
    date_only = text.str.contains(r"^\d{4}-\d{2}-\d{2}$")
    has_offset = text.str.contains(r"[+-]\d{2}:?\d{2}$")
    full = pl.when(date_only).then(text + "T00:00:00+00:00").when(~has_offset).then(text + "+00:00").otherwise(text)
    return full.str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", time_zone="UTC", strict=strict)


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
        return base in _INT or base in _FLOAT
    if declared.name == "Timestamp":
        return isinstance(actual, pl.Datetime) or actual == pl.Date
    return False


def coerce_column(name: str, actual: pl.DataType, declared: DType) -> pl.Expr:
    """An expression casting ``name`` to ``declared``; raises DTypeMismatchError when that would lose meaning."""
    if not _compatible(actual, declared):
        raise DTypeMismatchError(f"column {name!r} holds {actual}, which does not match the declared dtype {declared}")
    col = pl.col(name)
    if declared.name == "Timestamp":
        return to_utc(col, actual).alias(name)
    return col.cast(declared.polars).alias(name)


def duckdb_connection(
    memory_limit: str = "4GB", temp_dir: str | None = None, threads: int | None = None, search_path: str | None = None
) -> Any:
    """An in-memory DuckDB connection in UTC that spills to ``temp_dir`` beyond ``memory_limit``.

    ``search_path``: the folder relative file paths in SQL resolve against (the repository).
    """
    import duckdb

    config: dict[str, Any] = {"memory_limit": memory_limit}
    if temp_dir:
        config["temp_directory"] = temp_dir
    if threads:
        config["threads"] = threads
    con = duckdb.connect(config=config)
    con.execute("SET TimeZone='UTC'")
    con.execute("SET enable_progress_bar=false")
    if search_path:
        con.execute("SET file_search_path = " + "'" + search_path.replace("'", "''") + "'")
    return con
