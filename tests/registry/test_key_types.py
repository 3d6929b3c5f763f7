"""Join keys declared without a dtype are typed from the data at apply; declared ones are enforced."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest

from featurestore import DefinitionError, FeatureStore, GateRejectedError

T0 = datetime(2026, 1, 1, tzinfo=UTC)

VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource, String
user = Entity("user", join_keys={keys})
v = FeatureView("v", [user], ParquetSource("src.parquet"), [Feature("score", Float64)])
"""


def repo_with(make_repo: Any, keys: str, ids: list[Any], name: str) -> FeatureStore:
    root = make_repo({"views.py": VIEWS.format(keys=keys)}, name=name)
    pl.DataFrame({"user_id": ids, "event_timestamp": [T0] * len(ids), "score": [1.0, 2.0]}).write_parquet(
        root / "src.parquet"
    )
    return FeatureStore(root)


def test_untyped_string_keys_are_typed_from_the_data(make_repo: Any) -> None:
    store = repo_with(make_repo, '["user_id"]', ["u1", "u2"], "strings")
    store.apply()
    assert store.state().view("v").raw["join_keys"] == {"user_id": "String"}
    store.ingest()
    out = store.get_training_set(pl.DataFrame({"user_id": ["u2", "u3"], "event_timestamp": [T0, T0]}), ["v:score"])
    assert out["score"].to_list() == [2.0, None]


def test_untyped_integer_keys_become_int64(make_repo: Any) -> None:
    store = repo_with(make_repo, '["user_id"]', [1, 2], "ints")
    store.apply()
    assert store.state().view("v").raw["join_keys"] == {"user_id": "Int64"}


def test_a_declared_key_type_that_the_data_contradicts_stops_ingest(make_repo: Any) -> None:
    store = repo_with(make_repo, '{"user_id": Int64}', ["u1", "u2"], "declared")
    store.apply(data_check=False)  # apply itself refuses it: tests/registry/test_data_check.py
    with pytest.raises(GateRejectedError) as info:  # a data problem the gate reports
        store.ingest()
    assert info.value.result.failures["user_id: dtype"]["count"] == 2
    assert "'u1' (String) is not Int64" in info.value.result.sample[0]["value"]
    assert store.layout.files("v", store.state().view("v").version) == []


def test_a_view_served_online_needs_addressable_keys(make_repo: Any) -> None:
    views = """
    from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource
    e = Entity("e", join_keys={"k": Float64})
    v = FeatureView("v", [e], ParquetSource("src.parquet"), [Feature("x", Float64)])
    offline_only = FeatureView("w", [e], ParquetSource("src.parquet"), [Feature("x", Float64)], online=False)
    """
    store = FeatureStore(make_repo({"views.py": views}, name="floatkeys"))
    with pytest.raises(DefinitionError, match=r"module definitions.views, object 'v'.*online=False"):
        store.plan()
