"""A repository with two aggregation views over one event log, and random event streams."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import strategies as st

from featurestore import FeatureStore
from tests.aggregation.brute import AGGREGATIONS, MINUTE, US
from tests.conftest import write_repo

_AGGS = ",\n        ".join(
    f'Aggregation("{c}", "{f}", window=timedelta(minutes={m}), name="{n}")' for n, c, f, m in AGGREGATIONS
)
VIEWS = f"""
from datetime import timedelta
from featurestore import Aggregation, Entity, Feature, FeatureView, Float64, Gate, Int64, ParquetSource, String

card = Entity("card", join_keys={{"card_id": Int64}})
columns = [Feature("amount", Float64), Feature("qty", Int64), Feature("merchant", String)]
source = ParquetSource("data/events.parquet", timestamp="ts", created="created")
exact = FeatureView(
    "exact", entities=[card], source=source, features=columns, event_id="eid",
    aggregations=[
        {_AGGS}
    ],
)
tiled = FeatureView(
    "tiled", entities=[card], source=source, features=columns, granularity=timedelta(minutes=5),
    aggregations=[
        {_AGGS}
    ],
)
"""
GRANULARITY = {"exact": None, "tiled": 5 * MINUTE}
SCHEMA = {
    "card_id": pl.Int64,
    "ts": pl.Datetime("us", "UTC"),
    "created": pl.Datetime("us", "UTC"),
    "amount": pl.Float64,
    "qty": pl.Int64,
    "merchant": pl.String,
    "eid": pl.String,
}


def to_us(d: datetime) -> int:
    return int(d.timestamp()) * US + d.microsecond


def from_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


@st.composite
def event_streams(draw: Callable[..., Any]) -> list[dict[str, Any]]:
    """Events as offsets: ``ts``/``created`` in minutes/seconds from a base the test chooses; retries are copies."""
    n = draw(st.integers(0, 30))
    events = []
    for i in range(n):
        events.append(
            {
                "card_id": draw(st.integers(1, 3)),
                "ts": draw(st.integers(0, 95)),
                "created": draw(st.none() | st.integers(0, 3)),
                "amount": draw(st.none() | st.integers(-400, 400).map(lambda v: v / 4)),
                "qty": draw(st.none() | st.integers(-5, 5)),
                "merchant": draw(st.none() | st.sampled_from("abcd")),
                "eid": draw(st.none() | st.just(f"e{i}")),
            }
        )
    with_id = [e for e in events if e["eid"] is not None]
    if with_id:
        for _ in range(draw(st.integers(0, 4))):
            events.insert(draw(st.integers(0, len(events))), dict(draw(st.sampled_from(with_id))))
    return events


def absolute(events: list[dict[str, Any]], base_us: int) -> list[dict[str, Any]]:
    """Offsets -> µs times: ``ts`` on a minute grid from ``base_us``, ``created`` in seconds."""
    return [
        {
            **e,
            "ts": base_us + e["ts"] * MINUTE,
            "created": None if e["created"] is None else base_us + e["created"] * US,
        }
        for e in events
    ]


def frame(events: list[dict[str, Any]]) -> pl.DataFrame:
    rows = [
        {**e, "ts": from_us(e["ts"]), "created": None if e["created"] is None else from_us(e["created"])}
        for e in events
    ]
    return pl.DataFrame(rows, schema=SCHEMA)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_repo(tmp_path_factory.mktemp("agg") / "repo", {"views.py": VIEWS}, 'project = "agg"\n')
    (root / "data").mkdir()
    frame([]).write_parquet(root / "data" / "events.parquet")
    FeatureStore(root).apply()
    return root


def base_minute(now: datetime) -> int:
    """A base time on a whole minute, so windows and the granularity meet event times exactly."""
    return to_us(now.replace(second=0, microsecond=0))
