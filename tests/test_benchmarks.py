"""The benchmark suite runs in quick mode (featurestore side; Feast needs its own big install) and is correct."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks import __main__ as bench
from benchmarks import training_set
from benchmarks.w1 import FEATURES

HAS_ONLINE_TOOLS = bool(shutil.which("redis-server") and shutil.which("wrk"))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("bench")
    only = "training,materialize,online,gates" if HAS_ONLINE_TOOLS else "training,gates"
    result = bench.main(["--quick", "--reps", "1", "--no-feast", "--only", only, "--out", str(out)])
    return result, out


def _brute_force(entity: pl.DataFrame, rows: pl.DataFrame, ttl: timedelta) -> pl.DataFrame:
    """Reference semantics: the row with the greatest event time in [ts - ttl, ts], per entity row."""
    cand = entity.join(rows, on="driver_id", how="left", suffix="_f").filter(
        (pl.col("event_timestamp_f") <= pl.col("event_timestamp"))
        & (pl.col("event_timestamp_f") >= pl.col("event_timestamp") - ttl)
    )
    best = cand.sort("event_timestamp_f").group_by("row_id").last().select("row_id", *FEATURES)
    return entity.select("row_id").join(best, on="row_id", how="left", maintain_order="left")


def test_training_set_benchmark_returns_every_entity_row(quick_run: tuple[dict[str, Any], Path]) -> None:
    t = quick_run[0]["training"]
    assert t["entity_rows"] == 100_000
    assert t["featurestore"]["rows"] == t["floor"]["rows"] == 100_000
    assert "feast_file" not in t
    assert t["featurestore"]["peak_mb"] > 0


def test_benchmarked_training_set_equals_brute_force() -> None:
    from featurestore import FeatureStore

    root = training_set.prepare(0.1)  # the repository the benchmark measured
    entity = pl.read_parquet(root / "data" / "entities.parquet").with_row_index("row_id")
    got = FeatureStore(root).get_training_set(entity, [f"driver_stats:{f}" for f in FEATURES])
    source = pl.read_parquet(root / "data" / "driver_stats.parquet")
    want = _brute_force(entity, source.select("driver_id", "event_timestamp", *FEATURES), timedelta(days=7))
    assert got["row_id"].to_list() == entity["row_id"].to_list()
    assert got.select(FEATURES).equals(want.select(FEATURES))
    nulls = got["f00"].null_count()
    assert 0 < nulls < got.height  # the ttl matters on W1: some rows have no value inside it


@pytest.mark.skipif(not HAS_ONLINE_TOOLS, reason="needs redis-server and wrk")
def test_materialize_and_online_benchmark_serve_the_latest_rows(quick_run: tuple[dict[str, Any], Path]) -> None:
    result = quick_run[0]
    assert result["materialize"]["featurestore"]["rows"] == 10_000
    online = result["online"]
    assert online["correctness"]["featurestore_vs_offline"] == {"entities": 100, "values_differing": 0}
    cases = {(r["entities"], r["concurrency"], r["system"]) for r in online["online"]}
    for entities, conns in bench.ONLINE_CASES:
        for system in ("featurestore", "featurestore /rows", "floor"):
            assert (entities, conns, system) in cases
    # wrk's script fails the run on any non-200 or non-PRESENT response; every case sent requests.
    assert all(r["requests_checked"] > 0 for r in online["online"])


def test_results_are_written_and_say_what_was_not_measured(quick_run: tuple[dict[str, Any], Path]) -> None:
    result, out = quick_run
    assert json.loads((out / "latest.json").read_text()) == json.loads(json.dumps(result))
    text = (out / "latest.md").read_text()
    assert text == bench.render(result)
    assert "TODO: not measured" in text  # Feast was skipped, and the table says so
    assert "| featurestore |" in text
    assert result["gates"]["rows"] == 100_000


def test_w2_training_set_equals_its_floor_and_pushes_work(redis_server: Any) -> None:
    """W2 at a tiny size: the 12 window features equal the bare DuckDB RANGE-window query's; the online part runs."""
    from benchmarks import w2

    out = w2.main(["--cards", "20", "--events", "3000", "--rows", "300", "--redis", redis_server.url])
    assert out["columns"] == 12
    assert out["values_differing"] == 0
    assert out["materialized_events"] > 0 and out["push_events_per_s"] > 0


def test_startup_table_gives_the_ratios_to_the_floors() -> None:
    from benchmarks.startup import table

    rows = table({"import": 0.05, "import_floor": 0.1, "ready": 0.9, "ready_floor": 0.6, "reps": 3})
    assert rows[0] == "### Start-up (median of 3, alternating with the floors)"
    assert rows[-2].endswith("| 0.050 | 0.100 | 0.50x |") and rows[-1].endswith("| 0.90 | 0.60 | 1.50x |")


def test_served_log_spool_cost_measures_both_shapes_and_converts_everything() -> None:
    from benchmarks.served_log import spool_cost

    cost = spool_cost(lookups=300)
    assert set(cost) == {1, 100}
    assert all(
        m["spool_cpu_us_disk"] > 0 and m["spool_cpu_us_memory"] > 0 and m["convert_cpu_us"] > 0 for m in cost.values()
    )
    assert all(m["convert_json_cpu_us"] > 0 for m in cost.values())
    # the stored rows, not the response: about 270 bytes per entity row of 20 features
    assert 100 * 0.2 < cost[100]["spooled_kb"] < 100 * 0.4


@pytest.mark.skipif(not HAS_ONLINE_TOOLS, reason="needs redis-server and wrk")
def test_served_log_benchmark_loads_three_servers_at_once_and_converts_what_the_logging_one_spooled() -> None:
    from benchmarks.served_log import measure, table

    result = measure(0.01, 1.0, 1)
    for shape in result["shapes"].values():
        assert shape["rounds"] == 1 and shape["rps_off"] > 0 and shape["rps_logged"] > 0
    assert result["logged_rows"] > 0 and result["spool_files_left"] == 0  # the clean shutdown converted it all
    if result["server_core"] is not None:  # two cores or more: the servers had one to themselves
        assert 0 < result["server_core_busy"] <= 1
    assert any("shared core" in line or "one core" in line for line in table(result))
