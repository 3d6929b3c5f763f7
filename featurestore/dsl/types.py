"""Feature dtypes and their mapping to polars, DuckDB and JSON."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "DType",
    "Int64",
    "Int32",
    "Float64",
    "Float32",
    "String",
    "Bool",
    "Timestamp",
    "List",
    "dtype_from_name",
]

_SCALARS = {
    "Int64": "BIGINT",
    "Int32": "INTEGER",
    "Float64": "DOUBLE",
    "Float32": "FLOAT",
    "String": "VARCHAR",
    "Bool": "BOOLEAN",
    "Timestamp": "TIMESTAMPTZ",
}


@dataclass(frozen=True)
class DType:
    """A feature or key dtype: a scalar name, or a list of a scalar."""

    name: str
    inner: DType | None = None

    def __post_init__(self) -> None:
        if self.inner is None and self.name not in _SCALARS:
            raise ValueError(f"unknown dtype {self.name!r}; use one of {sorted(_SCALARS)} or List(...)")

    def __str__(self) -> str:
        return f"List({self.inner})" if self.inner is not None else self.name

    __repr__ = __str__

    @property
    def is_list(self) -> bool:
        return self.inner is not None

    @property
    def polars(self) -> Any:
        """The polars dtype that stores this type (timestamps are UTC, microseconds)."""
        import polars as pl

        if self.inner is not None:
            return pl.List(self.inner.polars)
        return {
            "Int64": pl.Int64,
            "Int32": pl.Int32,
            "Float64": pl.Float64,
            "Float32": pl.Float32,
            "String": pl.String,
            "Bool": pl.Boolean,
            "Timestamp": pl.Datetime("us", "UTC"),
        }[self.name]

    @property
    def duckdb(self) -> str:
        if self.inner is not None:
            return f"{self.inner.duckdb}[]"
        return _SCALARS[self.name]

    @property
    def is_numeric(self) -> bool:
        return self.name in ("Int64", "Int32", "Float64", "Float32")


Int64 = DType("Int64")
Int32 = DType("Int32")
Float64 = DType("Float64")
Float32 = DType("Float32")
String = DType("String")
Bool = DType("Bool")
Timestamp = DType("Timestamp")


def List(inner: DType) -> DType:  # noqa: N802 - reads like a type constructor
    """A list of a scalar dtype, e.g. ``List(Float64)``."""
    if inner.inner is not None:
        raise ValueError("nested lists are not supported")
    return DType("List", inner)


def dtype_from_name(text: str) -> DType:
    """Parse ``"Int64"`` or ``"List(Float64)"`` as written in the registry."""
    if text.startswith("List(") and text.endswith(")"):
        return List(dtype_from_name(text[5:-1]))
    return DType(text)
