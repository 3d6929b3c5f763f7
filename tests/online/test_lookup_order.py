"""Composite keys online: join-key columns come back first, in the order the request gave them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from featurestore import FeatureStore

VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource, String
route = Entity("route", join_keys={"origin": String, "dest": String})
delays = FeatureView("delays", [route], ParquetSource("src.parquet"), [Feature("mean_delay", Float64)])
"""


def test_composite_keys_round_trip_in_request_order(make_repo: Any) -> None:
    import polars as pl

    root = make_repo({"views.py": VIEWS}, config='project = "order"\nonline = "sqlite:///online.db"\n')
    now = datetime.now(UTC).replace(microsecond=0)
    pl.DataFrame(
        {"origin": ["JFK", "LGA"], "dest": ["LAX", "SFO"], "event_timestamp": [now, now], "mean_delay": [4.5, 7.0]}
    ).write_parquet(root / "src.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    store.materialize()
    a = store.get_online_features(["delays:mean_delay"], {"origin": ["LGA", "JFK"], "dest": ["SFO", "SFO"]})
    assert a.feature_names == ["origin", "dest", "mean_delay"]
    assert a["mean_delay"] == [7.0, None] and a.statuses()["mean_delay"] == ["PRESENT", "NOT_FOUND"]
    b = store.get_online_features(["delays:mean_delay"], {"dest": ["LAX"], "origin": ["JFK"]})
    assert b.feature_names == ["dest", "origin", "mean_delay"] and b["mean_delay"] == [4.5]
