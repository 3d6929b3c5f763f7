"""Benchmark: lookup throughput with served-feature logging at 1.0 against logging off (W1 in Redis, wrk).

Run: python -m benchmarks.served_log [--quick] [--duration SECONDS] [--repeat N]
Two one-worker servers over the same Redis, one with FEATURESTORE_LOG_SAMPLE_RATE=1.0; wrk drives
/get-online-features with 1 and 100 random entities x 20 features at concurrency 16, alternating
between the servers; medians of the repeats. Prints the throughput drop and what the log wrote.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics

import polars as pl

from benchmarks.materialize import prepare, redis_server
from benchmarks.online_http import _free_port, _start, _stop, _wrk

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/10 of W1 and 2 s per measurement")
    parser.add_argument("--duration", type=float, default=None, help="seconds per measurement (default 5)")
    parser.add_argument("--repeat", type=int, default=3, help="measurements per server and shape")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed")
    scale = 0.1 if args.quick else 1.0
    seconds = args.duration or (2.0 if args.quick else 5.0)
    ids = int(100_000 * scale)
    with redis_server() as url:
        from featurestore import FeatureStore

        root = prepare(scale, url)
        store = FeatureStore(root)
        store.materialize(["driver_stats"])
        served = store.settings.offline_root / "_served"
        shutil.rmtree(served, ignore_errors=True)
        ports = {"off": _free_port(), "1.0": _free_port()}
        servers = {}
        for rate, port in ports.items():
            os.environ["FEATURESTORE_LOG_SAMPLE_RATE"] = "0" if rate == "off" else rate
            servers[rate] = _start(
                ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)], port
            )
        os.environ.pop("FEATURESTORE_LOG_SAMPLE_RATE", None)
        results: dict[tuple[int, str], list[float]] = {}
        try:
            for entities in (1, 100):
                for _ in range(args.repeat):
                    for rate, port in ports.items():
                        r = _wrk(port, "/get-online-features", "feast", entities, ids, 16, seconds)
                        results.setdefault((entities, rate), []).append(r["rps"])
        finally:
            for proc in servers.values():
                _stop(proc)  # a clean shutdown: the logging server writes what it still holds
    files = list(served.glob("*/date=*/part-*.parquet"))
    rows = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in files)
    print("| entities | concurrency | logging off req/s | logging 1.0 req/s | drop |")
    print("|---|---|---|---|---|")
    for entities in (1, 100):
        off = statistics.median(results[(entities, "off")])
        on = statistics.median(results[(entities, "1.0")])
        print(f"| {entities} | 16 | {off:,.0f} | {on:,.0f} | {100 * (off - on) / off:.1f} % |")
    print(f"\nlogged: {rows:,} entity rows in {len(files)} Parquet files under {served}")


if __name__ == "__main__":
    main()
