"""A re-ingest rebuilds a range from the source and keeps the rows pushed to the offline store in it.

Before, an ingest replaced the days it covered with the source's rows only: an acknowledged push
with ``to_offline`` vanished from training sets at the next ``featurestore ingest``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from featurestore import FeatureStore
from tests.offline.test_ingest import read_store

NOW = datetime.now(UTC).replace(microsecond=0)
DAY0 = (NOW - timedelta(days=3)).replace(hour=12, minute=0, second=0)
PLAIN = """
from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView(
    "stats",
    entities=[driver],
    source=ParquetSource("stats.parquet", created="created"),
    features=[Feature("rate", Float64), Feature("trips", Int64)],
)
"""
EVENTS = """
from datetime import timedelta
from featurestore import Aggregation, Entity, Feature, FeatureView, Float64, Int64, ParquetSource

card = Entity("card", join_keys=["card_id"])
tx = FeatureView(
    "tx",
    entities=[card],
    source=ParquetSource("tx.parquet", timestamp="ts"),
    features=[Feature("amount", Float64)],
    aggregations=[Aggregation("amount", "sum", window=timedelta(days=30)),
                  Aggregation("amount", "count", window=timedelta(days=30))],
)
"""


def _source(path: Path, rows: list[tuple[int, datetime, float, int, datetime | None]]) -> None:
    pl.DataFrame(
        rows,
        schema={
            "driver_id": pl.Int64,
            "event_timestamp": pl.Datetime("us", "UTC"),
            "rate": pl.Float64,
            "trips": pl.Int64,
            "created": pl.Datetime("us", "UTC"),
        },
        orient="row",
    ).write_parquet(path)


def _plain(make_repo: Any) -> tuple[Path, FeatureStore]:
    repo = make_repo({"views.py": PLAIN})
    old = DAY0 - timedelta(days=30)  # created long ago: a push (created when received) beats it
    _source(repo / "stats.parquet", [(1, DAY0, 1.0, 10, old), (2, DAY0, 2.0, 20, old)])
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    return repo, store


def _values(store: FeatureStore) -> dict[tuple[int, datetime], tuple[float, int]]:
    rows = read_store(store)
    return {(r["driver_id"], r["event_timestamp"]): (r["rate"], r["trips"]) for r in rows.iter_rows(named=True)}


def test_pushed_rows_survive_a_full_re_ingest(make_repo: Any) -> None:
    repo, store = _plain(make_repo)
    later = DAY0 + timedelta(days=1)  # a day the source does not have at all
    store.push(
        "stats",
        [
            {"driver_id": 1, "event_timestamp": DAY0.isoformat(), "rate": 1.5, "trips": 11},  # a correction
            {"driver_id": 3, "event_timestamp": DAY0.isoformat(), "rate": 3.0, "trips": 30},  # a new entity
            {"driver_id": 4, "event_timestamp": later.isoformat(), "rate": 4.0, "trips": 40},
        ],
        to_offline=True,
        to_online=False,
    )
    pushed = _values(store)
    # The source changes: driver 2's row is corrected at the source, driver 1's is not.
    old = DAY0 - timedelta(days=30)
    _source(repo / "stats.parquet", [(1, DAY0, 1.0, 10, old), (2, DAY0, 2.5, 25, old)])
    store.ingest()
    assert _values(store) == {**pushed, (2, DAY0): (2.5, 25)}
    stored = read_store(store)
    assert stored.filter(pl.col("driver_id") == 3)["__fs_pushed"].to_list() == [True]
    assert stored.filter(pl.col("driver_id") == 2)["__fs_pushed"].to_list() == [False]
    # and a training set sees them
    entity = pl.DataFrame({"driver_id": [1, 3, 4], "event_timestamp": [DAY0, DAY0, later]})
    got = store.get_training_set(entity, ["stats:rate"])
    assert got["rate"].to_list() == [1.5, 3.0, 4.0]
    store.ingest()  # again: nothing changes, nothing doubles
    assert read_store(store).height == 4 and _values(store) == {**pushed, (2, DAY0): (2.5, 25)}


def test_a_source_row_created_after_the_push_replaces_it_as_online(make_repo: Any) -> None:
    repo, store = _plain(make_repo)
    store.push(
        "stats",
        [{"driver_id": 1, "event_timestamp": DAY0.isoformat(), "rate": 1.5, "trips": 11}],
        to_offline=True,
        to_online=False,
    )
    newer = datetime.now(UTC) + timedelta(hours=1)  # created after the push was received
    old = DAY0 - timedelta(days=30)
    _source(repo / "stats.parquet", [(1, DAY0, 9.0, 90, newer), (2, DAY0, 2.0, 20, old)])
    store.ingest()
    assert _values(store)[(1, DAY0)] == (9.0, 90)


def test_a_ranged_re_ingest_keeps_pushed_rows_inside_and_everything_outside(make_repo: Any) -> None:
    repo, store = _plain(make_repo)
    t1, t2 = DAY0 + timedelta(hours=1), DAY0 + timedelta(hours=3)
    store.push(
        "stats",
        [
            {"driver_id": 5, "event_timestamp": t1.isoformat(), "rate": 5.0, "trips": 50},
            {"driver_id": 6, "event_timestamp": t2.isoformat(), "rate": 6.0, "trips": 60},
        ],
        to_offline=True,
        to_online=False,
    )
    _source(repo / "stats.parquet", [])  # the source lost its rows
    store.ingest(start=DAY0 + timedelta(minutes=30), end=DAY0 + timedelta(hours=2))
    # driver 1 and 2 (before the range) and 6 (after it) untouched, 5 (pushed inside it) kept
    assert set(_values(store)) == {(1, DAY0), (2, DAY0), (5, t1), (6, t2)}


def test_a_source_row_removed_at_the_source_goes_pushed_ones_stay(make_repo: Any) -> None:
    repo, store = _plain(make_repo)
    store.push(
        "stats",
        [{"driver_id": 7, "event_timestamp": DAY0.isoformat(), "rate": 7.0, "trips": 70}],
        to_offline=True,
        to_online=False,
    )
    old = DAY0 - timedelta(days=30)
    _source(repo / "stats.parquet", [(1, DAY0, 1.0, 10, old)])
    store.ingest()
    assert set(_values(store)) == {(1, DAY0), (7, DAY0)}


def test_pushed_events_survive_a_re_ingest_and_count_once_when_the_source_has_them(make_repo: Any) -> None:
    repo = make_repo({"views.py": EVENTS})
    at = NOW - timedelta(hours=2)
    schema = {"card_id": pl.Int64, "ts": pl.Datetime("us", "UTC"), "amount": pl.Float64}
    pl.DataFrame({"card_id": [1], "ts": [at], "amount": [10.0]}, schema=schema).write_parquet(repo / "tx.parquet")
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    pushed = [
        {"card_id": 1, "event_timestamp": (at + timedelta(minutes=5)).isoformat(), "amount": 5.0},
        {"card_id": 1, "event_timestamp": (at + timedelta(minutes=9)).isoformat(), "amount": 7.0},
    ]
    store.push("tx", pushed, to_offline=True, to_online=False)
    entity = pl.DataFrame({"card_id": [1], "event_timestamp": [NOW]})

    def sums() -> tuple[float, int]:
        got = store.get_training_set(entity, ["tx:amount_sum_30d", "tx:amount_count_30d"])
        return got["amount_sum_30d"][0], got["amount_count_30d"][0]

    assert sums() == (22.0, 3)
    store.ingest()
    assert sums() == (22.0, 3)  # the pushed events were kept
    # The batch source later holds the first pushed event too: counted once, not twice.
    pl.DataFrame(
        {"card_id": [1, 1], "ts": [at, at + timedelta(minutes=5)], "amount": [10.0, 5.0]}, schema=schema
    ).write_parquet(repo / "tx.parquet")
    store.ingest()
    assert sums() == (22.0, 3)


def test_a_new_versions_first_ingest_carries_the_rows_pushed_to_the_one_before(make_repo: Any) -> None:
    """As the online store carries pushed rows forward at a version switch: features matched by
    name, one the new version adds null. The rows pushed offline used to stay in the old version."""
    repo, store = _plain(make_repo)
    store.push(
        "stats",
        [
            {"driver_id": 1, "event_timestamp": DAY0.isoformat(), "rate": 1.5, "trips": 11},
            {"driver_id": 9, "event_timestamp": DAY0.isoformat(), "rate": 9.0, "trips": 90},
        ],
        to_offline=True,
        to_online=False,
    )
    old = store.state().view("stats").version
    (repo / "definitions" / "views.py").write_text(
        PLAIN.replace('Feature("trips", Int64)]', 'Feature("trips", Int64), Feature("extra", Float64)]')
    )
    src = pl.read_parquet(repo / "stats.parquet")
    src.with_columns(pl.lit(0.5).alias("extra")).write_parquet(repo / "stats.parquet")
    store = FeatureStore(repo)
    store.apply()
    new = store.state().view("stats").version
    assert new != old
    store.ingest()

    def version_rows() -> pl.DataFrame:
        return pl.concat([pl.read_parquet(f) for f in store.layout.files("stats", new)]).sort("driver_id")

    rows = version_rows()
    assert rows.select("driver_id", "rate", "trips", "extra", "__fs_pushed").rows() == [
        (1, 1.5, 11, None, True),
        (2, 2.0, 20, 0.5, False),
        (9, 9.0, 90, None, True),
    ]
    store.ingest()  # a re-ingest of the new version keeps them (and carries nothing twice)
    assert version_rows().height == 3
