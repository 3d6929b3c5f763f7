"""Sources and dtypes at ingest: relative SQL paths, created columns, narrowing, empty columns, future rows."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore import DefinitionError, FeatureStore, GateRejectedError

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ENTITY = pl.DataFrame({"k": [1, 2], "event_timestamp": [T0, T0]})


def repo(make_repo: Any, views: str, name: str) -> tuple[Path, FeatureStore]:
    root = make_repo({"views.py": views}, name=name)
    (root / "data").mkdir()
    return root, FeatureStore(root)


def test_sql_source_paths_resolve_against_the_repository(make_repo: Any, tmp_path: Path) -> None:
    root, store = repo(
        make_repo,
        """
        from featurestore import Entity, Feature, FeatureView, Float64, SqlSource
        e = Entity("e", join_keys=["k"])
        v = FeatureView("v", [e], SqlSource("SELECT * FROM 'data/src.parquet' WHERE x > 0"), [Feature("x", Float64)])
        """,
        "sqlpaths",
    )
    pl.DataFrame({"k": [1, 2], "event_timestamp": [T0, T0], "x": [1.5, -1.0]}).write_parquet(root / "data/src.parquet")
    cwd = os.getcwd()
    os.chdir(tmp_path)  # anywhere but the repository
    try:
        store.apply()
        store.ingest()
        assert store.get_training_set(ENTITY, ["v:x"])["x"].to_list() == [1.5, None]
    finally:
        os.chdir(cwd)


def test_a_created_column_missing_from_the_source_is_an_error(make_repo: Any) -> None:
    root, store = repo(
        make_repo,
        """
        from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource
        e = Entity("e", join_keys=["k"])
        v = FeatureView("v", [e], ParquetSource("data/src.parquet", created="created_typo"), [Feature("x", Float64)])
        """,
        "createdtypo",
    )
    pl.DataFrame({"k": [1], "event_timestamp": [T0], "created": [T0], "x": [1.0]}).write_parquet(
        root / "data/src.parquet"
    )
    store.apply(data_check=False)
    with pytest.raises(DefinitionError, match=r"object 'v'.*created_typo"):
        store.ingest()


CSV_VIEWS = """
from featurestore import CsvSource, Entity, Feature, FeatureView, Float64, Int32
e = Entity("e", join_keys={"k": Int32})
v = FeatureView("v", [e], CsvSource("data/src.csv"), [Feature("n", Int32), Feature("gust", Float64)])
"""


def test_csv_integers_narrow_to_int32_and_an_empty_column_is_null(make_repo: Any) -> None:
    root, store = repo(make_repo, CSV_VIEWS, "csv32")
    (root / "data/src.csv").write_text(
        "k,event_timestamp,n,gust\n1,2026-01-01T00:00:00Z,7,\n2,2026-01-01T00:00:00Z,8,\n"
    )
    store.apply()
    store.ingest()
    out = store.get_training_set(ENTITY, ["v:n", "v:gust"])
    assert out["n"].to_list() == [7, 8] and out["n"].dtype == pl.Int32
    assert out["gust"].to_list() == [None, None] and out["gust"].dtype == pl.Float64


def test_an_integer_too_wide_for_int32_fails_its_row_and_nothing_is_written(make_repo: Any) -> None:
    root, store = repo(make_repo, CSV_VIEWS, "csv32overflow")
    (root / "data/src.csv").write_text("k,event_timestamp,n,gust\n1,2026-01-01T00:00:00Z,9999999999,1.5\n")
    store.apply()
    with pytest.raises(GateRejectedError) as info:
        store.ingest()
    assert info.value.result.failures["n: dtype"]["count"] == 1
    assert store.layout.files("v", store.state().view("v").version) == []


def test_text_in_a_numeric_feature_fails_its_row(make_repo: Any) -> None:
    root, store = repo(make_repo, CSV_VIEWS, "csvtext")
    (root / "data/src.csv").write_text("k,event_timestamp,n,gust\n1,2026-01-01T00:00:00Z,7,strong\n")
    store.apply(data_check=False)
    with pytest.raises(GateRejectedError) as info:
        store.ingest()
    [sample] = info.value.result.sample
    assert sample["check"] == "dtype" and sample["column"] == "gust"
    assert sample["value"] == "'strong' (String) is not Float64"


def test_keys_applied_before_the_data_keep_their_registered_type(make_repo: Any) -> None:
    root, store = repo(
        make_repo,
        """
        from featurestore import Entity, Feature, FeatureView, Float64, ParquetSource
        e = Entity("e", join_keys=["k"])
        v = FeatureView("v", [e], ParquetSource("data/src.parquet"), [Feature("x", Float64)])
        """,
        "applyfirst",
    )
    store.apply(data_check=False)  # no data yet (so no data check): the key is registered as Int64
    pl.DataFrame({"k": ["a"], "event_timestamp": [T0], "x": [1.0]}).write_parquet(root / "data/src.parquet")
    with pytest.raises(GateRejectedError) as info:
        store.ingest()  # a data problem the gate reports, not "definition changed since the last apply"
    assert info.value.result.failures["k: dtype"]["count"] == 1


@pytest.mark.parametrize("gate", ["", "gate=Gate(max_future=None)"])
def test_future_event_times_are_quarantined_unless_the_view_allows_them(make_repo: Any, gate: str) -> None:
    root, store = repo(
        make_repo,
        f"""
        from featurestore import Entity, Feature, FeatureView, Float64, Gate, ParquetSource
        e = Entity("e", join_keys=["k"])
        v = FeatureView("v", [e], ParquetSource("data/src.parquet"), [Feature("x", Float64)], {gate})
        """,
        "future" + str(bool(gate)),
    )
    future = datetime(2031, 1, 1, tzinfo=UTC)
    rows = {"k": list(range(40)), "event_timestamp": [T0] * 39 + [future], "x": [1.0] * 39 + [2.0]}
    pl.DataFrame(rows).write_parquet(root / "data/src.parquet")
    store.apply()
    (result,) = store.ingest()
    out = store.get_training_set(pl.DataFrame({"k": [39], "event_timestamp": [future]}), ["v:x"])
    if gate:  # the check turned off: kept
        assert result.rows_written == 40 and out["x"].to_list() == [2.0]
    else:  # by default a row more than 5 minutes ahead is quarantined with its reason
        assert result.rows_written == 39 and result.gate.rows_quarantined == 1 and out["x"].to_list() == [None]
