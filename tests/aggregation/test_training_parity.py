"""Training sets: every window of every entity row equals the brute-force definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore
from featurestore.config import load_settings
from tests.aggregation.brute import AGGREGATIONS, MINUTE, brute, dedupe, same
from tests.aggregation.conftest import GRANULARITY, absolute, base_minute, event_streams, frame, from_us

# Every test runs each DuckDB window plan (the setting duckdb_window_plan forces one).
PLANS = pytest.mark.parametrize("plan", ["range_join", "frames"])


def store(repo: Path, plan: str) -> FeatureStore:
    return FeatureStore(repo, settings=replace(load_settings(repo), duckdb_window_plan=plan))


QUERIES = st.lists(st.tuples(st.integers(1, 4), st.integers(-10, 170), st.sampled_from([-1, 0, 1])), max_size=12)


@PLANS
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=event_streams(), queries=QUERIES)
def test_training_set_equals_brute_force(
    plan: str, repo: Path, stream: list[dict[str, Any]], queries: list[Any]
) -> None:
    _check_training_set(repo, stream, queries, store(repo, plan))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(stream=event_streams(), queries=QUERIES)
def test_training_set_on_spark_equals_brute_force(
    repo: Path, spark: Any, stream: list[dict[str, Any]], queries: list[Any]
) -> None:
    """The same windows computed by the Spark engine (ingested by DuckDB, joined by Spark)."""
    fs = FeatureStore(repo, settings=replace(load_settings(repo), engine="spark"))
    assert fs.engine.name == "spark"
    _check_training_set(repo, stream, queries, fs)


def _check_training_set(repo: Path, stream: list[dict[str, Any]], queries: list[Any], fs: FeatureStore) -> None:
    base = base_minute(datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) + 7  # not on the granularity grid
    events = absolute(stream, base)
    frame(events).write_parquet(repo / "data" / "events.parquet")
    FeatureStore(repo).ingest()
    times = [base + m * MINUTE + d for _, m, d in queries]
    entity = pl.DataFrame(
        {
            "card_id": [c for c, _, _ in queries],
            "event_timestamp": [from_us(t) for t in times],
            "extra": list(range(len(queries))),
        },
        schema={"card_id": pl.Int64, "event_timestamp": pl.Datetime("us", "UTC"), "extra": pl.Int64},
    )
    if not queries:
        return
    for view, granularity in GRANULARITY.items():
        visible = dedupe(events) if view == "exact" else events
        got = fs.get_training_set(entity, [f"{view}:*"])
        assert got.columns == ["card_id", "event_timestamp", "extra", *(a[0] for a in AGGREGATIONS)]
        assert got.get_column("extra").to_list() == list(range(len(queries)))
        for row, (card, t) in zip(got.iter_rows(named=True), zip(entity["card_id"], times, strict=True), strict=True):
            want = brute(visible, card, t, granularity)
            for name, _, function, _ in AGGREGATIONS:
                assert same(function, row[name], want[name]), (view, name, card, t - base, row[name], want[name])


@PLANS
def test_ties_nulls_and_empty_windows(plan: str, repo: Path) -> None:
    """Two events at one time both count; last breaks ties by created, then the later row; empty windows."""
    base = base_minute(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    rows = [
        {"card_id": 1, "ts": 0, "created": None, "amount": 1.0, "qty": 1, "merchant": "a", "eid": None},
        {"card_id": 1, "ts": 0, "created": None, "amount": 2.0, "qty": 1, "merchant": "b", "eid": None},
        {"card_id": 1, "ts": 5, "created": 2, "amount": 3.0, "qty": None, "merchant": "c", "eid": None},
        {"card_id": 1, "ts": 5, "created": 1, "amount": 4.0, "qty": None, "merchant": None, "eid": None},
    ]
    frame(absolute(rows, base)).write_parquet(repo / "data" / "events.parquet")
    fs = store(repo, plan)
    fs.ingest()
    entity = pl.DataFrame(
        {"card_id": [1, 1, 2], "event_timestamp": [from_us(base), from_us(base + 5 * MINUTE), from_us(base)]}
    )
    got = fs.get_training_set(
        entity, ["exact:n_10m", "exact:last_1h", "exact:last_m_10m", "exact:sum_1h", "exact:sd_1h", "exact:max_10m"]
    )
    assert got["n_10m"].to_list() == [2, 4, 0]
    assert got["last_1h"].to_list() == [2.0, 3.0, None]  # the later row; then the greater created
    assert got["last_m_10m"].to_list() == ["b", "c", None]
    assert got["sum_1h"].to_list() == [3.0, 10.0, 0.0]
    assert got["max_10m"].to_list() == [1, 1, None]
    assert got["sd_1h"][2] is None
