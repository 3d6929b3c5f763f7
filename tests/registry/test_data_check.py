"""Plan-time data check: plan and apply run changed views on a sample and refuse what the data contradicts."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest

from featurestore import DefinitionError, FeatureStore

VIEWS = """
import polars as pl
from featurestore import Entity, Feature, FeatureView, Float64, Int64, String, ParquetSource
driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView("stats", entities=[driver], source=ParquetSource("{path}", timestamp="{ts}"),
    features=[{features}], transform={transform})
"""
FEATURES = 'Feature("rate", Float64), Feature("trips", Int64)'


def write_views(root: Path, path="data/stats.parquet", ts="event_timestamp", features=FEATURES, transform="None"):
    text = VIEWS.format(path=path, ts=ts, features=features, transform=transform)
    (root / "definitions" / "views.py").write_text(text)
    shutil.rmtree(root / "definitions" / "__pycache__", ignore_errors=True)


@pytest.fixture
def repo(make_repo) -> Path:
    root = make_repo({})
    (root / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 2],
            "event_timestamp": [datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "rate": [0.5, 0.7],
            "trips": [3, 4],
            "name": ["a", "b"],
        }
    ).write_parquet(root / "data" / "stats.parquet")
    write_views(root)
    return root


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"features": FEATURES + ', Feature("speed", Float64)'}, ["'speed'", "missing from the source frame"]),
        ({"transform": 'lambda lf: lf.drop("trips")'}, ["'trips'", "missing from the transformed frame"]),
        ({"ts": "event_time"}, ["'event_time'", "missing"]),
        ({"ts": "trips"}, ["timestamp= column 'trips' is not a time", "Int64"]),
        ({"ts": "name"}, ["timestamp= column 'name' is not a time", "'a' is not a timestamp", "ISO 8601"]),
        ({"path": "data/nope.parquet"}, ["source file 'data/nope.parquet' does not exist"]),
        ({"transform": "lambda lf: 1 / 0"}, ["ZeroDivisionError"]),
        ({"transform": "lambda lf: None"}, ["transform must return a polars LazyFrame or DataFrame, got NoneType"]),
        ({"features": 'Feature("rate", Float64), Feature("trips", String)'}, ["'trips' holds Int64", "String"]),
    ],
)
def test_plan_and_apply_refuse_what_the_data_contradicts_and_write_nothing(repo: Path, change, words) -> None:
    store = FeatureStore(repo)
    store.apply()
    before = store.settings.registry.read_bytes()
    write_views(repo, **change)
    for call in (store.plan, lambda: store.apply(allow_breaking=True)):
        with pytest.raises(DefinitionError) as info:
            call()
        msg = str(info.value)
        assert "module definitions.views, object 'stats'" in msg and "data_check=False" in msg
        for word in words:
            assert word in msg, msg
    assert store.settings.registry.read_bytes() == before
    # data_check=False registers it anyway (a source not reachable from where apply runs).
    assert not store.apply(allow_breaking=True, data_check=False).empty


def test_a_new_repository_is_checked_before_its_first_apply(repo: Path) -> None:
    write_views(repo, path="data/missing.parquet")
    store = FeatureStore(repo)
    with pytest.raises(DefinitionError, match="does not exist"):
        store.apply()
    assert not store.settings.registry.exists()


def test_only_changed_views_are_checked_and_on_a_bounded_sample(repo: Path) -> None:
    store = FeatureStore(repo)
    plan = store.apply(sample_rows=1)
    assert plan.data_checked == {"stats": 1}
    assert store.plan().data_checked == {}  # unchanged: not read again
    # The sample is the first rows: a bad value beyond it is the gate's matter at ingest.
    write_views(repo, transform='lambda lf: lf.with_columns(pl.col("rate") * 2)')
    assert store.plan(sample_rows=5).data_checked == {"stats": 2}


def test_the_sample_size_is_a_setting(make_repo, repo: Path) -> None:
    (repo / "featurestore.toml").write_text('project = "test"\nplan_sample_rows = 1\n')
    assert FeatureStore(repo).plan().data_checked == {"stats": 1}


def test_a_csv_column_with_some_unreadable_values_is_applied_and_its_rows_quarantined(make_repo) -> None:
    """One 'abc' among numbers makes a CSV column text (and one 2.5 an integer column float): apply
    refused the view ("holds String"), though ingest types values row by row and quarantines those."""
    views = """
    from featurestore import CsvSource, Entity, Feature, FeatureView, Float64, Gate, Int64
    e = Entity("e", join_keys=["k"])
    v = FeatureView("v", [e], CsvSource("data/src.csv", timestamp="ts"),
                    [Feature("x", Float64), Feature("n", Int64)], gate=Gate(max_bad_fraction=0.9))
    """
    root = make_repo({"views.py": views})
    (root / "data").mkdir()
    rows = [
        "k,ts,x,n",
        "1,2026-01-01T00:00:00Z,1.5,1",
        "2,2026-01-01T01:00:00Z,abc,2",
        "3,yesterday,3,3",
        "4,2026-01-01T03:00:00Z,4,2.5",
        "5,2026-01-01T04:00:00Z,5,5",
    ]
    (root / "data" / "src.csv").write_text("\n".join(rows) + "\n")
    store = FeatureStore(root)
    assert store.apply().data_checked == {"v": 5}
    [result] = store.ingest()
    assert {k: f["count"] for k, f in result.gate.failures.items()} == {"x: dtype": 1, "ts: dtype": 1, "n: dtype": 1}
    files = store.layout.files("v", store.state().view("v").version)
    stored = pl.concat([pl.read_parquet(f) for f in files]).sort("k")
    assert stored.select("k", "x", "n").rows() == [(1, 1.5, 1), (5, 5.0, 5)]
