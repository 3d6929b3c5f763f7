"""Quarantine: rows a gate set aside, as Parquet under <offline_root>/_quarantine/<view>/run=<id>/."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

__all__ = [
    "QUARANTINE_DIR",
    "REASON_COLUMNS",
    "SOURCE_ROW",
    "SourceRows",
    "quarantine_dir",
    "write_quarantine",
    "read_quarantine",
    "scan_quarantine",
]

QUARANTINE_DIR = "_quarantine"
# Added to the failing rows: the position in the source (or batch), the first failure (check, column,
# offending value), how many checks failed and all of them as text.
REASON_COLUMNS = ["_row", "_check", "_column", "_value", "_failures", "_reasons", "_run_id", "_path"]
# A column of SourceRows.frame holding each row's number in the source; written as ``_row``.
SOURCE_ROW = "__fs_source_row"


@dataclass(frozen=True)
class SourceRows:
    """The full rows behind a typed batch: every column of ``frame`` (ids, ``created``, columns
    that are not features, values as the source held them), and for each batch row its
    position in ``frame``. The quarantine writes these instead of the typed columns.
    """

    frame: pl.DataFrame
    position: pl.Series

    def take(self, batch_rows: pl.Series) -> pl.DataFrame:
        """The source rows of batch rows ``batch_rows``, in that order."""
        return self.frame.select(pl.all().gather(self.position.gather(batch_rows)))


def quarantine_dir(offline_root: Path, view: str, run_id: str | None = None) -> Path:
    base = Path(offline_root) / QUARANTINE_DIR / view
    return base if run_id is None else base / f"run={run_id}"


def write_quarantine(
    offline_root: Path,
    view: str,
    run_id: str,
    path: str,
    rows: pl.DataFrame,
    failures: pl.DataFrame,
    source: SourceRows | None = None,
) -> Path | None:
    """Write the failing ``rows`` with their reasons; ``failures`` has row, check, column, value.

    With ``source`` the whole source row is written for each failing row (every column,
    as read), else the batch row. Written to a temporary name and renamed, so a reader
    never sees half a file.
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
    reasons = reasons.with_columns(pl.col("_row").cast(pl.Int64)).sort("_row")
    if source is not None:
        # ``_row`` becomes the row's number in the source (or transformed) frame.
        batch_rows = reasons.get_column("_row")
        bad = source.take(batch_rows)
        at = bad.get_column(SOURCE_ROW) if SOURCE_ROW in bad.columns else source.position.gather(batch_rows)
        bad = bad.drop([c for c in [*REASON_COLUMNS, SOURCE_ROW] if c in bad.columns])
        out = bad.hstack(reasons.with_columns(at.cast(pl.Int64).alias("_row")))
    else:
        out = (
            rows.with_row_index("_row")
            .with_columns(pl.col("_row").cast(pl.Int64))
            .join(reasons, on="_row", how="inner")
            .sort("_row")
        )
    out = out.with_columns(pl.lit(run_id).alias("_run_id"), pl.lit(path).alias("_path"))
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
    return scan_quarantine(files).collect()


def scan_quarantine(files: Sequence[Path]) -> pl.LazyFrame:
    """Quarantine files (of one view's runs) as one frame.

    Each file keeps the source rows' values as read, so one column can hold a number in one run
    and text, a list or an object in another (a push of ``"abc"`` or ``[1.0]`` for a Float64): such a
    column is read as text in every run (lists and objects as JSON), never coerced to one run's type.
    """
    frames = [pl.scan_parquet(f) for f in files]
    if len(frames) == 1:
        return frames[0]
    schemas = [pl.read_parquet_schema(f) for f in files]  # footers only
    types: dict[str, set[str]] = {}
    for schema in schemas:
        for name, dtype in schema.items():
            if dtype != pl.Null:
                types.setdefault(name, set()).add(str(dtype))
    mixed = {name for name, seen in types.items() if len(seen) > 1}
    if mixed:
        frames = [
            frame.with_columns(_as_text(name, schema[name]) for name in mixed if name in schema)
            for frame, schema in zip(frames, schemas, strict=True)
        ]
    return pl.concat(frames, how="diagonal_relaxed")


def _as_text(name: str, dtype: pl.DataType) -> pl.Expr:
    col = pl.col(name)
    if not dtype.is_nested():
        return col.cast(pl.String)
    # {"name": value} as JSON, cut down to the value (a column name is an identifier: no escapes)
    encoded = pl.struct(col).struct.json_encode().str.slice(len(name) + 4).str.head(-1)
    return pl.when(col.is_not_null()).then(encoded).alias(name)
