"""ISO text timestamps: the canonical fast path (pushes) gives exactly what the general parser gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from featurestore.offline.frames import Rounding, event_time_utc, parse_canonical_timestamps, to_utc

TIMES = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1))
OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))


@given(st.lists(st.tuples(TIMES, OFFSETS), min_size=1, max_size=20))
def test_isoformat_text_parses_as_the_general_parser_does(values: list[tuple[datetime, timezone]]) -> None:
    text = [t.replace(tzinfo=tz).isoformat() for t, tz in values]
    df = pl.DataFrame({"ts": text})
    fast = parse_canonical_timestamps(df, "ts")
    assert fast.schema["ts"] == pl.Datetime("us", "UTC")
    for rounding in Rounding:
        general = df.select(to_utc(pl.col("ts"), pl.String, rounding)).to_series()
        assert fast.get_column("ts").to_list() == general.to_list()


def test_other_forms_are_left_for_the_general_parser() -> None:
    for other in [
        "2026-11-27T13:26:16Z",
        "2026-11-27 13:26:16+00:00",
        "2026-11-27",
        " 2026-11-27T13:26:16+00:00 ",
        "2026-11-27T13:26:16.1234567+00:00",  # below the microsecond: rounded by the general parser
        "not a time",
    ]:
        df = pl.DataFrame({"ts": ["2026-11-27T13:26:16+00:00", other]})
        assert parse_canonical_timestamps(df, "ts").equals(df), other
    ceil = pl.DataFrame({"ts": ["2026-11-27T13:26:16.1234561+00:00"]}).select(event_time_utc(pl.col("ts"), pl.String))
    assert ceil.item() == datetime(2026, 11, 27, 13, 26, 16, 123457, tzinfo=UTC)


def test_nulls_and_non_text_pass_through() -> None:
    df = pl.DataFrame({"ts": ["2026-11-27T13:26:16+02:00", None]})
    assert parse_canonical_timestamps(df, "ts").get_column("ts").to_list() == [
        datetime(2026, 11, 27, 11, 26, 16, tzinfo=UTC),
        None,
    ]
    typed = pl.DataFrame({"ts": [datetime(2026, 1, 1, tzinfo=UTC)]})
    assert parse_canonical_timestamps(typed, "ts") is typed
