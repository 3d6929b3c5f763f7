"""Row encoding for the online store: composite keys, null and separator-bearing keys, ttl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from featurestore.online.codec import KEY_SEPARATOR, encode_rows

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def test_composite_keys_are_encoded_and_only_unaddressable_rows_dropped() -> None:
    df = pl.DataFrame(
        {
            "origin": ["JFK", "LGA", None, f"a{KEY_SEPARATOR}b", "EWR"],
            "dest": ["LAX", "SFO", "X", "Y", None],
            "event_timestamp": [NOW] * 5,
            "delay": [1.5, 2.5, 3.5, 4.5, 5.5],
        }
    )
    enc = encode_rows(df, ["origin", "dest"], ["delay"], None, now=NOW)
    assert enc.keys == [f"JFK{KEY_SEPARATOR}LAX", f"LGA{KEY_SEPARATOR}SFO"]
    ts = int(NOW.timestamp() * 1_000_000)
    assert [orjson.loads(r) for r in enc.rows] == [[ts, 1.5, 0], [ts, 2.5, 0]]
    assert enc.expire_at_ms is None


def test_rows_older_than_ttl_are_skipped_and_the_rest_kept_until_event_plus_two_ttls() -> None:
    df = pl.DataFrame(
        {
            "driver_id": [1, 2],
            "event_timestamp": [NOW - timedelta(hours=3), NOW - timedelta(minutes=30)],
            "f": [1, 2],
        }
    )
    enc = encode_rows(df, ["driver_id"], ["f"], timedelta(hours=1), now=NOW)
    assert enc.keys == ["2"]
    assert enc.skipped_expired == 1
    # event (NOW - 30 min) + 2 x 1 h: OUTSIDE_MAX_AGE from NOW + 30 min, gone at NOW + 90 min
    assert enc.expire_at_ms == [int((NOW + timedelta(minutes=90)).timestamp() * 1000)]


def test_vectorised_timestamps_match_the_scalar_format() -> None:
    from featurestore.online.codec import format_timestamp, format_timestamps

    stamps = [0, 1_767_225_600_000_000, 1_767_225_600_123_456, 1_767_225_601_000_001, 253_402_300_799_000_000]
    assert format_timestamps(stamps) == [format_timestamp(t) for t in stamps]
    many = [t + i for t in stamps for i in range(10)]  # the vectorised branch (none of them cached)
    assert format_timestamps(many) == [format_timestamp(t) for t in many]
    assert format_timestamps(many) == [format_timestamp(t) for t in many]  # now from the cache
    assert format_timestamps(stamps)[:3] == [
        "1970-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.123456Z",
    ]


# Microseconds from 0001-01-01 to 9999-12-31 (every year an RFC 3339 timestamp can hold).
_US = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_US, st.integers(0, 2_000_000_000).map(lambda s: s * 1_000_000)), max_size=40))
def test_event_times_as_json_are_the_formatted_timestamps(stamps: list[int]) -> None:
    """The server writes event times through numpy and orjson: the same text as format_timestamp, any year."""
    from featurestore.online.codec import format_timestamp, timestamps_json

    assert timestamps_json(stamps) == orjson.dumps([format_timestamp(t) for t in stamps])


def test_timestamp_cache_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from featurestore.online import codec

    monkeypatch.setattr(codec, "_MAX_STAMPS", 50)
    monkeypatch.setattr(codec, "_stamps", {})
    for start in range(0, 400, 40):
        batch = [1_767_225_600_000_000 + 1000 * (start + i) for i in range(40)]
        assert codec.format_timestamps(batch) == [codec.format_timestamp(t) for t in batch]
        assert len(codec._stamps) <= 50


def test_hiredis_packing_matches_redis_py() -> None:
    from redis.asyncio.connection import Connection

    from featurestore.online.redis_wire import hiredis_connection_class

    fast = hiredis_connection_class("redis://127.0.0.1:6379/0")
    assert fast is not None
    for command in [("MGET", "a", "b:c"), ("CONFIG GET", "maxmemory"), ("SET", "k", b"\x00v", "PXAT", 123)]:
        assert b"".join(fast().pack_command(*command)) == b"".join(Connection().pack_command(*command))
