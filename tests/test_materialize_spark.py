"""Materialize on Spark: latest rows computed by Spark, gated and written to the online store by the executors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore, GateRejectedError
from featurestore.config import load_settings
from tests.test_materialize import BASE, VIEWS, point_in_time, source_frame


@pytest.fixture(params=["sqlite", "redis"])
def online_url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return "sqlite:///data/online.db"
    server = request.getfixturevalue("redis_server")
    import redis

    redis.Redis.from_url(server.url).flushdb()
    return str(server.url)


def spark_store(make_repo: Any, online: str, views: str = VIEWS, df: pl.DataFrame | None = None) -> FeatureStore:
    views = views.replace("TTL", "None").replace("EXTRA", "")
    config = f'project = "mat"\nonline = "{online}"\nengine = "spark"\n'
    root = make_repo({"views.py": views}, config=config)
    (root / "data").mkdir(exist_ok=True)
    (df if df is not None else source_frame()).write_parquet(root / "data" / "stats.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    return store


def test_spark_writes_the_latest_rows_from_the_executors(spark: Any, make_repo: Any, online_url: str) -> None:
    df = source_frame()
    store = spark_store(make_repo, online_url, df=df)
    assert store.engine.name == "spark"
    end = BASE + timedelta(days=1, hours=12)
    (result,) = store.materialize(end=end)
    expected = point_in_time(df, end)
    assert result.rows_written == len(expected) and result.switched and result.rows_stale == 0
    assert result.rows_read == df.filter(pl.col("event_timestamp") <= end).height
    assert result.gate is not None and result.gate.status == "passed" and result.gate.rows_checked == len(expected)
    ids = sorted(expected)
    got = store.get_online_features("svc", {"driver_id": ids}).to_dict()
    assert got["b"] == [expected[d]["b"] for d in ids]
    assert got["s"] == [expected[d]["s"] for d in ids]
    # what was written equals what the DuckDB engine writes into a second store
    duck = FeatureStore(settings=load_settings(store.repo, env={"FEATURESTORE_ENGINE": "duckdb"}))
    spec = store.state().view("stats")
    keys = [str(i) for i in range(45)]
    spark_rows = store.online_store().read_rows("stats", spec.version, keys)
    (again,) = duck.materialize(end=end)  # newest-wins: the same rows again are stale, nothing changes
    assert again.rows_written == 0 and again.rows_stale == len(expected)
    assert duck.online_store().read_rows("stats", spec.version, keys) == spark_rows
    # an incremental run from the watermark: only newer rows are read
    (later,) = store.materialize_incremental(end=BASE + timedelta(days=3))
    assert later.start == end
    newest = point_in_time(df, BASE + timedelta(days=3))
    got = store.get_online_features("svc", {"driver_id": sorted(newest)}).to_dict()
    assert got["b"] == [newest[d]["b"] for d in sorted(newest)]


GATED = (
    VIEWS.replace('Feature("b", Int64)', 'Feature("b", Int64, checks=[in_range(0, 1000)])')
    .replace("from featurestore import", "from featurestore import Gate, in_range,")
    .replace("ttl=TTL,", 'ttl=TTL, gate=Gate(policy="fail"),')
)


def test_nothing_is_written_when_the_gate_rejects_a_partition(spark: Any, make_repo: Any) -> None:
    from featurestore.offline.ingest import write_view

    store = spark_store(make_repo, "sqlite:///data/online.db", views=GATED)
    spec = store.state().view("stats")
    # offline rows the gate now refuses (written past ingest, as an older gate may have let them in)
    bad = pl.read_parquet(store.layout.files("stats", spec.version)).with_columns(pl.lit(5000).alias("b"))
    write_view(store.layout, spec, bad)
    with pytest.raises(GateRejectedError, match="stats"):
        store.materialize()
    online = store.online_store()
    assert online.current_version("stats") is None and online.watermark("stats", spec.version) is None
    assert online.read_rows("stats", spec.version, [str(i) for i in range(40)]) == [None] * 40
