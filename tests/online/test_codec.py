"""Row encoding for the online store: composite keys, null and separator-bearing keys, ttl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import polars as pl

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
    assert [orjson.loads(r) for r in enc.rows] == [[ts, 1.5], [ts, 2.5]]
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
