"""Training sets through the SDK: saved with a manifest, rebuilt identically, entity frame kinds, reference errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from polars.testing import assert_frame_equal

from featurestore import FeatureStore, RegistryError, TrainingSetError
from featurestore.offline.manifest import file_sha256
from featurestore.offline.training import load_entity_frame, save_training_set
from featurestore.registry.refs import resolve_features

VIEWS = """
from datetime import timedelta
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView("stats", entities=[driver], source=ParquetSource("data/stats.parquet"),
    features=[Feature("rate", Float64), Feature("trips", Int64)], ttl=timedelta(days=1))
other = FeatureView("other", entities=[driver], source=ParquetSource("data/other.parquet"),
    features=[Feature("rate", Float64), Feature("score", Float64)])
model = FeatureService("model", features=[stats[["rate"]], other[["score"]]])
"""


def t(day: int, hour: int = 0) -> datetime:
    return datetime(2024, 1, day, hour)


@pytest.fixture
def store(make_repo) -> FeatureStore:
    repo = make_repo({"views.py": VIEWS})
    (repo / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 1, 2, 2],
            "event_timestamp": [t(1, 10), t(2, 10), t(1, 12), t(3, 0)],
            "rate": [0.1, 0.2, 0.3, 0.4],
            "trips": [1, 2, 3, 4],
        }
    ).write_parquet(repo / "data" / "stats.parquet")
    pl.DataFrame(
        {
            "driver_id": [1, 2],
            "event_timestamp": [t(1, 0), t(1, 0)],
            "rate": [9.1, 9.2],
            "score": [10.0, 20.0],
        }
    ).write_parquet(repo / "data" / "other.parquet")
    fs = FeatureStore(repo)
    fs.apply()
    fs.ingest()
    return fs


ENTITY = pl.DataFrame(
    {
        "driver_id": [2, 1, 1, 2, 1],
        "event_timestamp": [t(1, 13), t(2, 9), t(2, 10), t(5, 0), t(1, 10)],
        "label": [1, 0, 1, 0, 1],
    }
)
# stats has a ttl of one day; other has none.
EXPECTED = ENTITY.with_columns(
    pl.Series("rate", [0.3, 0.1, 0.2, None, 0.1]),
    pl.Series("trips", [3, 1, 2, None, 1]),
)


def test_training_set_values(store: FeatureStore) -> None:
    df = store.get_training_set(ENTITY, ["stats:rate", "stats:trips"])
    assert_frame_equal(df, EXPECTED)


def test_saved_training_set_has_parquet_and_manifest(store: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "sets" / "train.parquet"
    df = store.get_training_set(ENTITY, ["stats:rate", "stats:trips", "other:score"], out=out, full_feature_names=True)
    assert df.columns == ["driver_id", "event_timestamp", "label", "stats__rate", "stats__trips", "other__score"]
    assert_frame_equal(pl.read_parquet(out), df)
    manifest = json.loads((tmp_path / "sets" / "train.parquet.manifest.json").read_text())
    assert manifest["features"] == ["stats:rate", "stats:trips", "other:score"]
    assert manifest["entity_rows"] == 5
    assert manifest["full_feature_names"] is True
    assert manifest["timestamp_column"] == "event_timestamp"
    entity_file = Path(manifest["entities"]["path"])
    assert manifest["entities"]["sha256"] == file_sha256(entity_file)
    assert_frame_equal(pl.read_parquet(entity_file), ENTITY)
    state = store.state()
    for name, feats in (("stats", ["rate", "trips"]), ("other", ["score"])):
        info = manifest["views"][name]
        assert info["version"] == state.view(name).version
        assert info["features"] == feats
        files = store.layout.files(name, info["version"])
        assert [Path(f["path"]) for f in info["files"]] == files
        assert all(f["sha256"] == file_sha256(Path(f["path"])) for f in info["files"])
    assert manifest["output"]["rows"] == 5
    assert manifest["output"]["sha256"] == file_sha256(out)
    assert "created_at" in manifest


def test_rebuild_from_manifest_is_identical(store: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    df = store.get_training_set(ENTITY, "model", out=out)
    manifest = tmp_path / "train.parquet.manifest.json"
    assert_frame_equal(store.rebuild_training_set(manifest), df)
    # Still identical after a new apply changes the ttl (not part of the version) and a re-ingest.
    (store.repo / "definitions" / "views.py").write_text(VIEWS.replace("ttl=timedelta(days=1)", "ttl=None"))
    store.apply()
    store.ingest()
    assert store.get_training_set(ENTITY, "model")["rate"].to_list() != df["rate"].to_list()
    assert_frame_equal(store.rebuild_training_set(manifest), df)


def test_rebuild_fails_when_an_offline_file_changed(store: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    store.get_training_set(ENTITY, ["stats:rate"], out=out)
    # A re-ingest of changed source data rewrites the partition files.
    src = store.repo / "data" / "stats.parquet"
    pl.read_parquet(src).with_columns(pl.col("rate") + 1).write_parquet(src)
    store.ingest()
    with pytest.raises(TrainingSetError, match="changed since the manifest was written"):
        store.rebuild_training_set(tmp_path / "train.parquet.manifest.json")


def test_rebuild_fails_when_an_offline_file_is_gone(store: FeatureStore, tmp_path: Path) -> None:
    out = tmp_path / "train.parquet"
    store.get_training_set(ENTITY, ["stats:rate"], out=out)
    manifest = json.loads((tmp_path / "train.parquet.manifest.json").read_text())
    Path(manifest["views"]["stats"]["files"][0]["path"]).unlink()
    with pytest.raises(TrainingSetError, match="no longer exists"):
        store.rebuild_training_set(tmp_path / "train.parquet.manifest.json")


def test_rebuild_fails_on_a_missing_or_invalid_manifest(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(TrainingSetError, match="does not exist"):
        store.rebuild_training_set(tmp_path / "nope.manifest.json")
    bad = tmp_path / "bad.manifest.json"
    bad.write_text("{not json")
    with pytest.raises(TrainingSetError, match="not valid JSON"):
        store.rebuild_training_set(bad)


@pytest.mark.parametrize("kind", ["polars", "pandas", "pyarrow", "parquet", "csv"])
def test_entity_frame_kinds(store: FeatureStore, tmp_path: Path, kind: str) -> None:
    if kind == "polars":
        entity = ENTITY
    elif kind == "pandas":
        entity = ENTITY.to_pandas()
        assert isinstance(entity, pd.DataFrame)
    elif kind == "pyarrow":
        entity = ENTITY.to_arrow()
    elif kind == "parquet":
        entity = tmp_path / "entities.parquet"
        ENTITY.write_parquet(entity)
    else:
        entity = str(tmp_path / "entities.csv")
        ENTITY.write_csv(entity)
    got = store.get_training_set(entity, ["stats:rate", "stats:trips"])
    # pandas in, pandas out: the result has the entity frame's type (polars for a file).
    expected_type = {"pandas": pd.DataFrame, "pyarrow": pa.Table}.get(kind, pl.DataFrame)
    assert type(got) is expected_type
    df = got if kind not in ("pandas", "pyarrow") else pl.from_pandas(got) if kind == "pandas" else pl.from_arrow(got)
    assert isinstance(df, pl.DataFrame)
    assert (
        df.select("driver_id", "label", "rate", "trips").to_dicts()
        == EXPECTED.select("driver_id", "label", "rate", "trips").to_dicts()
    )
    assert [ts.replace(tzinfo=None) for ts in df["event_timestamp"]] == ENTITY["event_timestamp"].to_list()


@pytest.mark.parametrize(
    ("output", "expected"), [("pandas", pd.DataFrame), ("arrow", pa.Table), ("polars", pl.DataFrame)]
)
def test_output_overrides_the_entity_frame_type(store: FeatureStore, output: str, expected: type) -> None:
    assert type(store.get_training_set(ENTITY.to_pandas(), ["stats:rate"], output=output)) is expected
    with pytest.raises(TrainingSetError, match="output='excel'"):
        store.get_training_set(ENTITY, ["stats:rate"], output="excel")


def test_saved_training_set_from_a_csv_path_records_that_file(store: FeatureStore, tmp_path: Path) -> None:
    entity = tmp_path / "entities.csv"
    ENTITY.write_csv(entity)
    out = tmp_path / "train.parquet"
    df = store.get_training_set(entity, ["stats:rate"], out=out)
    manifest = json.loads((tmp_path / "train.parquet.manifest.json").read_text())
    assert manifest["entities"]["path"] == str(entity.resolve())
    assert_frame_equal(store.rebuild_training_set(tmp_path / "train.parquet.manifest.json"), df)
    entity.write_text(entity.read_text().replace("2024-01-05", "2024-01-06"))
    with pytest.raises(TrainingSetError, match="changed"):
        store.rebuild_training_set(tmp_path / "train.parquet.manifest.json")


def test_service_name_reference(store: FeatureStore) -> None:
    by_service = store.get_training_set(ENTITY, "model")
    by_refs = store.get_training_set(ENTITY, ["stats:rate", "other:score"])
    assert by_service.columns == ["driver_id", "event_timestamp", "label", "rate", "score"]
    assert_frame_equal(by_service, by_refs)
    assert by_service["score"].to_list() == [20.0, 10.0, 10.0, 20.0, 10.0]


def test_view_star_reference(store: FeatureStore) -> None:
    df = store.get_training_set(ENTITY, ["stats:*"])
    assert_frame_equal(df, EXPECTED)


@pytest.mark.parametrize(
    ("features", "named"),
    [
        (["nope:rate"], "'nope'"),
        (["stats:nope"], "'nope'"),
        (["stats:rate", "other:trips"], "'trips'"),
        ("no_such_service", "'no_such_service'"),
    ],
)
def test_unknown_view_feature_or_service(store: FeatureStore, features, named: str) -> None:
    with pytest.raises(RegistryError) as info:
        store.get_training_set(ENTITY, features)
    assert named in str(info.value)


def test_name_clash_without_full_feature_names(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(TrainingSetError) as info:
        store.get_training_set(ENTITY, ["stats:rate", "other:rate"], out=tmp_path / "x.parquet")
    msg = str(info.value)
    assert "stats:rate" in msg and "other:rate" in msg and "full_feature_names" in msg
    assert not (tmp_path / "x.parquet").exists()
    df = store.get_training_set(ENTITY, ["stats:rate", "other:rate"], full_feature_names=True)
    assert df["stats__rate"].to_list() == EXPECTED["rate"].to_list()
    assert df["other__rate"].to_list() == [9.2, 9.1, 9.1, 9.2, 9.1]


def test_feature_named_like_an_entity_column(store: FeatureStore) -> None:
    with pytest.raises(TrainingSetError, match="already a column"):
        store.get_training_set(ENTITY.rename({"label": "rate"}), ["stats:rate"])


def test_entity_frame_without_join_key_or_timestamp(store: FeatureStore, tmp_path: Path) -> None:
    with pytest.raises(TrainingSetError, match="driver_id"):
        store.get_training_set(ENTITY.drop("driver_id"), ["stats:rate"])
    with pytest.raises(TrainingSetError, match="event_timestamp"):
        store.get_training_set(ENTITY.drop("event_timestamp"), ["stats:rate"])
    with pytest.raises(TrainingSetError, match="does not exist"):
        store.get_training_set(tmp_path / "missing.parquet", ["stats:rate"])


def test_custom_timestamp_column(store: FeatureStore) -> None:
    entity = ENTITY.rename({"event_timestamp": "asof"})
    df = store.get_training_set(entity, ["stats:rate"], timestamp_column="asof")
    assert df["rate"].to_list() == EXPECTED["rate"].to_list()
    assert df.columns == ["driver_id", "asof", "label", "rate"]


def test_view_without_offline_data(store: FeatureStore) -> None:
    import shutil

    shutil.rmtree(store.settings.offline_root / "other")
    with pytest.raises(TrainingSetError, match="featurestore ingest other"):
        store.get_training_set(ENTITY, ["other:score"])


def test_ttl_bounds_are_inclusive(store: FeatureStore) -> None:
    # driver 2 has a row at Jan 1 12:00 and the next at Jan 3; stats has a ttl of one day.
    edge = t(2, 12)
    entity = pl.DataFrame(
        {"driver_id": [2, 2, 2], "event_timestamp": [edge, edge + timedelta(microseconds=1), t(1, 12)]}
    )
    df = store.get_training_set(entity, ["stats:rate"])
    assert df["rate"].to_list() == [0.3, None, 0.3]


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_ties_on_event_time_resolved_by_created_then_read_order(make_repo: Any) -> None:
    """Through ingest: same (key, event time) -> greatest created wins, then the last row read."""
    repo = make_repo(
        {
            "views.py": """
            from featurestore import Entity, Feature, FeatureView, Int64, ParquetSource
            d = Entity("d", join_keys=["driver_id"])
            v = FeatureView("v", [d], ParquetSource("src.parquet", timestamp="ts", created="created"),
                            [Feature("x", Int64)])
            """
        }
    )
    c0, c1 = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    pl.DataFrame(
        {
            "driver_id": [1, 1, 1, 2, 2],
            "ts": [T0, T0, T0, T0, T0],
            "created": [c1, c0, c1, c0, c0],
            "x": [10, 20, 30, 40, 50],
        }
    ).write_parquet(repo / "src.parquet")
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    out = store.get_training_set(pl.DataFrame({"driver_id": [1, 2], "event_timestamp": [T0, T0]}), ["v:x"])
    assert out["x"].to_list() == [30, 50]


ZIPS = """
from featurestore import Entity, Feature, FeatureView, Float64, String, ParquetSource
shop = Entity("shop", join_keys={"zip": String})
zips = FeatureView("zips", entities=[shop], source=ParquetSource("zips.parquet"), features=[Feature("rate", Float64)])
"""


def test_a_csv_entity_file_keeps_string_keys_as_written(make_repo: Any, tmp_path: Path) -> None:
    """A String key read from CSV stays text (``02134`` was read as the integer 2134 and joined nothing)."""
    repo = make_repo({"views.py": ZIPS})
    pl.DataFrame({"zip": ["02134", "10001"], "event_timestamp": [t(1), t(1)], "rate": [1.0, 2.0]}).write_parquet(
        repo / "zips.parquet"
    )
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    csv = tmp_path / "shops.csv"
    csv.write_text("zip,event_timestamp\n02134,2024-01-02T00:00:00Z\n10001,2024-01-02T00:00:00Z\n")
    resolved = resolve_features(store.state(), ["zips:rate"])
    entity = load_entity_frame(csv, "event_timestamp", [spec for spec, _ in resolved])
    assert entity.schema["zip"] == pl.String and entity["zip"].to_list() == ["02134", "10001"]
    out = tmp_path / "train.parquet"
    save_training_set(
        store.engine, store.layout, entity, resolved, out, entity_source=csv, references=["zips:rate"],
        timestamp_column="event_timestamp", full_feature_names=False,
    )  # fmt: skip
    # The rebuild reads the same CSV file back with the views' key dtypes.
    rebuilt = store.rebuild_training_set(tmp_path / "train.parquet.manifest.json")
    assert rebuilt.select("zip", "rate").to_dicts() == [{"zip": "02134", "rate": 1.0}, {"zip": "10001", "rate": 2.0}]
    assert_frame_equal(rebuilt, pl.read_parquet(out))
    # The SDK (and so the CLI) reads it the same way.
    direct = store.get_training_set(csv, ["zips:rate"])
    assert direct.select("zip", "rate").to_dicts() == [{"zip": "02134", "rate": 1.0}, {"zip": "10001", "rate": 2.0}]
