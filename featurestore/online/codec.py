"""The online row encoding: entity keys as text, rows as JSON arrays ``[event_ts_us, v1, ..., vN, created_us]``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from featurestore.dsl.names import KEY_SEPARATOR

if TYPE_CHECKING:  # polars is imported where rows are encoded: a server that only reads never loads it
    import polars as pl

__all__ = [
    "KEY_SEPARATOR",
    "EXPIRY_TTLS",
    "EncodedRows",
    "encode_rows",
    "stored_created_us",
    "row_timestamp_us",
    "row_stamp",
    "event_time_us",
    "newer",
    "format_timestamp",
    "format_timestamps",
    "timestamps_json",
    "now_us",
]

# Stored rows expire after this many ttls past their event time (the last one answers OUTSIDE_MAX_AGE).
EXPIRY_TTLS = 2
TS = "event_timestamp"


class EncodedRows:
    """A batch ready for ``OnlineStore.write_rows``: parallel lists of keys, rows and expiry times."""

    __slots__ = ("keys", "rows", "expire_at_ms", "skipped_expired")

    def __init__(
        self, keys: list[str], rows: list[bytes], expire_at_ms: list[int] | None, skipped_expired: int = 0
    ) -> None:
        self.keys = keys
        self.rows = rows
        self.expire_at_ms = expire_at_ms
        self.skipped_expired = skipped_expired

    def __len__(self) -> int:
        return len(self.keys)


def now_us() -> int:
    """Microseconds since the epoch, now, from this module's ``datetime`` (the one clock tests move)."""
    return int(datetime.now(UTC).timestamp() * 1_000_000)


def _key_expr(join_keys: Sequence[str]) -> pl.Expr:
    import polars as pl

    cols = [pl.col(k).cast(pl.String) for k in join_keys]
    return cols[0] if len(cols) == 1 else pl.concat_str(cols, separator=KEY_SEPARATOR)


def stored_created_us(df: pl.DataFrame) -> int | pl.Expr:
    """The ``created_us`` of offline rows (their ``created_timestamp`` in microseconds, null: 0)."""
    import polars as pl

    if "created_timestamp" not in df.columns:
        return 0
    return pl.col("created_timestamp").dt.epoch("us").fill_null(0)


def encode_rows(
    df: pl.DataFrame,
    join_keys: Sequence[str],
    features: Sequence[str],
    ttl: timedelta | None,
    *,
    now: datetime | None = None,
    created_us: int | pl.Expr = 0,
) -> EncodedRows:
    """Encode one row per entity (join keys, ``event_timestamp``, features) for the online store.

    A row is ``[event_ts_us, v1, ..., vN, created_us]``: the event time first (lookups read it
    without decoding), the features in the version's order, and last the row's creation time,
    which breaks ties between rows of the same event time (the store keeps the greater; see
    :func:`newer`). Materialized rows carry their offline ``created_timestamp`` (null: 0,
    :func:`stored_created_us`); a push carries its ``created`` column or the time it was
    received, so it wins a tie with an offline row created before it, as in the offline store.

    Rows already older than ``ttl`` at ``now`` are skipped. The others stay stored until event
    time + 2 x ttl: past event time + ttl a lookup answers OUTSIDE_MAX_AGE (the value is not
    served), and only after the grace period does the store drop the row (NOT_FOUND).
    Rows with a null key or a key holding the separator are dropped.
    """
    import polars as pl

    now = now or datetime.now(UTC)
    ts_us = pl.col(TS).dt.epoch("us")
    # A row is addressable only if every key part is set and free of the separator.
    valid = [pl.col(k).is_not_null() for k in join_keys] + [
        ~pl.col(k).str.contains(KEY_SEPARATOR, literal=True) for k in join_keys if df.schema[k] == pl.String
    ]
    created = created_us if isinstance(created_us, pl.Expr) else pl.lit(created_us, dtype=pl.Int64)
    frame = df.filter(pl.all_horizontal(valid)).select(
        _key_expr(join_keys).alias("__key"),
        ts_us.alias("__ts"),
        *[pl.col(f) for f in features],
        created.alias("__created"),
    )
    expire: list[int] | None = None
    skipped = 0
    if ttl is not None:
        ttl_us = int(ttl.total_seconds() * 1_000_000)
        before = frame.height
        frame = frame.filter(pl.col("__ts") + ttl_us > int(now.timestamp() * 1_000_000))
        skipped = before - frame.height
        expire = ((frame.get_column("__ts") + EXPIRY_TTLS * ttl_us) // 1000).to_list()
    keys = frame.get_column("__key").to_list()
    texts = [_json_text(c, t) for c, t in frame.schema.items() if c != "__key"]
    if all(t is not None for t in texts):  # every column has a vectorised JSON form: polars writes the rows
        parts: list[pl.Expr] = [pl.lit("[")]
        for i, text in enumerate(texts):
            parts.extend([pl.lit(","), text] if i else [text])  # type: ignore[list-item]
        parts.append(pl.lit("]"))
        rows = frame.select(pl.concat_str(parts).cast(pl.Binary)).to_series().to_list()
    else:  # e.g. a Timestamp feature: orjson, row by row
        dumps = orjson.dumps
        rows = [dumps(r) for r in frame.drop("__key").iter_rows()]
    return EncodedRows(keys, rows, expire, skipped)


def _json_text(name: str, dtype: pl.DataType) -> pl.Expr | None:
    """A column as JSON text (``null`` for nulls, NaN and infinities, as orjson writes them), or None.

    Floats are written as float64 (a Float32 value as its float64 value, as orjson writes a
    Python float), in their shortest round-trip form; strings are escaped by polars' JSON
    writer. Decoding the text gives exactly what ``orjson.dumps`` of the values would.
    """
    import polars as pl

    col = pl.col(name)
    if dtype.is_integer():
        return col.cast(pl.String).fill_null("null")
    base = dtype.inner if isinstance(dtype, pl.List) else dtype  # type: ignore[union-attr]
    if not (base.is_numeric() or base in (pl.Boolean, pl.String)) or isinstance(base, pl.List | pl.Decimal):
        return None
    if base == pl.Float32:
        col = col.cast(pl.List(pl.Float64) if isinstance(dtype, pl.List) else pl.Float64)
    # {"name":<value>} -> <value>
    return pl.struct(col.alias(name)).struct.json_encode().str.slice(len(name) + 4).str.strip_suffix("}")


def row_timestamp_us(row: bytes) -> int:
    """The event time of an encoded row without decoding the whole row."""
    return int(row[1 : row.index(b",") if b"," in row else -1])


def event_time_us(payload: bytes) -> int:
    """The event time of an encoded aggregation event (``[event_ts_us, created_us, seq, ...]``), without decoding it."""
    return int(payload[1 : payload.index(b",")])


def row_stamp(row: bytes) -> tuple[int, int]:
    """``(event_ts_us, created_us)`` of an encoded row, read from its first and last elements."""
    return int(row[1 : row.index(b",")]), int(row[row.rindex(b",") + 1 : -1])


def newer(new: bytes, old: bytes | None) -> bool:
    """Whether ``new`` may replace the stored row ``old``: a greater event time, or the same and a greater created.

    The one ordering every store applies to every write path (materialize, incremental
    materialize, push), so re-running a write changes nothing and an older row never
    replaces a newer one. Stores compare in the store itself (Redis: a server-side script).
    """
    return old is None or row_stamp(new) > row_stamp(old)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAY_US = 86_400_000_000
_days: dict[int, str] = {}


def format_timestamp(us: int) -> str:
    """Microseconds since the epoch as an RFC 3339 UTC string (seconds precision when whole).

    Hot path of every lookup: the date part is cached per day, the time part is arithmetic.
    """
    day, rest = divmod(us, _DAY_US)
    date = _days.get(day)
    if date is None:
        if len(_days) > 100_000:
            _days.clear()
        date = _days[day] = (_EPOCH + timedelta(days=day)).date().isoformat() + "T"  # years < 1000 padded
    secs, micros = divmod(rest, 1_000_000)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    if micros:
        return f"{date}{hours:02d}:{minutes:02d}:{secs:02d}.{micros:06d}Z"
    return f"{date}{hours:02d}:{minutes:02d}:{secs:02d}Z"


# Formatted event times by microsecond: the rows a server answers change far less often than they
# are read. Bounded (about 20 MB when full), emptied when full.
_stamps: dict[int, str] = {}
_MAX_STAMPS = 1 << 17


def format_timestamps(us: list[int]) -> list[str]:
    """Many timestamps at once, as :func:`format_timestamp` writes them (a lookup's hot path).

    Served event times repeat from request to request: they come from a bounded cache, and the
    ones not in it are formatted together (vectorised by numpy for a larger batch).
    """
    cache = _stamps
    out: list[str | None] = list(map(cache.get, us))
    if None not in out:
        return out  # type: ignore[return-value]
    missing = [t for t, s in zip(us, out, strict=True) if s is None]
    if len(cache) + len(missing) > _MAX_STAMPS:
        cache.clear()
    for t, s in zip(missing, _format_many(missing), strict=True):
        cache[t] = s
    return [cache[t] if s is None else s for t, s in zip(us, out, strict=True)]


# Batches of event times from this size are formatted by numpy: its call overhead only pays off for larger ones.
_NUMPY_FROM = 16
# numpy datetime64 values as RFC 3339 UTC strings, microseconds only when not zero: format_timestamp's text.
_STAMPS_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def timestamps_json(us: Sequence[int]) -> bytes:
    """``format_timestamps(us)`` as a JSON array (a lookup's hot path): written by orjson from a numpy
    ``datetime64[us]`` array, in C, with no cache to miss (numpy is imported by the first large lookup)."""
    if len(us) < _NUMPY_FROM:
        return orjson.dumps(format_timestamps(list(us)))
    import numpy as np

    try:
        return orjson.dumps(np.array(us, dtype=np.int64).view("datetime64[us]"), option=_STAMPS_JSON)
    except (orjson.JSONEncodeError, OverflowError):  # a year orjson does not write (past 9999): Python's text
        return orjson.dumps(format_timestamps(list(us)))


def _format_many(us: list[int]) -> list[str]:
    if len(us) < _NUMPY_FROM:
        return [format_timestamp(t) for t in us]
    import numpy as np

    text = np.datetime_as_string(np.array(us, dtype="datetime64[us]"), unit="us").tolist()
    return [t[:-7] + "Z" if t.endswith(".000000") else t + "Z" for t in text]
