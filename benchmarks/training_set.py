"""Benchmark: get_training_set on W1 against a bare DuckDB ASOF JOIN over the same files (the floor).

Run: python -m benchmarks.training_set [--quick] [--reps N]
Each measurement runs in a fresh process so peak memory is its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks._util import median, peak_rss_mb, run_child, timed, workdir
from benchmarks.w1 import FEATURES, make_w1

__all__ = ["prepare", "measure", "main"]


def prepare(scale: float) -> Path:
    """The W1 repository at ``scale``, generated once and reused."""
    root = workdir(f"w1-{scale:g}")
    if not (root / "data" / "registry.json").is_file():
        make_w1(root, scale)
    return root


def _featurestore(root: Path) -> dict[str, Any]:
    import polars as pl

    from featurestore import FeatureStore

    store = FeatureStore(root)
    entity = pl.read_parquet(root / "data" / "entities.parquet")
    refs = [f"driver_stats:{f}" for f in FEATURES]
    seconds, df = timed(lambda: store.get_training_set(entity, refs))
    return {"seconds": seconds, "rows": df.height, "non_null": int(df["f00"].is_not_null().sum())}


def _floor(root: Path) -> dict[str, Any]:
    import duckdb

    from featurestore.offline.layout import OfflineLayout
    from featurestore.registry import Registry

    spec = Registry(root / "data" / "registry.json").load().view("driver_stats")
    files = OfflineLayout(root / "data" / "offline").files("driver_stats", spec.version)
    con = duckdb.connect()
    con.execute("SET TimeZone='UTC'")
    file_list = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    feats = ", ".join(f"f.{f}" for f in FEATURES)
    sql = (
        f"SELECT e.driver_id, e.event_timestamp, {feats} "
        f"FROM read_parquet('{root}/data/entities.parquet') e "
        f"ASOF LEFT JOIN read_parquet({file_list}) f "
        "ON e.driver_id = f.driver_id AND e.event_timestamp >= f.event_timestamp"
    )
    seconds, table = timed(lambda: con.sql(sql).arrow().read_all())
    return {"seconds": seconds, "rows": table.num_rows}


def _child(which: str, root: Path) -> None:
    out = _featurestore(root) if which == "featurestore" else _floor(root)
    out["peak_mb"] = peak_rss_mb()
    print(json.dumps(out))


def measure(scale: float = 1.0, reps: int = 3) -> dict[str, Any]:
    """Median wall time, rows/s and peak memory for featurestore and the floor."""
    root = prepare(scale)
    runs: dict[str, list[dict[str, Any]]] = {"featurestore": [], "floor": []}
    for _ in range(reps):
        for which in runs:  # interleaved so machine noise hits both alike
            runs[which].append(run_child("benchmarks.training_set", "--child", which, "--root", str(root)))
    result: dict[str, Any] = {"scale": scale, "reps": reps}
    for which, rs in runs.items():
        secs = median([r["seconds"] for r in rs])
        result[which] = {
            "seconds": secs,
            "rows": rs[0]["rows"],
            "rows_per_s": rs[0]["rows"] / secs,
            "peak_mb": max(r["peak_mb"] for r in rs),
        }
    result["featurestore"]["rows_with_features"] = runs["featurestore"][0]["non_null"]
    result["ratio_to_floor"] = result["featurestore"]["seconds"] / result["floor"]["seconds"]
    return result


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="about a tenth of W1")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--child", choices=["featurestore", "floor"])
    p.add_argument("--root", type=Path)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.root)
        return
    r = measure(0.1 if args.quick else 1.0, args.reps)
    fs, fl = r["featurestore"], r["floor"]
    print(f"W1 training set (scale {r['scale']}, median of {r['reps']}):")
    print("| system | seconds | rows/s | peak MB | rows |\n|---|---|---|---|---|")
    for label, m in (("featurestore", fs), ("DuckDB ASOF floor", fl)):
        print(f"| {label} | {m['seconds']:.3f} | {m['rows_per_s']:,.0f} | {m['peak_mb']:.0f} | {m['rows']:,} |")
    print(f"ratio to floor: {r['ratio_to_floor']:.2f}x")
    (workdir("results") / "training_set.json").write_text(json.dumps(r, indent=2))


if __name__ == "__main__":
    main()
