"""Ingest: source -> transform -> typed, de-duplicated rows -> gate -> Parquet partitions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from featurestore.dsl.names import KEY_SEPARATOR
from featurestore.dsl.types import DType, Int64, String, Timestamp
from featurestore.dsl.view import FeatureView
from featurestore.errors import DefinitionError, IngestError
from featurestore.offline.base import OfflineEngine, TransformOutputError
from featurestore.offline.cast import DTYPE_CHECK, CastColumn, cast_column
from featurestore.offline.commit import Transaction, recover, retry_conflicts
from featurestore.offline.frames import Rounding, nan_as_null
from featurestore.offline.layout import OfflineLayout
from featurestore.registry.spec import ViewSpec
from featurestore.validation.quarantine import SOURCE_ROW, SourceRows

__all__ = [
    "IngestResult",
    "IngestBatch",
    "read_view",
    "write_view",
    "check_ingest_inputs",
    "read_key_dtypes",
    "storable",
    "TS",
    "PUSHED_CREATED",
    "PUSHED",
    "read_stored_day",
    "carried_pushed_rows",
    "failed_values_text",
]

TS = "event_timestamp"
# The created time of stored rows (the source's, a push's or null): it orders a later push of the
# same (keys, event time) as the online store orders it (null: oldest).
PUSHED_CREATED = "created_timestamp"
# Whether a stored row came by push (true) or from the source (false; a file an older version wrote
# lacks the column: from the source). An ingest rebuilds a range from the source and keeps the
# pushed rows in it, merged by the online store's rule: a push is never undone by a re-ingest.
PUSHED = "__fs_pushed"
_CREATED = "__fs_created"
_POS = "__fs_pos"  # a typed row's position in the frame read from the source
_TS = "__fs_ts"
_BAD = "__fs_bad"
_FAILURE_SCHEMA = {"row": pl.Int64, "check": pl.String, "column": pl.String, "value": pl.String}
# Rows no entity can be found by: a null join key, a text key holding the key separator.
NULL_KEY_CHECK = "not_null"
KEY_SEPARATOR_CHECK = "key_separator"


@dataclass
class IngestResult:
    """What one ingest of one view did."""

    view: str
    version: str
    rows_read: int
    rows_written: int
    partitions: list[str] = field(default_factory=list)
    gate: Any = None
    # Source rows with the same (keys, event time) as a later one: not stored.
    duplicates_dropped: int = 0


def _transformed(view: FeatureView, engine: OfflineEngine) -> pl.LazyFrame:
    """The view's source rows through its transform (``engine.read``); a failure names the view."""
    try:
        return engine.read(view)
    except DefinitionError:
        raise
    except TransformOutputError as exc:
        raise DefinitionError(str(exc), module=view.module, obj=view.name) from None
    except Exception as exc:  # user code and engines raise anything
        raise DefinitionError(
            f"reading the source or running the transform failed ({engine.name} engine): {type(exc).__name__}: {exc}",
            module=view.module,
            obj=view.name,
        ) from None


def read_key_dtypes(view: FeatureView, keys: Sequence[str], engine: OfflineEngine) -> dict[str, DType]:
    """The dtypes of join keys declared without one, as the view's (transformed) data holds them.

    Integer columns become Int64 and strings String. When the data cannot be read yet
    (or holds another type) the key defaults to Int64, and ingest reports any mismatch.
    """
    try:
        schema = engine.schema(view)
    except Exception:  # no data yet, or a transform that fails: ingest will say so
        schema = {}
    out: dict[str, DType] = {}
    for key in keys:
        dtype = schema.get(key)
        out[key] = String if dtype == pl.String else Int64
    return out


@dataclass
class IngestBatch:
    """One view's source rows, ready for the gate: typed, one per (keys, event time).

    ``rows`` holds the join keys, ``event_timestamp`` and the features as declared.
    ``failures`` (row, check, column, value) are values that could not be typed (their
    typed value is null); ``source`` the full source rows behind ``rows``, which the
    quarantine keeps.
    """

    rows: pl.DataFrame
    rows_read: int
    duplicates_dropped: int
    failures: pl.DataFrame
    source: SourceRows

    def gate_inputs(self) -> dict[str, Any]:
        """The keyword arguments of a gate (``run_gate``) for this batch."""
        return {"known": self.failures, "source": self.source, "duplicates_dropped": self.duplicates_dropped}


def _typing(spec: ViewSpec, src: Any, schema: dict[str, pl.DataType]) -> dict[str, CastColumn]:
    """How each stored column is read from the source: keys, event time, created time, features."""
    out = {k: cast_column(k, schema[k], t) for k, t in spec.join_keys.items()}
    out[TS] = cast_column(src.timestamp, schema[src.timestamp], Timestamp, Rounding.CEIL)
    if src.created:
        out[_CREATED] = cast_column(src.created, schema[src.created], Timestamp, Rounding.CEIL)
    else:
        out[_CREATED] = CastColumn(pl.lit(None, dtype=pl.Datetime("us", "UTC")), None)
    out.update({f: cast_column(f, schema[f], t) for f, t in spec.features.items()})
    return out


def read_view(
    view: FeatureView,
    spec: ViewSpec,
    engine: OfflineEngine,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    events: bool = False,
) -> IngestBatch:
    """Rows of ``view`` in [start, end): typed as declared, one per (keys, event time).

    Event times are rounded up to the microsecond (``event_time_utc``); rows whose
    (keys, event time) repeat keep the greatest created time, then the last row read, and
    the others are counted in ``duplicates_dropped``. NaN becomes null unless the feature
    allows NaN. A value that cannot be typed is a failing row for the gate, not an error.
    With ``events`` (an aggregation view, ``spec`` its ``event_view()``) every row is kept,
    except repeats of an event id, with its ``created_timestamp``.
    """
    lf = _transformed(view, engine)
    try:
        schema = dict(lf.collect_schema())
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
    typing = _typing(spec, src, schema)
    # The event time is computed once, to filter the range before anything else is read; a row
    # without one (a time that cannot be read, or none at all) belongs to no range and is kept:
    # the gate reports it (``dtype`` or ``not_null``), so it never disappears uncounted.
    lf = lf.with_row_index(SOURCE_ROW).with_columns(typing[TS].value.alias(_TS))
    in_range = pl.col(_TS).is_not_null()
    if start is not None:
        in_range = in_range & (pl.col(_TS) >= start)
    if end is not None:
        in_range = in_range & (pl.col(_TS) < end)
    try:
        raw = lf.filter(in_range | pl.col(_TS).is_null()).collect()
    except pl.exceptions.PolarsError as exc:
        raise DefinitionError(
            f"reading the source or running the transform failed: {type(exc).__name__}: {exc}",
            module=view.module,
            obj=view.name,
        ) from None
    typing[TS] = CastColumn(pl.col(_TS), typing[TS].failed)
    masks = {name: c.failed for name, c in typing.items() if c.failed is not None}
    typed = raw.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias(_POS),
        *[c.value.alias(name) for name, c in typing.items()],
        *[m.alias(f"{_BAD}{i}") for i, m in enumerate(masks.values())],
    )
    typed = nan_as_null(typed, feats, spec.allow_nan)
    stored = [*keys, TS, *feats]
    if events:  # an event log: every row counts, only repeats of an event id are dropped
        from featurestore.offline.aggregate import CREATED, event_rows

        rows = event_rows(typed, spec, _CREATED, _POS, keep=[_POS, *(f"{_BAD}{i}" for i in range(len(masks)))])
        dropped, stored = typed.height - rows.height, [*stored, CREATED]
    else:
        rows, dropped = _deduplicate(typed, [*keys, TS])
        # Every file of a view holds the created time (null without a source column): a later push of
        # the same keys and event time replaces the row only with a greater one, and readers of the
        # store see one layout whichever write made a file.
        rows, stored = rows.with_columns(pl.col(_CREATED).alias(PUSHED_CREATED)), [*stored, PUSHED_CREATED]
    rows, stored = rows.with_columns(pl.lit(False).alias(PUSHED)), [*stored, PUSHED]
    failures = _cast_failures(rows, raw, masks, _sources(spec, src))
    unread = {k: f"{_BAD}{i}" for i, k in enumerate(masks) if k in (*keys, TS)}
    failures = _key_failures(rows, spec, unread, failures, src.timestamp)
    source = SourceRows(raw.drop(_TS), rows.get_column(_POS))
    return IngestBatch(rows.select(stored), raw.height, dropped, failures, source)


def _sources(spec: ViewSpec, src: Any) -> dict[str, tuple[str, DType]]:
    """Stored column -> (the source column it is read from, its declared dtype)."""
    out: dict[str, tuple[str, DType]] = {k: (k, t) for k, t in spec.join_keys.items()}
    out[TS] = (src.timestamp, Timestamp)
    if src.created:
        out[_CREATED] = (src.created, Timestamp)
    out.update({f: (f, t) for f, t in spec.features.items()})
    return out


def _deduplicate(typed: pl.DataFrame, subset: list[str]) -> tuple[pl.DataFrame, int]:
    """One row per ``subset`` (greatest created time, then the last row read), sorted; and rows dropped.

    Rows without a key or event time (null, or a value that could not be typed) are not
    de-duplicated: they go to the gate as they are, each a failing row.
    """
    odd = pl.any_horizontal([pl.col(c).is_null() for c in subset])
    if typed.select(odd.any()).item():
        keyed, loose = typed.filter(~odd), typed.filter(odd)
    else:
        keyed, loose = typed, typed.clear()
    unique = keyed.sort([_CREATED, _POS], nulls_last=False).unique(subset=subset, keep="last", maintain_order=False)
    dropped = keyed.height - unique.height
    rows = pl.concat([unique, loose]) if loose.height else unique
    return rows.sort(subset), dropped


def _cast_failures(
    rows: pl.DataFrame,
    raw: pl.DataFrame,
    masks: dict[str, pl.Expr],
    sources: dict[str, tuple[str, DType]],
) -> pl.DataFrame:
    """(row, check, column, value) for every value of ``rows`` that could not be typed."""
    parts = [pl.DataFrame(schema=_FAILURE_SCHEMA)]
    for i, name in enumerate(masks):
        bad = rows.with_row_index("row").filter(pl.col(f"{_BAD}{i}")).select("row", _POS)
        if bad.height == 0:
            continue
        column, dtype = sources[name]
        values = raw.get_column(column).gather(bad.get_column(_POS))
        parts.append(
            pl.DataFrame(
                {
                    "row": bad.get_column("row").cast(pl.Int64),
                    "check": DTYPE_CHECK,
                    "column": column,
                    "value": failed_values_text(values, dtype),
                },
                schema=_FAILURE_SCHEMA,
            )
        )
    return pl.concat(parts)


def storable(rows: pl.DataFrame, spec: ViewSpec) -> pl.DataFrame:
    """``rows`` without those no store can hold, which a gate of policy ``warn`` passes on: a null
    event time or join key, a text key holding the key separator (the gate counted them)."""
    keep = [pl.col(TS).is_not_null(), *(pl.col(k).is_not_null() for k in spec.join_keys)]
    text_keys = [k for k, t in spec.join_keys.items() if t.polars == pl.String]
    keep += [~pl.col(k).str.contains(KEY_SEPARATOR, literal=True) for k in text_keys]
    return rows.filter(pl.all_horizontal(keep))


def _key_failures(
    rows: pl.DataFrame, spec: ViewSpec, unread: dict[str, str], failures: pl.DataFrame, timestamp: str
) -> pl.DataFrame:
    """``failures`` and the rows no entity can be found by: a null join key or event time (check
    ``not_null``, on the source's ``timestamp`` column for the time; a value that could not be typed is
    already a ``dtype`` failure, its mask in ``unread``) or a text key holding the key separator (check
    ``key_separator``). A push refuses them; no store can hold them."""
    parts = [failures]
    for key, dtype in [*spec.join_keys.items(), (TS, Timestamp)]:
        col = pl.col(key)
        null = col.is_null() & ~pl.col(unread[key]) if key in unread else col.is_null()
        found = [(NULL_KEY_CHECK, null, pl.lit("null"))]
        if dtype.polars == pl.String:
            found.append((KEY_SEPARATOR_CHECK, col.str.contains(KEY_SEPARATOR, literal=True), col))
        for check, mask, value in found:
            bad = rows.with_row_index("row").filter(mask)
            if bad.height:
                parts.append(
                    bad.select(
                        pl.col("row").cast(pl.Int64),
                        pl.lit(check).alias("check"),
                        pl.lit(timestamp if key == TS else key).alias("column"),
                        value.cast(pl.String).alias("value"),
                    )
                )
    return pl.concat(parts) if len(parts) > 1 else failures


def failed_values_text(values: pl.Series, dtype: DType) -> list[str]:
    """Offending values as text for the report: ``'abc' (String) is not Float64``."""
    try:
        text = values.cast(pl.String).to_list()
    except pl.exceptions.PolarsError:
        text = [repr(v) for v in values.to_list()]
    return [f"{v!r} ({values.dtype}) is not {dtype}" for v in text]


def write_view(
    layout: OfflineLayout,
    spec: ViewSpec,
    df: pl.DataFrame,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    upsert: bool = False,
    carried: pl.DataFrame | None = None,
) -> list[str]:
    """Replace the [start, end) range of a view version with ``df``, atomically.

    Without a range the whole version is replaced. Rows already stored outside the
    range but in a partially covered day are kept. With ``upsert`` nothing is removed:
    ``df``'s rows (which carry ``PUSHED_CREATED``) are merged into the days they fall on, one
    row per keys and event time as ``newest_per_key`` decides (read and written under the
    view's lock). Returns the partitions written. On object storage a write that another
    one overtook starts again.
    ``carried``: rows pushed to the version before this one (``carried_pushed_rows``), merged in
    as pushed rows, whatever the range, at the first ingest of this version.
    """
    return retry_conflicts(lambda: _write_view_once(layout, spec, df, start, end, upsert, carried))


def _write_view_once(
    layout: OfflineLayout,
    spec: ViewSpec,
    df: pl.DataFrame,
    start: datetime | None,
    end: datetime | None,
    upsert: bool,
    carried: pl.DataFrame | None = None,
) -> list[str]:
    view, version = spec.name, spec.version
    with layout.lock(view):
        recover(layout, view)
        existing = set(layout.dates(view, version))
        new = _by_day(df)
        kept = _by_day(carried) if carried is not None and not existing else {}
        if upsert:
            touched = existing & new.keys()
        elif start is None and end is None:
            touched = existing
        else:
            touched = {d for d in existing if _day_overlaps(d, start, end)}
        txn = Transaction(layout, view, version)
        try:
            for day in sorted(touched | new.keys() | kept.keys()):
                frame = new.get(day)
                if day in kept:  # a new version's first ingest: the rows pushed to the one before
                    frame = _with_pushed(spec, frame, kept[day]).sort([*spec.join_keys, TS], maintain_order=True)
                elif upsert and frame is not None:
                    stored = read_stored_day(layout, spec, day) if day in touched else None
                    frame = newest_per_key(stored, frame, [*spec.join_keys, TS])
                elif day in touched:
                    frame = _rebuilt_day(layout, spec, day, frame, start, end)
                if frame is None or frame.height == 0:
                    continue
                frame.write_parquet(txn.stage_path(day), compression="zstd", statistics=True)
            txn.commit(delete=sorted(touched - set(txn.written)))
        except BaseException:
            txn.abort()
            raise
        return sorted(txn.written)


def _by_day(df: pl.DataFrame) -> dict[str, pl.DataFrame]:
    days = df.get_column(TS).dt.date().cast(pl.String).alias("__date")
    parts = df.with_columns(days).partition_by("__date", as_dict=True, include_key=False)
    return {str(k[0]): v for k, v in parts.items()}


def carried_pushed_rows(layout: OfflineLayout, old: ViewSpec, new: ViewSpec) -> pl.DataFrame | None:
    """The rows pushed to version ``old`` of a view, as version ``new`` stores them, or None (none, or
    other join keys): features matched by name, one ``new`` adds or whose dtype changed null, as the
    online store carries pushed rows forward at a version switch (``carry_forward``)."""
    if old.join_keys != new.join_keys:
        return None
    days = [d for d in layout.dates(old.name, old.version) if _has_pushed(layout, old, d)]
    if not days:
        return None
    rows = pl.concat([read_stored_day(layout, old, d).filter(pl.col(PUSHED)) for d in days], how="diagonal_relaxed")
    values = [
        pl.col(f) if f in old.features and old.features[f] == t else pl.lit(None, dtype=t.polars).alias(f)
        for f, t in new.features.items()
    ]
    return rows.select(*new.join_keys, TS, *values, PUSHED_CREATED, PUSHED)


def _rebuilt_day(
    layout: OfflineLayout,
    spec: ViewSpec,
    day: str,
    frame: pl.DataFrame | None,
    start: datetime | None,
    end: datetime | None,
) -> pl.DataFrame | None:
    """A stored day an ingest replaces (in part, with a range): its rows outside [start, end) as
    they were, the source's rows inside, and the rows pushed inside kept, merged onto the source's
    as a push merges (a plain view: one row per keys and event time, the greater created wins,
    a tie to the source; an aggregation view: the pushed events the source lacks)."""
    in_range = start is not None or end is not None
    if not in_range and not _has_pushed(layout, spec, day):
        return frame  # nothing to keep: the source's rows only (read nothing more)
    old = read_stored_day(layout, spec, day)
    outside = pl.lit(False)
    if start is not None:
        outside = outside | (pl.col(TS) < start)
    if end is not None:
        outside = outside | (pl.col(TS) >= end)
    kept = old.filter(outside)
    pushed = old.filter(~outside & pl.col(PUSHED))
    if pushed.height:
        frame = _with_pushed(spec, frame, pushed)
    if kept.height:  # diagonal: files older versions wrote may lack a column
        frame = kept if frame is None else pl.concat([kept, frame], how="diagonal_relaxed")
    return None if frame is None else frame.sort([*spec.join_keys, TS], maintain_order=True)


def read_stored_day(layout: OfflineLayout, spec: ViewSpec, day: str) -> pl.DataFrame:
    """A stored day's rows in the layout this version writes: a file an older version wrote lacks
    ``PUSHED_CREATED`` (null: created before any push) or ``PUSHED`` (false: from the source)."""
    old = layout.read_partition(spec.name, spec.version, day)
    missing = {PUSHED_CREATED: pl.lit(None, dtype=pl.Datetime("us", "UTC")), PUSHED: pl.lit(False)}
    return old.with_columns(value.alias(name) for name, value in missing.items() if name not in old.columns)


def _has_pushed(layout: OfflineLayout, spec: ViewSpec, day: str) -> bool:
    """Whether a stored day holds pushed rows, from its ``PUSHED`` column alone."""
    try:
        flags = layout.read_partition(spec.name, spec.version, day, columns=[PUSHED])
    except (pl.exceptions.PolarsError, KeyError, ValueError):  # pyarrow: ArrowInvalid is a ValueError
        return False  # a file written before the column: no pushed row in it
    return bool(flags.get_column(PUSHED).fill_null(False).any())


def _with_pushed(spec: ViewSpec, frame: pl.DataFrame | None, pushed: pl.DataFrame) -> pl.DataFrame:
    """The source's rows of a day with the rows pushed to it merged in (see ``_rebuilt_day``)."""
    if frame is None:
        return pushed
    pushed = pushed.select(frame.columns)
    if spec.events is None:  # the pushed rows replayed onto the source's: newest_per_key's rule
        return newest_per_key(frame, pushed, [*spec.join_keys, TS])
    # Events: a pushed event the source also holds (same keys, time and values) is the source's.
    same = [c for c in frame.columns if c not in (PUSHED_CREATED, PUSHED)]
    extra = pushed.join(frame.select(same).unique(), on=same, how="anti", nulls_equal=True)
    return pl.concat([frame, extra], how="vertical_relaxed")


def newest_per_key(stored: pl.DataFrame | None, pushed: pl.DataFrame, subset: list[str]) -> pl.DataFrame:
    """One row per ``subset`` (keys, event time) from a day's ``stored`` rows and ``pushed`` rows, sorted.

    The rule of the online store: the greatest ``PUSHED_CREATED`` wins; within the push a
    full tie goes to the later row, and a pushed row replaces a stored one only with a greater
    created time (an ingested row holds its source's, or null: older than any push; a file an
    older version wrote lacks the column: null).
    """
    created = pl.col(PUSHED_CREATED)
    rows = pushed.sort(created, maintain_order=True, nulls_last=False).unique(subset, keep="last", maintain_order=True)
    if stored is not None:  # as read_stored_day gives it
        both = pl.concat([stored.select(rows.columns), rows], how="vertical_relaxed")
        rows = both.sort(created, descending=True, nulls_last=True, maintain_order=True).unique(
            subset, keep="first", maintain_order=True
        )
    return rows.sort(subset)


def _day_overlaps(day: str, start: datetime | None, end: datetime | None) -> bool:
    d0 = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    d1 = d0 + timedelta(days=1)
    return (start is None or d1 > start) and (end is None or d0 < end)


def check_ingest_inputs(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and start >= end:
        raise IngestError(f"--start {start.isoformat()} must be before --end {end.isoformat()}")
