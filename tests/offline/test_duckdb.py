"""The DuckDB engine beyond the contract (spilling, its settings) and choosing an engine by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurestore.config import load_settings
from featurestore.errors import ConfigError, TrainingSetError
from featurestore.offline.base import ENGINES, engine_class, engine_from_settings
from featurestore.offline.duckdb import DuckDBEngine


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
