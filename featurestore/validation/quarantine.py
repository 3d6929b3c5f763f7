"""Quarantine: rows a gate set aside, as Parquet under <offline_root>/_quarantine/<view>/run=<id>/."""

from __future__ import annotations

import os
from pathlib import Path

import polars as pl

__all__ = ["QUARANTINE_DIR", "REASON_COLUMNS", "quarantine_dir", "write_quarantine", "read_quarantine"]

QUARANTINE_DIR = "_quarantine"
# Added to the failing rows: the batch position, the first failure (check, column,
# offending value), how many checks failed and all of them as text.
REASON_COLUMNS = ["_row", "_check", "_column", "_value", "_failures", "_reasons", "_run_id", "_path"]


def quarantine_dir(offline_root: Path, view: str, run_id: str | None = None) -> Path:
    base = Path(offline_root) / QUARANTINE_DIR / view
    return base if run_id is None else base / f"run={run_id}"


def write_quarantine(
    offline_root: Path, view: str, run_id: str, path: str, rows: pl.DataFrame, failures: pl.DataFrame
) -> Path | None:
    """Write the failing ``rows`` with their reasons; ``failures`` has row, check, column, value.

    Written to a temporary name and renamed, so a reader never sees half a file.
    """
    if failures.height == 0:
        return None
    reasons = (
        failures.sort("row", maintain_order=True)
        .group_by("row", maintain_order=True)
        .agg(
            pl.col("check").first().alias("_check"),
            pl.col("column").first().alias("_column"),
            pl.col("value").first().alias("_value"),
            pl.len().cast(pl.Int32).alias("_failures"),
            pl.format("{} on {}: {}", "check", pl.col("column").fill_null("*"), pl.col("value").fill_null("null"))
            .str.join("; ")
            .alias("_reasons"),
        )
        .rename({"row": "_row"})
    )
    out = (
        rows.with_row_index("_row")
        .with_columns(pl.col("_row").cast(pl.Int64))
        .join(reasons.with_columns(pl.col("_row").cast(pl.Int64)), on="_row", how="inner")
        .with_columns(pl.lit(run_id).alias("_run_id"), pl.lit(path).alias("_path"))
        .sort("_row")
    )
    target = quarantine_dir(offline_root, view, run_id)
    target.mkdir(parents=True, exist_ok=True)
    final = target / "part-0.parquet"
    tmp = target / f".part-0.parquet.tmp{os.getpid()}"
    out.select([c for c in out.columns if c not in REASON_COLUMNS] + REASON_COLUMNS).write_parquet(tmp)
    tmp.replace(final)
    return final


def read_quarantine(offline_root: Path, view: str, run_id: str | None = None) -> pl.DataFrame:
    """The quarantined rows of a view (one run, or all runs), with their reason columns."""
    base = quarantine_dir(offline_root, view, run_id)
    files = sorted(base.glob("part-0.parquet" if run_id else "run=*/part-0.parquet"))
    if not files:
        return pl.DataFrame()
    return pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
