"""Ingest: source -> transform -> typed, de-duplicated rows -> gate -> Parquet partitions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from featurestore.dsl.types import DType, Int64, String
from featurestore.dsl.view import FeatureView
from featurestore.errors import DefinitionError, IngestError
from featurestore.offline.commit import Transaction, recover
from featurestore.offline.frames import DTypeMismatchError, coerce_column, to_utc
from featurestore.offline.layout import OfflineLayout
from featurestore.registry.spec import ViewSpec

__all__ = ["IngestResult", "read_view", "write_view", "check_ingest_inputs", "read_key_dtypes", "TS", "Gate"]

TS = "event_timestamp"
_CREATED = "__created"
_ORDER = "__order"

# A gate takes the typed rows and returns the rows that may be written (or raises).
Gate = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass
class IngestResult:
    """What one ingest of one view did."""

    view: str
    version: str
    rows_read: int
    rows_written: int
    partitions: list[str] = field(default_factory=list)
    gate: Any = None


def _transformed(view: FeatureView, repo: Path, con: Any) -> pl.LazyFrame:
    t = view.transform
    try:
        if isinstance(t, str):
            con.execute(f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {view.source.relation_sql(repo)}")
            return con.sql(t).pl().lazy()
        frame = view.source.scan(repo, con)
        if t is None:
            return frame
        out = t(frame)
    except DefinitionError:
        raise
    except Exception as exc:  # user code and engines raise anything
        raise DefinitionError(
            f"reading the source or running the transform failed: {type(exc).__name__}: {exc}",
            module=view.module,
            obj=view.name,
        ) from None
    if isinstance(out, pl.DataFrame):
        out = out.lazy()
    if not isinstance(out, pl.LazyFrame):
        raise DefinitionError(
            f"transform must return a polars LazyFrame or DataFrame, got {type(out).__name__}",
            module=view.module,
            obj=view.name,
        )
    return out


def read_key_dtypes(view: FeatureView, keys: Sequence[str], repo: Path, con: Any) -> dict[str, DType]:
    """The dtypes of join keys declared without one, as the view's (transformed) data holds them.

    Integer columns become Int64 and strings String. When the data cannot be read yet
    (or holds another type) the key defaults to Int64, and ingest reports any mismatch.
    """
    t = view.transform
    try:
        if isinstance(t, str):
            con.execute(f"CREATE OR REPLACE TEMP VIEW source AS SELECT * FROM {view.source.relation_sql(repo)}")
            schema = dict(con.sql(f"SELECT * FROM ({t}) LIMIT 0").pl().schema)
        else:
            schema = dict(_transformed(view, repo, con).collect_schema())
    except Exception:  # no data yet, or a transform that fails: ingest will say so
        schema = {}
    out: dict[str, DType] = {}
    for key in keys:
        dtype = schema.get(key)
        out[key] = String if dtype == pl.String else Int64
    return out


def read_view(
    view: FeatureView,
    spec: ViewSpec,
    repo: Path,
    con: Any,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    events: bool = False,
) -> tuple[pl.DataFrame, int]:
    """Rows of ``view`` in [start, end): typed as declared, one per (keys, event time).

    Returns the frame (keys, ``event_timestamp``, features) and the number of rows
    the transform produced in the range before de-duplication. With ``events`` (an
    aggregation view, ``spec`` its ``event_view()``) every row is kept, except repeats of an
    event id, with its ``created_timestamp``.
    """
    lf = _transformed(view, repo, con)
    try:
        schema = lf.collect_schema()
    except Exception as exc:
        raise DefinitionError(f"transform output is invalid: {exc}", module=view.module, obj=view.name) from None
    src = view.source
    keys, feats = spec.join_keys, spec.features
    needed = [*keys, src.timestamp, *feats]
    if src.created:
        needed.append(src.created)
    missing = [c for c in needed if c not in schema]
    if missing:
        raise DefinitionError(
            f"column(s) {missing} missing from the {'transformed' if view.transform else 'source'} frame "
            f"(it has {list(schema)})",
            module=view.module,
            obj=view.name,
        )
    # A text column with no value at all (e.g. an empty CSV column) carries no type: read it as nulls.
    untyped = [c for c, t in feats.items() if schema[c] == pl.String and t.name not in ("String", "Timestamp")]
    empty: set[str] = set()
    if untyped:
        present = lf.select([pl.col(c).is_not_null().any() for c in untyped]).collect().row(0)
        empty = {c for c, has_value in zip(untyped, present, strict=True) if not has_value}
    try:
        exprs = [
            pl.lit(None, dtype=t.polars).alias(k) if k in empty else coerce_column(k, schema[k], t)
            for k, t in {**keys, **feats}.items()
        ]
        exprs.append(to_utc(pl.col(src.timestamp), schema[src.timestamp]).alias(TS))
        if src.created:
            exprs.append(to_utc(pl.col(src.created), schema[src.created]).alias(_CREATED))
        else:
            exprs.append(pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias(_CREATED))
    except DTypeMismatchError as exc:
        raise DefinitionError(str(exc), module=view.module, obj=view.name) from None
    lf = lf.select(exprs).with_row_index(_ORDER)
    lf = lf.filter(pl.col(TS).is_not_null())
    if start is not None:
        lf = lf.filter(pl.col(TS) >= start)
    if end is not None:
        lf = lf.filter(pl.col(TS) < end)
    try:
        df = lf.collect()
    except pl.exceptions.PolarsError as exc:
        raise DefinitionError(
            f"the data does not match the declared columns: {type(exc).__name__}: {exc}",
            module=view.module,
            obj=view.name,
        ) from None
    read = df.height
    if events:
        from featurestore.offline.aggregate import event_rows

        return event_rows(df, spec, _CREATED, _ORDER), read
    subset = [*keys, TS]
    # Greatest created time wins, then the last row read.
    df = (
        df.sort([_CREATED, _ORDER], nulls_last=False)
        .unique(subset=subset, keep="last", maintain_order=False)
        .sort(subset)
        .select([*keys, TS, *feats])
    )
    return df, read


def write_view(
    layout: OfflineLayout,
    spec: ViewSpec,
    df: pl.DataFrame,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    upsert: bool = False,
) -> list[str]:
    """Replace the [start, end) range of a view version with ``df``, atomically.

    Without a range the whole version is replaced. Rows already stored outside the
    range but in a partially covered day are kept. With ``upsert`` nothing is removed:
    ``df``'s rows are merged into the days they fall on, replacing stored rows with the
    same keys and event time (read and written under the view's lock). Returns the
    partitions written.
    """
    view, version = spec.name, spec.version
    with layout.lock(view):
        recover(layout, view)
        existing = set(layout.dates(view, version))
        days = df.get_column(TS).dt.date().cast(pl.String).alias("__date")
        parts = df.with_columns(days).partition_by("__date", as_dict=True, include_key=False)
        new = {str(k[0]): v for k, v in parts.items()}
        if upsert:
            touched = existing & new.keys()
        elif start is None and end is None:
            touched = existing
        else:
            touched = {d for d in existing if _day_overlaps(d, start, end)}
        txn = Transaction(layout, view, version)
        try:
            for day in sorted(touched | new.keys()):
                frame = new.get(day)
                if upsert and frame is not None and day in touched:
                    old = pl.read_parquet(layout.partition_file(view, version, day)).select(df.columns)
                    frame = (
                        pl.concat([old, frame], how="vertical_relaxed")
                        .unique(subset=[*spec.join_keys, TS], keep="last", maintain_order=True)
                        .sort([*spec.join_keys, TS])
                    )
                elif day in existing and (start is not None or end is not None):
                    old = pl.read_parquet(layout.partition_file(view, version, day))
                    outside = pl.lit(False)
                    if start is not None:
                        outside = outside | (pl.col(TS) < start)
                    if end is not None:
                        outside = outside | (pl.col(TS) >= end)
                    kept = old.filter(outside)
                    if kept.height:
                        frame = kept if frame is None else pl.concat([kept, frame]).sort([*spec.join_keys, TS])
                if frame is None or frame.height == 0:
                    continue
                frame.write_parquet(txn.stage_path(day), compression="zstd", statistics=True)
            txn.commit(delete=sorted(touched - set(txn.written)))
        except BaseException:
            txn.abort()
            raise
        return sorted(txn.written)


def _day_overlaps(day: str, start: datetime | None, end: datetime | None) -> bool:
    d0 = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    d1 = d0 + timedelta(days=1)
    return (start is None or d1 > start) and (end is None or d0 < end)


def check_ingest_inputs(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise IngestError(f"--start {start.isoformat()} must be before --end {end.isoformat()}")
