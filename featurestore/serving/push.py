"""Push: rows from an application -> typed frame -> gate -> online store (and optionally offline)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import Enum
from typing import Any

import orjson
import polars as pl

from featurestore.dsl.types import DType, Timestamp
from featurestore.errors import InvalidRequestError, RegistryError, offline_write_errors
from featurestore.offline.cast import DTYPE_CHECK, cast_column
from featurestore.offline.frames import (
    TIMESTAMP_FORMATS,
    DTypeMismatchError,
    check_timestamp_text,
    coerce_column,
    event_time_utc,
    finite_or_null,
    nan_as_null,
    parse_canonical_timestamps,
)
from featurestore.offline.ingest import failed_values_text
from featurestore.offline.layout import OfflineLayout
from featurestore.online.base import OnlineStore
from featurestore.online.codec import KEY_SEPARATOR, now_us
from featurestore.registry.spec import ViewSpec
from featurestore.serving.keys import check_key_dtypes
from featurestore.serving.versions import CREATED_US, SpecResolver, write_to_live_versions
from featurestore.serving.windows import to_us
from featurestore.validation import gate_for
from featurestore.validation.quarantine import SourceRows

__all__ = ["PushMode", "PushResult", "PushBatch", "push_rows", "push_frame", "push_batch"]

TS = "event_timestamp"


class PushMode(Enum):
    """Where a push writes, as Feast's ``PushMode``: the online store (the default), the offline store, or both."""

    ONLINE = "online"
    OFFLINE = "offline"
    ONLINE_AND_OFFLINE = "online_and_offline"

    @classmethod
    def parse(cls, value: Any) -> PushMode:
        """The mode named ``value`` (any case, as Feast's server reads it); InvalidRequestError naming it else."""
        if isinstance(value, str):
            for mode in cls:
                if mode.value == value.lower():
                    return mode
        allowed = ", ".join(repr(m.value) for m in cls)
        raise InvalidRequestError(f"'to' must be one of {allowed}, not {value!r}")

    @classmethod
    def of(cls, view: str, *, to_online: bool, to_offline: bool) -> PushMode:
        """The mode of the SDK's flags; a push to neither store is refused, naming the view."""
        if not (to_online or to_offline):
            raise InvalidRequestError(f"push to {view!r}: to_online and to_offline are both false: nothing to write")
        if not to_offline:
            return cls.ONLINE
        return cls.ONLINE_AND_OFFLINE if to_online else cls.OFFLINE

    @property
    def online(self) -> bool:
        return self is not PushMode.OFFLINE

    @property
    def offline(self) -> bool:
        return self is not PushMode.ONLINE


@dataclass(frozen=True)
class PushResult:
    """What a push did: rows received, written online, skipped as not newer than the stored row.

    ``version`` is the version readers follow; ``versions`` the rows written to each version
    the push reached (during a materialization of a new version, both). A push to the offline
    store only writes nothing online (``rows_written`` 0) and names the partitions it rewrote.
    """

    view: str
    version: str
    rows_received: int
    rows_written: int
    rows_stale: int
    rows_expired: int
    offline_partitions: list[str] = field(default_factory=list)
    gate: Any = None
    versions: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        gate = self.gate.public_dict() if hasattr(self.gate, "public_dict") else None
        return {
            "view": self.view,
            "version": self.version,
            "rows_received": self.rows_received,
            "rows_written": self.rows_written,
            "rows_stale": self.rows_stale,
            "rows_expired": self.rows_expired,
            "versions": self.versions,
            "offline_partitions": self.offline_partitions,
            "gate": gate,
        }


CREATED_COLUMNS = ("created", "created_timestamp")
CREATED = "created"
_POS = "__fs_pos"  # a typed row's position in the pushed batch


@dataclass(frozen=True)
class PushBatch:
    """Pushed rows typed as declared, and the values that could not be (their typed value is null).

    ``failures`` (row, check, column, value) go to the gate under the check ``dtype``; ``source``
    holds the rows as pushed, which the quarantine keeps (``'abc'``, not the null it was typed to).
    """

    rows: pl.DataFrame
    failures: pl.DataFrame | None = None
    source: SourceRows | None = None
    duplicates_dropped: int = 0
    keys_unique: bool = False  # one row per keys and event time (``one_row_per_time`` ran)

    def gate_inputs(self) -> dict[str, Any]:
        """The keyword arguments of the push gate (``run_gate``) for this batch."""
        out = {"duplicates_dropped": self.duplicates_dropped, "keys_unique": self.keys_unique}
        return out if self.failures is None else {**out, "known": self.failures, "source": self.source}

    def one_row_per_time(self, keys: list[str]) -> PushBatch:
        """One row per keys and event time, as an ingest keeps them: the greatest ``created`` (none:
        received now, after any given), then the later row; the others dropped and counted, not
        failed (the gate's uniqueness check quarantined every copy, and the push lost the row)."""
        df, subset = self.rows, [*keys, TS]
        # the check the gate would make (keys and times are never null here: push_batch refuses that)
        if df.height < 2 or not pl.DataFrame([df.get_column(c) for c in subset]).is_duplicated().any():
            return replace(self, keys_unique=True)
        kept = df.with_row_index(_POS)
        if CREATED in df.columns:
            kept = kept.sort(pl.col(CREATED).dt.epoch("us").fill_null(2**62), maintain_order=True)
        kept = kept.unique(subset, keep="last", maintain_order=True).sort(_POS)
        positions = kept.get_column(_POS).cast(pl.Int64)
        failures, source = self.failures, self.source
        if failures is not None:  # renumbered; a dropped row's failures go with it
            renumber = pl.DataFrame({"row": positions, "__fs_new": pl.int_range(positions.len(), eager=True)})
            failures = failures.join(renumber, on="row").select(
                pl.col("__fs_new").cast(pl.Int64).alias("row"), *[c for c in failures.columns if c != "row"]
            )
            failures = failures if failures.height else None
        if source is not None:
            source = SourceRows(source.frame, source.position.gather(positions))
        dropped = df.height - kept.height
        return PushBatch(kept.drop(_POS), failures, source, self.duplicates_dropped + dropped, keys_unique=True)


def push_frame(spec: ViewSpec, rows: Any) -> pl.DataFrame:
    """Rows (a polars frame, ``{column: [values]}`` or ``[{column: value}, ...]``) typed as ``spec`` declares;
    a feature value that cannot be typed is null (``push_batch`` says which)."""
    return push_batch(spec, rows).rows


def push_batch(spec: ViewSpec, rows: Any) -> PushBatch:
    """Rows typed as ``spec`` declares, feature values row by row as at ingest (``cast_column``).

    A feature value that cannot be read as its dtype fails its row (``PushBatch.failures``),
    so the gate's policy decides. What no row can be written without is a request error
    (InvalidRequestError, a 422): rows that are not a table of objects, a column missing or
    unknown, a join key or time that cannot be read or is null.
    """
    mixed = None
    if isinstance(rows, list):
        _check_objects(spec, rows)
        rows, mixed = _separate_kinds(spec, rows)
    try:
        df = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, infer_schema_length=None)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        raise InvalidRequestError(f"push to {spec.name!r}: rows are not a table: {exc}") from None
    join_keys, features = spec.join_keys, spec.features  # properties built from the registry on each access
    check_key_dtypes(spec.name, join_keys)
    declared = {**join_keys, **features}
    missing = [c for c in [*join_keys, TS, *features] if c not in df.columns]
    # A creation-time column (as Feast push frames carry) orders rows of the same event time.
    extra = [c for c in df.columns if c not in declared and c not in (TS, *CREATED_COLUMNS)]
    created = [c for c in CREATED_COLUMNS if c in df.columns]
    if len(created) > 1:
        raise InvalidRequestError(f"push to {spec.name!r}: give one of {list(CREATED_COLUMNS)}, not both")
    if missing or extra:
        raise InvalidRequestError(
            f"push to {spec.name!r}: columns must be the join keys, {TS!r} and every feature "
            f"(missing {missing}, unknown {extra})"
        )
    if df.height == 0:
        raise InvalidRequestError(f"push to {spec.name!r}: no rows")
    for name in [TS, *created]:  # the times that place a row; a Timestamp feature is a value like any other
        _check_time_column(spec, name, df.schema[name])
    times = [TS, *(c for c, t in declared.items() if t == Timestamp), *created]
    typed = None if mixed is not None else _typed_in_one_pass(spec, df, times, created)
    if typed is not None:
        return PushBatch(typed)
    return _typed_row_by_row(spec, df, times, created, mixed)


def _typed_row_by_row(
    spec: ViewSpec, pushed: pl.DataFrame, times: list[str], created: list[str], mixed: pl.DataFrame | None = None
) -> PushBatch:
    """``push_batch``'s step-by-step path: keys and times strictly (their faults named), features by ``cast_column``."""
    df = pushed
    for name in times:
        df = parse_canonical_timestamps(df, name)
    casts = {f: cast_column(f, df.schema[f], t) for f, t in spec.features.items()}
    masks = {f: c.failed for f, c in casts.items() if c.failed is not None}
    try:
        for name in [TS, *created]:
            check_timestamp_text(df, name)  # names the first bad value, not a polars expression
        # Event and created times are rounded up to the microsecond, as at ingest (event_time_utc).
        typed = df.select(
            event_time_utc(pl.col(TS), df.schema[TS]).alias(TS),
            *[coerce_column(k, df.schema[k], t) for k, t in spec.join_keys.items()],
            *[c.value for c in casts.values()],
            *[event_time_utc(pl.col(c), df.schema[c]).alias(CREATED) for c in created],
            *[m.alias(f"{_BAD}{f}") for f, m in masks.items()],
        )
    except (DTypeMismatchError, pl.exceptions.PolarsError) as exc:
        raise InvalidRequestError(f"push to {spec.name!r}: {exc}") from None
    typed = nan_as_null(typed, spec.features, spec.allow_nan)  # NaN is null, as at ingest
    if typed.select(pl.any_horizontal(pl.col([*spec.join_keys, TS]).is_null()).any()).item():
        _refuse_null_keys(spec)
    for key, dtype in spec.join_keys.items():
        if dtype.polars == pl.String and typed.get_column(key).str.contains(KEY_SEPARATOR, literal=True).any():
            _refuse_separator(spec, key)
    failures = _cast_failures(spec, pushed, typed, list(masks))
    if mixed is not None:
        failures = mixed if failures is None else pl.concat([mixed, failures])
    rows = typed.select([*spec.join_keys, TS, *spec.features, *([CREATED] if created else [])])
    if failures is None:
        return PushBatch(rows)
    return PushBatch(rows, failures, SourceRows(pushed, pl.Series(range(pushed.height), dtype=pl.Int64)))


def _cast_failures(spec: ViewSpec, pushed: pl.DataFrame, typed: pl.DataFrame, names: list[str]) -> pl.DataFrame | None:
    """(row, check, column, value) of every feature value that could not be typed; None when there is none."""
    parts = []
    for name in names:
        rows = typed.select(pl.arg_where(pl.col(f"{_BAD}{name}"))).to_series().cast(pl.Int64)
        if rows.len():
            values = failed_values_text(pushed.get_column(name).gather(rows), spec.features[name])
            parts.append(pl.DataFrame({"row": rows, "check": DTYPE_CHECK, "column": name, "value": values}))
    return pl.concat(parts) if parts else None


_BAD = "__fs_bad_"


_CANONICAL = "%Y-%m-%dT%H:%M:%S%.f%z"  # datetime.isoformat()'s form (parse_canonical_timestamps)
_UTC_US = pl.Datetime("us", "UTC")


def _typed_in_one_pass(spec: ViewSpec, df: pl.DataFrame, times: list[str], created: list[str]) -> pl.DataFrame | None:
    """``push_frame``'s typed rows in one polars pass, or None when the slow path must speak.

    The common push (times in ``datetime.isoformat()`` form or already datetimes, every value of
    its declared dtype, keys present): times parsed in Python (a tenth of a millisecond for 100
    rows, half of polars' strptime), then typing, NaN as null and the null-key and
    key-separator checks in one select whose flag says whether all went well. Anything else
    (another time form, a value that does not cast, a null) returns None and the step-by-step
    path names the fault, so the errors are the ones it always gave.
    """
    if any(t.is_list for t in spec.features.values()):
        return None  # lists take nan_as_null's element-wise path
    df = df.clone()  # columns are replaced below; the caller's frame stays as it was
    for name in times:
        if df.schema[name] == pl.String:
            parsed = _parse_isoformat(name, df.get_column(name).to_list())
            if parsed is None:
                return None
            df.replace_column(df.get_column_index(name), parsed)

    natively = _typed_natively(spec, df, created)
    if natively is not None:
        return natively

    def utc(name: str) -> pl.Expr:
        dtype = df.schema[name]
        return pl.col(name) if dtype == _UTC_US else event_time_utc(pl.col(name), dtype)

    def typed_column(name: str, dtype: DType) -> pl.Expr:
        if df.schema[name] == _UTC_US and dtype == Timestamp:
            return pl.col(name)
        expr = coerce_column(name, df.schema[name], dtype)
        if name in spec.features and name not in spec.allow_nan and dtype.polars in (pl.Float64, pl.Float32):
            expr = finite_or_null(expr)  # NaN and infinities are null, as at ingest (nan_as_null)
        return expr

    keys = list(spec.join_keys)
    flags = [pl.any_horizontal(pl.col([*keys, TS]).is_null()).any()]
    for key, dtype in spec.join_keys.items():
        if dtype.polars == pl.String:
            flags.append(pl.col(key).cast(pl.String).str.contains(KEY_SEPARATOR, literal=True).any())
    try:
        out = df.select(
            utc(TS).alias(TS),
            *[typed_column(c, t) for c, t in {**spec.join_keys, **spec.features}.items()],
            *[utc(c).alias(CREATED) for c in created],
            pl.any_horizontal(flags).alias("__fault"),
        )
    except (DTypeMismatchError, pl.exceptions.PolarsError):
        return None
    if out.get_column("__fault")[0]:
        return None
    return pl.DataFrame([out.get_column(c) for c in [*keys, TS, *spec.features, *([CREATED] if created else [])]])


_INTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)
_INF = float("inf")


def _typed_natively(spec: ViewSpec, df: pl.DataFrame, created: list[str]) -> pl.DataFrame | None:
    """The typed rows from series operations only (no polars query: each costs a thread-pool round on a
    busy machine), when every column already has its declared dtype (integers for floats, all-null
    columns cast), keys and times have no null, string keys no separator and floats no NaN; else None."""
    out = []
    keys, allow_nan = spec.join_keys, spec.allow_nan  # properties built from the registry on each access
    columns = [*keys.items(), (TS, Timestamp), *spec.features.items(), *((c, Timestamp) for c in created)]
    for name, dtype in columns:
        series = df.get_column(name)
        want = dtype.polars
        if series.dtype != want:
            if series.dtype == pl.Null or (series.dtype in _INTS and want in (pl.Float64, pl.Float32)):
                series = series.cast(want)
            else:
                return None
        if name in keys or name == TS:
            if series.null_count():
                return None
            if want == pl.String and any(KEY_SEPARATOR in v for v in series.to_list()):
                return None
        elif want in (pl.Float64, pl.Float32) and name not in allow_nan:
            values = series.to_list()  # NaN (null is None, equal to itself) or an infinity: the slow path
            if any(v != v for v in values) or _INF in values or -_INF in values:
                return None
        out.append(series.alias(CREATED) if name in created else series)
    return pl.DataFrame(out)


# datetime.isoformat()'s form, at most microseconds (parse_canonical_timestamps' fast path, in Python)
_ISOFORMAT = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?[+-]\d{2}:\d{2}")


def _parse_isoformat(name: str, values: list[Any]) -> pl.Series | None:
    """Text in ``datetime.isoformat()`` form as UTC microseconds, or None when any value has another form."""
    match = _ISOFORMAT.fullmatch
    out = []
    try:
        for value in values:
            if value is None or not match(value):
                return None
            out.append(to_us(datetime.fromisoformat(value)))
    except ValueError:  # a month 13, a 25th hour: the general parser names it
        return None
    return pl.Series(name, out, dtype=pl.Int64).cast(_UTC_US)


def _kind(value: Any) -> str:
    """A JSON value's kind, as far as typing a column goes (ints and floats are both numbers)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "text" if isinstance(value, str) else type(value).__name__


def _separate_kinds(spec: ViewSpec, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], pl.DataFrame | None]:
    """Rows whose columns polars can type one value at a time as it types a column of one kind.

    polars would read a column mixing kinds by a common supertype: ``true`` among numbers as 1 (a
    boolean alone fails an Int64 feature), and a list among scalars not at all. So a boolean among
    numbers becomes its text (``'true'`` then fails a number feature, as text does); a feature value
    of the wrong structure (a list or an object for a scalar dtype, a scalar for a list) is taken out
    and fails its row under ``dtype``, returned as (row, check, column, value); the same mix in a join
    key or time is a request error naming the column and row. The caller's rows are not changed.
    """
    columns = dict.fromkeys(c for row in rows for c in row)
    failures: list[tuple[int, str, str, str]] = []
    out = rows
    for column in columns:
        types = {type(row.get(column)) for row in rows} - {type(None)}
        dtype = spec.features.get(column)
        if (len(types) < 2 or types <= {int, float, str}) and not (dtype is not None and dict in types):
            continue  # one kind, or numbers and text: the text path types each value
        kinds = {_kind(row.get(column)) for row in rows} - {"NoneType"}
        nested = kinds & {"list", "object"}
        if (nested and len(kinds) > 1) or (dtype is not None and "object" in kinds):
            if dtype is None:  # keys, times, unknown columns: nothing to quarantine a row by
                first = next(i for i, row in enumerate(rows) if _kind(row.get(column)) != _kind(rows[0].get(column)))
                raise InvalidRequestError(
                    f"push to {spec.name!r}: column {column!r} mixes kinds of values: row {first} holds "
                    f"{rows[first].get(column)!r} ({_kind(rows[first].get(column))}), row 0 "
                    f"{rows[0].get(column)!r} ({_kind(rows[0].get(column))})"
                )
            wanted = {"list"} if dtype.is_list else {"boolean", "number", "text"}
            if out is rows:
                out = [dict(row) for row in rows]
            for i, row in enumerate(out):
                value = row.get(column)
                kind = _kind(value)
                if value is not None and kind not in wanted:
                    failures.append((i, DTYPE_CHECK, column, f"{value!r} ({kind}) is not {dtype}"))
                    row[column] = None
            kinds &= wanted
        if {"boolean", "number"} <= kinds:
            if out is rows:
                out = [dict(row) for row in rows]
            for row in out:
                if isinstance(row.get(column), bool):
                    row[column] = "true" if row[column] else "false"
    for column in spec.features:
        if column in columns:
            out = _mixed_elements_as_text(rows, out, column)
    if not failures:
        return out, None
    frame = pl.DataFrame(failures, schema=["row", "check", "column", "value"], orient="row")
    return out, frame.with_columns(pl.col("row").cast(pl.Int64))


def _mixed_elements_as_text(rows: list[dict[str, Any]], out: list[dict[str, Any]], column: str) -> list[dict[str, Any]]:
    """A column of lists whose elements mix kinds (``[1, "a"]``, ``[1, true]``, ``[[1.0], 2]``) with every
    element as text, so each is typed (and fails its row) as a text element does; else ``out`` as it is."""
    types = {type(v) for row in out if isinstance(row.get(column), list) for v in row[column]} - {type(None)}
    if len(types) < 2 or types <= {int, float}:
        return out
    if out is rows:
        out = [dict(row) for row in rows]
    for row in out:
        if isinstance(row.get(column), list):
            row[column] = [None if v is None else _text(v) for v in row[column]]
    return out


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def _check_objects(spec: ViewSpec, rows: list[Any]) -> None:
    """A list of rows holds JSON objects (``{column: value}``); InvalidRequestError naming the first that is not."""
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InvalidRequestError(
                f"push to {spec.name!r}: rows must be objects ({{column: value}}); row {i} is {row!r}"
            )


def _check_time_column(spec: ViewSpec, name: str, dtype: pl.DataType) -> None:
    """A time column holds datetimes, dates or text; a number (an epoch?) is refused, naming the column."""
    if isinstance(dtype, pl.Datetime) or dtype in (pl.Date, pl.String, pl.Null):
        return
    raise InvalidRequestError(
        f"push to {spec.name!r}: column {name!r} holds {dtype}, which is not a timestamp; use {TIMESTAMP_FORMATS}"
    )


def _refuse_null_keys(spec: ViewSpec) -> None:
    raise InvalidRequestError(f"push to {spec.name!r}: join keys and {TS!r} may not be null")


def _refuse_separator(spec: ViewSpec, key: str) -> None:
    raise InvalidRequestError(
        f"push to {spec.name!r}: join key {key!r} contains the reserved character U+001F "
        "(it separates the parts of composite keys)"
    )


def push_rows(
    settings: Any,
    store: OnlineStore,
    spec: ViewSpec,
    rows: Any,
    *,
    to_offline: bool = False,
    to_online: bool = True,
    layout: OfflineLayout | None = None,
    resolve: SpecResolver | None = None,
) -> PushResult:
    """Write pushed rows online: the newest per entity, never replacing a newer stored row.

    The ``push`` gate runs first; when it rejects, ``GateRejectedError`` is raised and
    nothing is written. Rows go to every live version of the view (the one readers follow
    and one being materialized), so a version switch never loses them; ``resolve`` gives
    the spec of another applied version. A row's ``created`` column (else the time it was
    received) breaks ties with a stored row of the same event time. With ``to_offline`` the
    rows are also merged into the offline store; with ``to_online=False`` only there (Feast's
    ``PushMode.OFFLINE``), through the same gate.
    """
    mode = PushMode.of(spec.name, to_online=to_online, to_offline=to_offline)
    if spec.events is not None:  # an aggregation view: rows are events, appended to its state
        from featurestore.serving.aggregate import push_events

        return push_events(settings, store, spec, rows, mode=mode, layout=layout, resolve=resolve)  # type: ignore[no-any-return]
    if mode.offline and layout is None:
        raise ValueError(f"push_rows({mode}) needs the offline layout")
    batch = push_batch(spec, rows)
    received = batch.rows.height
    batch = batch.one_row_per_time(list(spec.join_keys))
    df, gate_result = gate_for(settings, spec, "push")(batch.rows, **batch.gate_inputs())
    received_at = now_us()
    created = pl.col(CREATED).dt.epoch("us").fill_null(received_at) if CREATED in df.columns else pl.lit(received_at)
    df = df.with_columns(created.cast(pl.Int64).alias(CREATED_US))
    keys = list(spec.join_keys)
    # The newest row per entity: greatest (event time, created), a full tie to the later row.
    latest = df.sort([TS, CREATED_US], maintain_order=True).unique(subset=keys, keep="last", maintain_order=True)
    # Offline first: a failed offline write (disk full) leaves nothing written anywhere, and a failed
    # online write after it leaves the rows where training sets and the next materialize find them;
    # a retry merges onto the same (keys, event time), so both converge.
    partitions: list[str] = []
    if mode.offline:
        assert layout is not None
        partitions = merge_offline(layout, spec, df)
    written: dict[str, int] = {}
    live, expired = spec.version, 0
    if mode.online:
        live, written, expired = write_to_live_versions(store, spec, latest, resolve or _no_other_version(spec))
    served = written.get(live, 0)
    return PushResult(
        view=spec.name,
        version=live,
        rows_received=received,
        rows_written=served,
        rows_stale=latest.height - expired - served if mode.online else 0,
        rows_expired=expired,
        offline_partitions=partitions,
        gate=gate_result,
        versions=written,
    )


def _no_other_version(spec: ViewSpec) -> SpecResolver:
    def resolve(version: str) -> ViewSpec:
        raise RegistryError(
            f"feature view {spec.name!r} is served at version {version!r}, which this push does not know; "
            "reload the registry and retry"
        )

    return resolve


def merge_offline(layout: OfflineLayout, spec: ViewSpec, df: pl.DataFrame) -> list[str]:
    """Upsert typed rows (with ``CREATED_US``) into the offline store: the days they touch are rewritten
    with them merged in, by the online store's rule (greatest event time and created, ``newest_per_key``)."""
    from featurestore.offline.ingest import PUSHED, PUSHED_CREATED, write_view

    created = pl.from_epoch(CREATED_US, time_unit="us").dt.replace_time_zone("UTC").alias(PUSHED_CREATED)
    rows = df.select(*spec.join_keys, TS, *spec.features, created, pl.lit(True).alias(PUSHED))
    with offline_write_errors(f"push to {spec.name!r}"):
        return write_view(layout, spec, rows.sort(TS), upsert=True)
