"""A new version of an aggregation view: materialized, it holds the pushed events the offline store lacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore
from tests.aggregation.conftest import SCHEMA
from tests.conftest import write_repo

VIEW = """
from datetime import timedelta
from featurestore import Aggregation, Entity, Feature, FeatureView, Float64, Int64, ParquetSource, String

card = Entity("card", join_keys={{"card_id": Int64}})
txn = FeatureView(
    "txn", entities=[card], source=ParquetSource("data/events.parquet", timestamp="ts", created="created"),
    features=[Feature("amount", Float64), Feature("qty", Int64), Feature("merchant", String)], event_id="eid",
    aggregations=[
        Aggregation("amount", "count", window=timedelta(hours=1), name="n_1h"),
        Aggregation("amount", "sum", window=timedelta(hours=1), name="sum_1h"),{extra}
    ],
)
"""


@pytest.fixture(params=["sqlite", "redis"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    url = str(request.getfixturevalue("redis_server").url) if request.param == "redis" else "sqlite:///data/online.db"
    root = write_repo(
        tmp_path / "repo",
        {"views.py": VIEW.format(extra="")},
        f'project = "aggver_{request.param}"\nonline = "{url}"\n',
    )
    (root / "data").mkdir()
    return root


def _event(minutes_ago: float, amount: float, eid: str | None) -> dict[str, Any]:
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    return {"card_id": 1, "ts": ts, "created": None, "amount": amount, "qty": 1, "merchant": "m", "eid": eid}


def _push(fs: FeatureStore, events: list[dict[str, Any]]) -> None:
    rows = [{k: v for k, v in e.items() if k != "ts"} | {"event_timestamp": e["ts"].isoformat()} for e in events]
    fs.push("txn", rows)


def test_a_new_version_gets_the_pushes_its_offline_events_lack(repo: Path) -> None:
    offline = [_event(30, 1.0, "o1"), _event(20, 2.0, None)]
    pl.DataFrame(offline, schema=SCHEMA).write_parquet(repo / "data" / "events.parquet")
    fs = FeatureStore(repo)
    fs.apply()
    fs.ingest()
    fs.materialize()
    # pushed online only: a late event, a retried offline event id, an event without id that offline lacks
    _push(fs, [_event(25, 10.0, "p1"), _event(30, 1.0, "o1"), _event(5, 100.0, None)])
    before = fs.get_online_features(["txn:n_1h", "txn:sum_1h"], {"card_id": [1]}).to_dict()
    assert (before["n_1h"], before["sum_1h"]) == ([4], [113.0])
    # a new version (one more aggregation over the same event columns), applied and materialized
    (repo / "definitions" / "views.py").write_text(
        VIEW.format(extra='\n        Aggregation("amount", "max", window=timedelta(hours=1), name="max_1h"),')
    )
    fs = FeatureStore(repo)
    fs.apply()
    fs.ingest()
    result = fs.materialize()[0]
    assert result.switched and result.rows_carried == 2  # p1 and the id-less push; o1 is rebuilt from offline
    after = fs.get_online_features(["txn:n_1h", "txn:sum_1h", "txn:max_1h"], {"card_id": [1]}).to_dict()
    assert (after["n_1h"], after["sum_1h"], after["max_1h"]) == ([4], [113.0], [100.0])
    # a retried push still counts once in the new version
    _push(fs, [_event(25, 10.0, "p1")])
    assert fs.get_online_features(["txn:n_1h"], {"card_id": [1]}).to_dict()["n_1h"] == [4]
