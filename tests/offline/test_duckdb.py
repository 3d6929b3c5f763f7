"""The DuckDB engine beyond the contract (spilling, its settings) and choosing an engine by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore import FeatureStore
from featurestore.config import load_settings
from featurestore.errors import ConfigError, TrainingSetError
from featurestore.offline.base import ENGINES, engine_class, engine_from_settings
from featurestore.offline.duckdb import DuckDBEngine
from featurestore.offline.duckdb_spill import PitPlan, choose_plan, join_bytes, memory_limit_bytes, threads_for


def test_the_default_engine_is_duckdb_configured_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, env={"FEATURESTORE_DUCKDB_MEMORY_LIMIT": "300MB"})
    assert settings.engine == "duckdb"
    with engine_from_settings(settings) as engine:
        assert isinstance(engine, DuckDBEngine)
        assert engine.repo == tmp_path.resolve()
        ((limit,),) = engine.con.execute("SELECT current_setting('memory_limit')").fetchall()
        assert limit.replace(" ", "").upper().startswith(("286", "300"))  # DuckDB shows MiB
    assert engine._db is None  # closed


def test_threads_get_their_own_connection_to_one_database(tmp_path: Path) -> None:
    import threading

    with DuckDBEngine(tmp_path, memory_limit="300MB") as engine:
        engine.con.execute("CREATE TABLE shared AS SELECT 42 AS x")
        seen: list[object] = []

        def query() -> None:
            con = engine.con
            rows = con.execute("SELECT x, current_setting('TimeZone') FROM shared").fetchall()
            seen.append((con is engine.con, rows, con))

        threads = [threading.Thread(target=query) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [s[:2] for s in seen] == [(True, [(42, "UTC")])] * 3
        assert len({id(s[2]) for s in seen} | {id(engine.con)}) == 4


def test_engine_names_are_case_insensitive_and_an_unknown_one_lists_the_known(tmp_path: Path) -> None:
    assert engine_class("DuckDB") is DuckDBEngine
    with pytest.raises(ConfigError, match="unknown offline engine 'postgres'; use one of duckdb, spark"):
        engine_from_settings(load_settings(tmp_path, env={"FEATURESTORE_ENGINE": "postgres"}))


def test_an_engine_whose_module_is_missing_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENGINES, "nowhere", "featurestore.offline.nowhere:NoEngine")
    with pytest.raises(ConfigError, match="offline engine 'nowhere' is not available"):
        engine_class("nowhere")


def test_spark_settings_are_read_from_the_toml_and_the_environment(tmp_path: Path) -> None:
    (tmp_path / "featurestore.toml").write_text(
        'engine = "spark"\nspark_master = "spark://head:7077"\n[spark_conf]\n"spark.executor.memory" = "2g"\n'
        '"spark.sql.shuffle.partitions" = 8\n'
    )
    settings = load_settings(tmp_path, env={})
    assert (settings.engine, settings.spark_master) == ("spark", "spark://head:7077")
    assert settings.spark_conf == {"spark.executor.memory": "2g", "spark.sql.shuffle.partitions": "8"}
    env = {"FEATURESTORE_SPARK_CONF": '{"spark.driver.memory": "1g"}'}
    assert load_settings(tmp_path, env=env).spark_conf == {"spark.driver.memory": "1g"}
    with pytest.raises(ConfigError, match="spark_conf"):
        load_settings(tmp_path, env={"FEATURESTORE_SPARK_CONF": "driver=1g"})


def test_spills_to_disk_when_the_join_exceeds_the_memory_limit(tmp_path: Path) -> None:
    """W1 at a fifth of its size (~70 MB of join input and output) under a 60 MB DuckDB limit."""
    from benchmarks.w1 import FEATURES, entity_frame, make_w1
    from featurestore import FeatureStore
    from featurestore.config import load_settings

    root = make_w1(tmp_path / "w1", 0.2)
    entity = entity_frame(0.2)
    refs = [f"driver_stats:{f}" for f in FEATURES]
    roomy = FeatureStore(root).get_training_set(entity, refs)
    tight = load_settings(root, env={"FEATURESTORE_DUCKDB_MEMORY_LIMIT": "60MB"})
    assert FeatureStore(settings=tight).get_training_set(entity, refs).equals(roomy)
    tiny = load_settings(root, env={"FEATURESTORE_DUCKDB_MEMORY_LIMIT": "4MB"})
    with pytest.raises(TrainingSetError, match="duckdb_memory_limit"):
        FeatureStore(settings=tiny).get_training_set(entity, refs)


def test_a_join_at_a_tenth_of_the_data_finishes_by_position_and_equals_the_roomy_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """W1 at 0.3 (300,000 feature rows x 20 features, ~53 MB in memory; 300,000 entity rows) under 16 MB.

    The wide ASOF JOIN cannot run there; the engine joins row positions (spilling what does not
    fit to the temp dir) and gathers the features file by file, with the same result.
    """
    from benchmarks.w1 import FEATURES, entity_frame, make_w1
    from featurestore.offline.layout import OfflineLayout
    from featurestore.offline.pit import ViewRequest
    from featurestore.registry import Registry

    root = make_w1(tmp_path / "w1", 0.3)
    entity = entity_frame(0.3)
    store = FeatureStore(root)
    roomy = store.get_training_set(entity, [f"driver_stats:{f}" for f in FEATURES])
    store.close()
    spec = Registry(root / "data" / "registry.json").load().view("driver_stats")
    files = OfflineLayout(root / "data" / "offline").files("driver_stats", spec.version)
    requests = [ViewRequest(spec, tuple(FEATURES), tuple(files))]
    assert roomy.height == 300_000 and 0 < roomy["f00"].null_count() < 300_000
    spill = tmp_path / "spill"
    with DuckDBEngine(root, memory_limit="16MB", temp_dir=spill) as engine:
        assert join_bytes(entity.height, 3, requests) > memory_limit_bytes("16MB")  # type: ignore[operator]
        assert choose_plan(PitPlan.AUTO, "16MB", lambda: join_bytes(entity.height, 3, requests)) is PitPlan.BY_POSITION
        ((threads,),) = engine.con.execute("SELECT current_setting('threads')").fetchall()
        assert threads == 1  # 16 MB leaves room for one thread's buffers
        assert engine.point_in_time_join(entity, requests).equals(roomy)
    with DuckDBEngine(root, memory_limit="16MB", temp_dir=spill, pit_plan=PitPlan.WIDE) as engine:
        with pytest.raises(TrainingSetError, match=r"\(wide plan\) ran out of memory.*duckdb_memory_limit"):
            engine.point_in_time_join(entity, requests)
    # Input sizes unknown (as on object storage): the wide join is tried, runs out, and the
    # same connection then finishes by position.
    monkeypatch.setattr("featurestore.offline.duckdb.join_bytes", lambda *args: None)
    with DuckDBEngine(root, memory_limit="16MB", temp_dir=spill) as engine:
        assert engine.point_in_time_join(entity, requests).equals(roomy)


def test_memory_limits_are_read_as_sizes_and_small_ones_limit_the_threads() -> None:
    assert memory_limit_bytes("4GB") == 4 * 10**9
    assert memory_limit_bytes("300 MiB") == 300 * 2**20
    assert memory_limit_bytes("1.5gb") == 1_500_000_000
    assert memory_limit_bytes("80%") is None and memory_limit_bytes("lots") is None
    assert threads_for("16MB") == 1
    assert threads_for("4GB") is None and threads_for("80%") is None  # DuckDB's default: every core
    assert choose_plan(PitPlan.AUTO, "80%", lambda: 10**12) is PitPlan.WIDE  # no size to compare with
    assert choose_plan(PitPlan.AUTO, "1GB", lambda: None) is PitPlan.WIDE  # unknown input size (object storage)
    assert choose_plan(PitPlan.WIDE, "1MB", lambda: 10**12) is PitPlan.WIDE


def test_a_feature_store_opens_one_engine_and_close_releases_it(tmp_path: Path) -> None:
    from featurestore import FeatureStore

    store = FeatureStore(tmp_path)
    engine = store.engine
    assert isinstance(engine, DuckDBEngine) and store.engine is engine
    engine.con.execute("SELECT 1").fetchall()
    store.close()
    assert engine._db is None
    assert store.engine is not engine  # reopened on next use
    store.close()


def test_the_by_position_plan_equals_the_wide_one_for_text_null_and_unmatched_values(tmp_path: Path) -> None:
    """Integer and float features without nulls are scattered as arrays; text and nulls take the general path."""
    from datetime import UTC, datetime, timedelta

    import polars as pl

    from featurestore.offline.pit import ViewRequest
    from featurestore.registry.spec import ViewSpec

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = {"driver_id": [1, 1, 2, 3], "event_timestamp": [t0, t0 + timedelta(hours=1), t0, t0]}
    files = []
    for i, extra in enumerate(
        [
            {"n": [1, 2, 3, 4], "x": [0.5, 1.5, 2.5, 3.5], "s": ["a", "b", None, "d"], "z": [1.0, None, 2.0, 3.0]},
            {"n": [5, 6, 7, 8], "x": [4.5, 5.5, 6.5, 7.5], "s": ["e", "f", "g", "h"], "z": [4.0, 5.0, 6.0, 7.0]},
        ]
    ):
        shifted = [t + timedelta(days=i) for t in rows["event_timestamp"]]
        df = pl.DataFrame({**rows, "event_timestamp": shifted, **extra})
        df = df.with_columns(pl.col("event_timestamp").cast(pl.Datetime("us", "UTC")))
        files.append(tmp_path / f"part-{i}.parquet")
        df.write_parquet(files[-1])
    spec = ViewSpec(
        {
            "name": "drivers",
            "version": "v1",
            "join_keys": {"driver_id": "Int64"},
            "features": [{"name": f, "dtype": t} for f, t in {"n": "Int64", "x": "Float64", "s": "String"}.items()]
            + [{"name": "z", "dtype": "Float64"}],
            "ttl_seconds": 3 * 3600,
        }
    )
    times = [t0 + timedelta(minutes=m) for m in (30, 90, 60 * 24 + 5, 60 * 24 + 5, 60 * 30, 10)]
    entity = pl.DataFrame({"driver_id": [1, 1, 2, 3, 1, 9], "event_timestamp": times})
    for features in (("n", "x"), ("n", "s"), ("z",), ("n", "x", "s", "z")):
        request = [ViewRequest(spec, features, tuple(files))]
        with (
            DuckDBEngine(tmp_path, pit_plan=PitPlan.WIDE) as wide,
            DuckDBEngine(tmp_path, pit_plan=PitPlan.BY_POSITION) as by_position,
        ):
            expected = wide.point_in_time_join(entity, request)
            assert by_position.point_in_time_join(entity, request).equals(expected), features
            assert expected[features[0]].null_count() >= 2  # the unknown driver and the one past ttl
