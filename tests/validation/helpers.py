"""Helpers for the gate tests: in-memory view specs, frames and a repository source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from featurestore.dsl.checks import Gate
from featurestore.registry.spec import ViewSpec

__all__ = ["T0", "make_spec", "make_frame", "VIEWS", "source_frame", "BAD"]

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_spec(features: dict[str, tuple[str, list[Any]]], gate: Gate | None = None, name: str = "v") -> ViewSpec:
    """A ViewSpec as apply would register it: key ``id``, the given features and checks."""
    raw = {
        "name": name,
        "version": "test0001",
        "join_keys": {"id": "Int64"},
        "features": [
            {"name": f, "dtype": dtype, "checks": [c.to_dict() for c in checks]}
            for f, (dtype, checks) in features.items()
        ],
        "gate": None if gate is None else gate.to_dict(),
    }
    return ViewSpec(raw)


def make_frame(**columns: list[Any]) -> pl.DataFrame:
    """Rows with ``id`` 0..n-1 and hourly event times from 2026-01-01, plus ``columns``."""
    n = len(next(iter(columns.values())))
    ts = [T0 + timedelta(hours=i) for i in range(n)]
    base = pl.DataFrame({"id": list(range(n)), "event_timestamp": ts}).with_columns(
        pl.col("event_timestamp").cast(pl.Datetime("us", "UTC"))
    )
    return base.hstack(pl.DataFrame(columns, strict=False))


VIEWS = """
from datetime import timedelta

import polars as pl

from featurestore import (
    Drift, Entity, Feature, FeatureView, Float64, Gate, ParquetSource, String, expr, in_range, isin,
    max_null_fraction, min_rows, not_null,
)

item = Entity("item", join_keys=["id"])

items = FeatureView(
    "items",
    entities=[item],
    source=ParquetSource("data/src.parquet", timestamp="event_timestamp"),
    features=[
        Feature("x", Float64, checks=[in_range(0, 100), not_null()]),
        Feature("s", String, checks=[isin(["a", "b"])]),
        Feature("y", Float64, checks=[expr(pl.col("y") <= pl.col("x") * 10, name="y_at_most_10x")]),
    ],
    gate=Gate({gate}),
)
"""


def source_frame(n: int = 20, bad: dict[int, dict[str, Any]] | None = None) -> pl.DataFrame:
    """``n`` clean rows (x = id, s = "a"/"b", y = x), with per-id overrides in ``bad``."""
    rows = []
    for i in range(n):
        row = {"id": i, "event_timestamp": T0 + timedelta(hours=i), "x": float(i), "s": "ab"[i % 2], "y": float(i)}
        row.update((bad or {}).get(i, {}))
        rows.append(row)
    return pl.DataFrame(
        rows,
        schema={
            "id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "x": pl.Float64,
            "s": pl.String,
            "y": pl.Float64,
        },
    )


# x out of range, x null, s not allowed: 3 bad rows of 20 (15 %)
BAD = {3: {"x": 1048.0}, 7: {"x": None}, 11: {"s": "zzz"}}
