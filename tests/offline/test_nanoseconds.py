"""Nanosecond times: event times round up and entity times down, so no entity row receives a row from its future."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.serving.push import push_frame

T0_NS = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) * 1_000_000_000

VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, Gate, Int64, ParquetSource
e = Entity("e", join_keys={"k": Int64})
v = FeatureView("v", [e], ParquetSource("data/src.parquet", created="created"), [Feature("x", Float64)],
                gate=Gate("warn"))
"""


def ns_frame(column: str, ns: list[int], **other: list[Any]) -> pl.DataFrame:
    """A frame whose ``column`` holds UTC datetimes with nanosecond precision (``T0 + ns``)."""
    times = pl.Series(column, [T0_NS + n for n in ns]).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
    return pl.DataFrame([times, *[pl.Series(k, v) for k, v in other.items()]])


def ingest(store: FeatureStore, ns: list[int], created: list[int], keys: list[int]) -> Any:
    df = ns_frame("event_timestamp", ns, k=keys, x=[float(i) for i in range(len(ns))])
    df = df.with_columns(ns_frame("created", created).get_column("created"))
    df.write_parquet(store.repo / "data" / "src.parquet")
    [result] = store.ingest()
    return result


def new_store(make_repo: Any) -> FeatureStore:
    root: Path = make_repo({"views.py": VIEWS})
    (root / "data").mkdir()
    first = ns_frame("event_timestamp", [0], k=[0], x=[0.0]).with_columns(ns_frame("created", [0])["created"])
    first.write_parquet(root / "data" / "src.parquet")
    store = FeatureStore(root)
    store.apply()
    return store


def test_rows_100_and_500_ns_apart_collide_visibly_and_an_entity_at_50_ns_gets_neither(make_repo: Any) -> None:
    store = new_store(make_repo)
    # Feature rows at +0, +100 and +500 ns of the same key; the later two round up to +1 us.
    result = ingest(store, [0, 100, 500], [0, 0, 0], [1, 1, 1])
    assert result.duplicates_dropped == 1 and result.gate.duplicates_dropped == 1 and result.rows_written == 2
    entity = ns_frame("event_timestamp", [50, 999, 1000, 1001], k=[1, 1, 1, 1])
    out = store.get_training_set(entity, ["v:x"])
    # +50 ns and +999 ns see only the +0 ns row; from +1000 ns the +500 ns row (read last) wins the collision.
    assert out["x"].to_list() == [0.0, 0.0, 2.0, 2.0]
    assert out["event_timestamp"].dtype == pl.Datetime("ns", "UTC")  # the entity's columns are unchanged


def test_a_pushed_event_time_rounds_up_like_an_ingested_one() -> None:
    from tests.validation.helpers import make_spec

    spec = make_spec({"x": ("Float64", [])})
    df = ns_frame("event_timestamp", [0, 1, 999, 1000, 1001], id=[0, 1, 2, 3, 4], x=[1.0, float("nan"), 3, 4, 5])
    typed = push_frame(spec, df)
    assert (typed["event_timestamp"].dt.epoch("ns") - T0_NS).to_list() == [0, 1000, 1000, 1000, 2000]
    assert typed["x"].to_list() == [1.0, None, 3.0, 4.0, 5.0]  # NaN is null, as at ingest


def test_iso_text_with_nanoseconds_rounds_the_same_way(make_repo: Any) -> None:
    store = new_store(make_repo)
    df = pl.DataFrame(
        {
            "event_timestamp": ["2026-01-01T00:00:00.000000500Z", "2026-01-01T00:00:00.000002000Z"],
            "created": ["2026-01-01T00:00:00Z"] * 2,
            "k": [1, 1],
            "x": [1.0, 2.0],
        }
    )
    df.write_parquet(store.repo / "data" / "src.parquet")
    store.ingest()
    times = ["2026-01-01T00:00:00.000000900Z", "2026-01-01T00:00:00.000001Z", "2026-01-01"]
    entity = pl.DataFrame({"k": [1, 1, 1], "event_timestamp": times})
    assert store.get_training_set(entity, ["v:x"])["x"].to_list() == [None, 1.0, None]


def test_no_entity_row_receives_a_row_from_its_future(make_repo: Any) -> None:
    """Against brute force over nanosecond data: the row an entity receives is the latest of the stored
    rows (source rows rounded up to the microsecond, one per key and microsecond: greatest created, then
    the last read) at or before the entity's time rounded down, and its true time is never after the
    entity's."""
    store = new_store(make_repo)
    offsets = st.integers(min_value=0, max_value=5_000)

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        rows=st.lists(st.tuples(st.integers(0, 1), offsets, st.integers(0, 2)), min_size=1, max_size=12),
        entities=st.lists(st.tuples(st.integers(0, 1), offsets), min_size=1, max_size=12),
    )
    def check(rows: list[tuple[int, int, int]], entities: list[tuple[int, int]]) -> None:
        keys, ns, created = (list(c) for c in zip(*rows, strict=True))
        result = ingest(store, ns, [c * 1000 for c in created], keys)
        stored: dict[tuple[int, int], tuple[int, int, int]] = {}  # (key, us) -> (created, read order, true ns)
        for i, (k, n, c) in enumerate(rows):
            us = -(-n // 1000)
            if (k, us) not in stored or (c, i) >= stored[(k, us)][:2]:
                stored[(k, us)] = (c, i, n)
        assert result.duplicates_dropped == len(rows) - len(stored)
        frame = ns_frame("event_timestamp", [n for _, n in entities], k=[k for k, _ in entities])
        got = store.get_training_set(frame, ["v:x"])["x"].to_list()
        for (k, n), value in zip(entities, got, strict=True):
            seen = [(us, row) for (key, us), row in stored.items() if key == k and us <= n // 1000]
            if not seen:
                assert value is None
                continue
            _, (_, i, true_ns) = max(seen)
            assert value == float(i) and true_ns <= n

    check()
