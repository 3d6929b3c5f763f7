"""Training sets: every window of every entity row equals the brute-force definition."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from featurestore import FeatureStore, TrainingSetError
from featurestore.config import load_settings
from featurestore.errors import InvalidRequestError
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


INT_SUMS = """
from datetime import timedelta
from featurestore import Aggregation, Entity, Feature, FeatureView, Int64, ParquetSource
card = Entity("card", join_keys=["card_id"])
tx = FeatureView("tx", entities=[card], source=ParquetSource("tx.parquet", timestamp="ts"),
    features=[Feature("n", Int64)], aggregations=[Aggregation("n", "sum", window=timedelta(hours=1))])
"""


@PLANS
def test_a_sum_of_integers_past_int64_is_refused_offline_and_online(plan: str, make_repo: Any) -> None:
    """Exact up to 2**63 - 1 on both sides; past it the same error on both (the training set raised a raw
    duckdb ConversionException while a lookup answered 2**63)."""
    repo = make_repo({"views.py": INT_SUMS}, config='project = "sums"\nonline = "sqlite:///online.db"\n')
    at = datetime.now(UTC).replace(microsecond=0)  # online state keeps the events of the last hour
    t = at - timedelta(minutes=10)
    big = 2**62
    rows = {"card_id": [1, 1, 2, 2], "ts": [t] * 4, "n": [big, big - 1, big, big]}  # card 1: 2**63 - 1
    pl.DataFrame(rows).write_parquet(repo / "tx.parquet")
    fs = store(repo, plan)
    fs.apply()
    fs.ingest()
    fs.materialize(end=at)
    training = fs.get_training_set(pl.DataFrame({"card_id": [1], "event_timestamp": [at]}), ["tx:n_sum_1h"])
    assert training["n_sum_1h"].to_list() == [2**63 - 1] and training.schema["n_sum_1h"] == pl.Int64
    online = fs.get_online_features(["tx:n_sum_1h"], {"card_id": [1]}, as_of=at).to_dict()
    assert online["n_sum_1h"] == [2**63 - 1]
    refused = r"feature view 'tx': 'n_sum_1h', a sum of integers, is 9223372036854775808, outside the Int64 range"
    with pytest.raises(TrainingSetError, match=refused):
        fs.get_training_set(pl.DataFrame({"card_id": [1, 2], "event_timestamp": [at, at]}), ["tx:n_sum_1h"])
    with pytest.raises(InvalidRequestError, match=refused):
        fs.get_online_features(["tx:n_sum_1h"], {"card_id": [2]}, as_of=at)
