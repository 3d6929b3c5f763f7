"""Workload W1x10 (1,000,000 drivers x 10 rows x 20 features, a 10,000,000-row entity frame): engines side by side.

Run: python -m benchmarks.w1x10 [--scale 0.1] [--engines duckdb,spark]
In one run, each in a fresh process: the DuckDB engine with duckdb_memory_limit at a tenth of
the feature data's in-memory size (it must spill to finish; the limit doubles after each
out-of-memory, and the limits that failed are printed), the Spark engine on local[2], and the
bare DuckDB ASOF JOIN over the same files (the floor). Peak memory is the RSS of the
process tree (Spark's JVM included), sampled; Spark's values are checked equal to DuckDB's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks._util import ROOT, machine, timed, workdir
from benchmarks.w1 import FEATURES, make_w1

__all__ = ["prepare", "measure", "main", "tree_rss_mb"]

SPARK_CONF = {
    "spark.sql.shuffle.partitions": "16",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "4g",
}


def prepare(scale: float) -> Path:
    """W1 at ten times its size (times ``scale``), generated and ingested once, reused."""
    root = workdir(f"w1x10-{scale:g}")
    if not (root / "data" / "registry.json").is_file():
        make_w1(root, 10 * scale)
    return root


def _files(root: Path) -> list[Path]:
    from featurestore.offline.layout import OfflineLayout
    from featurestore.registry import Registry

    spec = Registry(root / "data" / "registry.json").load().view("driver_stats")
    return OfflineLayout(root / "data" / "offline").files("driver_stats", spec.version)


def data_mb(root: Path) -> float:
    """The feature rows' in-memory size: rows x (key, time, 20 features) x 8 bytes."""
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in _files(root))
    return rows * (2 + len(FEATURES)) * 8 / 1e6


def tree_rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and all its descendants (Linux /proc), in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/statm") as fh:
                total += int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e6


def _run_sampled(args: list[str]) -> dict[str, Any]:
    """Run a child measurement, sampling its process tree's RSS; its JSON line plus ``peak_mb``."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.w1x10", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT.parent)},
    )
    peak = [0.0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss_mb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"w1x10 {args} failed:\n{err[-3000:]}")
    result = dict(json.loads(out.strip().splitlines()[-1]))
    result["peak_mb"] = peak[0]
    return result


def _engine_child(engine: str, root: Path, limit_mb: int, out: Path) -> dict[str, Any]:
    import polars as pl

    from featurestore import FeatureStore
    from featurestore.config import load_settings

    env = {"FEATURESTORE_ENGINE": engine, "FEATURESTORE_DUCKDB_MEMORY_LIMIT": f"{limit_mb}MB"}
    if engine == "spark":
        from featurestore.offline.spark import spark_session

        spark_session("local[2]", SPARK_CONF).sparkContext.setLogLevel("ERROR")
    store = FeatureStore(settings=load_settings(root, env=env))
    entity = pl.read_parquet(root / "data" / "entities.parquet")
    refs = [f"driver_stats:{f}" for f in FEATURES]
    if engine == "spark":
        # The executors write the set (a folder of part files in input order); nothing passes through
        # the driver, which is how a set larger than the driver's memory is made. The time includes that write.
        seconds, _ = timed(lambda: store.get_training_set(entity, refs, out=out, output="none"))
        df = pl.read_parquet(out)
    else:
        seconds, df = timed(lambda: store.get_training_set(entity, refs))
        df.write_parquet(out)
    return {"seconds": seconds, "rows": df.height, "non_null": int(df["f00"].is_not_null().sum())}


def _floor_child(root: Path) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    file_list = "[" + ", ".join(f"'{p}'" for p in _files(root)) + "]"
    feats = ", ".join(f"f.{f}" for f in FEATURES)
    sql = (
        f"SELECT e.driver_id, e.event_timestamp, {feats} "
        f"FROM read_parquet('{root}/data/entities.parquet') e "
        f"ASOF LEFT JOIN read_parquet({file_list}) f "
        "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp"
    )
    seconds, table = timed(lambda: con.sql(sql).arrow().read_all())
    return {"seconds": seconds, "rows": table.num_rows}


def measure(scale: float = 1.0, engines: tuple[str, ...] = ("duckdb", "spark")) -> dict[str, Any]:
    """One run of each: time, rows/s, peak memory of the process tree; Spark's values checked against DuckDB's."""
    import polars as pl

    root = prepare(scale)
    size = data_mb(root)
    limit = max(int(size / 10), 16)
    work = workdir(f"w1x10-{scale:g}-out")
    result: dict[str, Any] = {"scale": scale, "machine": machine(), "data_mb": round(size), "duckdb_limit_mb": limit}
    # A tenth of the data first; when the DuckDB engine runs out of memory even spilling, the
    # limit doubles until it finishes, and the limits that failed are reported.
    result["duckdb_failed_limits_mb"] = []
    for engine in engines:
        out = work / f"{engine}.parquet"
        while True:
            try:
                args = ["--child", engine, "--root", str(root), "--limit", str(limit), "--out", str(out)]
                result[engine] = _run_sampled(args)
                break
            except RuntimeError as exc:
                if engine != "duckdb" or "ran out of memory" not in str(exc) or limit > 64 * size:
                    raise
                result["duckdb_failed_limits_mb"].append(limit)
                limit *= 2
    result["duckdb_limit_mb"] = limit
    result["floor"] = _run_sampled(["--child", "floor", "--root", str(root)])
    for which in (*engines, "floor"):
        r = result[which]
        r["rows_per_s"] = r["rows"] / r["seconds"]
        if which != "floor":
            result[f"{which}_ratio_to_floor"] = r["seconds"] / result["floor"]["seconds"]
    if "duckdb" in engines and "spark" in engines:
        duck, spark = pl.read_parquet(work / "duckdb.parquet"), pl.read_parquet(work / "spark.parquet")
        result["spark_equals_duckdb"] = duck.equals(spark)
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--scale", type=float, default=1.0, help="a fraction of W1x10 (0.1: 1 M rows, 1 M entity rows)")
    p.add_argument("--engines", default="duckdb,spark", help="which engines to measure beside the floor")
    p.add_argument("--child", choices=["duckdb", "spark", "floor"])
    p.add_argument("--root", type=Path)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.child:
        if args.child == "floor":
            out = _floor_child(args.root)
        else:
            out = _engine_child(args.child, args.root, args.limit, args.out)
        print(json.dumps(out))
        return
    engines = tuple(e for e in ("duckdb", "spark") if e in args.engines.split(","))
    r = measure(args.scale, engines)
    m = r["machine"]
    print(
        f"W1x10 training set at scale {r['scale']:g} ({m['cores']} cores, {m['memory_gb']} GB; feature data "
        f"{r['data_mb']} MB in memory, DuckDB limit {r['duckdb_limit_mb']} MB):"
    )
    print("| system | seconds | rows/s | peak MB (process tree) | rows |\n|---|---|---|---|---|")
    for label, key in (
        (f"DuckDB engine, memory limit {r['duckdb_limit_mb']} MB", "duckdb"),
        ("Spark engine, local[2]", "spark"),
        ("bare DuckDB ASOF JOIN (floor)", "floor"),
    ):
        if key in r:
            x = r[key]
            print(f"| {label} | {x['seconds']:.2f} | {x['rows_per_s']:,.0f} | {x['peak_mb']:,.0f} | {x['rows']:,} |")
    for engine in engines:
        print(f"{engine}: {r[f'{engine}_ratio_to_floor']:.2f}x the floor")
    if "spark_equals_duckdb" in r:
        print(f"Spark's values equal DuckDB's: {r['spark_equals_duckdb']}")
    if r["duckdb_failed_limits_mb"]:
        print(f"DuckDB engine ran out of memory at limits (MB): {r['duckdb_failed_limits_mb']}")
    (workdir("results") / f"w1x10-{r['scale']:g}.json").write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
