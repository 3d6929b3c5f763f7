"""Benchmark: materialize W1 (1M offline rows -> 100,000 latest rows x 20 features) into Redis and SQLite.

Run: python -m benchmarks.materialize [--quick] [--reps N] [--store redis|sqlite|both]
Into Redis it alternates with the floor (DuckDB latest rows + polars JSON + pipelined MSET) and
prints the ratio of the medians, and the CPU Redis spent per run (INFO cpu: unlike wall time, it
hardly moves when other work loads the machine).
W1's rows are dated January 2026 with a 7-day ttl; so that they are not all expired at write
time, the benchmark repository declares a 3650-day ttl (rows still get a PXAT expiry).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._util import median, workdir
from benchmarks.w1 import FEATURES, make_w1

__all__ = ["prepare", "redis_server", "featurestore_once", "floor_once", "main"]


def prepare(scale: float, online: str) -> Path:
    """A W1 repository at ``scale`` (ttl 3650 days) serving from ``online``, applied and ingested."""
    root = workdir(f"w1-online-{scale:g}")
    defs = root / "definitions" / "w1.py"
    if not (root / "data" / "registry.json").is_file():
        make_w1(root, scale, ingest=False)
        defs.write_text(defs.read_text().replace("timedelta(days=7)", "timedelta(days=3650)"))
        from featurestore import FeatureStore

        store = FeatureStore(root)
        store.apply(allow_breaking=True)
        store.ingest()
    # Lookups are measured without API keys (auth costs one SHA-256 per request; see the README).
    (root / "featurestore.toml").write_text(f'project = "w1"\nonline = "{online}"\nauth = "off"\n')
    return root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A throwaway redis-server on 127.0.0.1 (no persistence); yields its URL and stops it."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise SystemExit("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def redis_cpu(url: str) -> float:
    """CPU seconds (user + sys) the Redis server at ``url`` has used: its work, whatever else runs on the machine."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def featurestore_once(root: Path) -> dict[str, Any]:
    """One full materialization of W1 (the view's online rows deleted first, as on a first run)."""
    from featurestore import FeatureStore

    store = FeatureStore(root)
    online = store.online_store()
    with contextlib.suppress(Exception):
        online.delete("driver_stats")
    url = store.settings.online_url
    cpu0 = redis_cpu(url) if url.startswith("redis://") else 0.0
    t0 = time.perf_counter()
    (result,) = store.materialize(["driver_stats"])
    seconds = time.perf_counter() - t0
    cpu = redis_cpu(url) - cpu0 if url.startswith("redis://") else 0.0
    online.close()
    return {"seconds": seconds, "rows": result.rows_written, "version": result.version, "redis_cpu": cpu}


def floor_once(root: Path, version: str, url: str) -> dict[str, Any]:
    """The floor: one DuckDB latest-row-per-driver query, rows JSON-encoded by polars, pipelined MSETs.

    No gate, no expiry, no newest-wins comparison: the least work that puts the same rows in Redis.
    """
    import duckdb
    import polars as pl
    import redis

    from featurestore.offline.layout import OfflineLayout

    files = OfflineLayout(root / "data" / "offline").files("driver_stats", version)
    client = redis.Redis.from_url(url.rsplit("/", 1)[0] + "/2")  # its own db: flushing it spares the others
    client.flushdb()
    paths = "[" + ", ".join(f"'{p}'" for p in files) + "]"
    cpu0 = redis_cpu(url)
    t0 = time.perf_counter()
    df = (
        duckdb.connect()
        .sql(
            f"SELECT driver_id, {', '.join(FEATURES)} FROM read_parquet({paths}) "
            "QUALIFY row_number() OVER (PARTITION BY driver_id ORDER BY event_timestamp DESC) = 1"
        )
        .pl()
    )
    keys = ("floor:" + df["driver_id"].cast(pl.String)).to_list()
    rows = df.select(pl.struct(FEATURES).struct.json_encode())[:, 0].to_list()
    pipe = client.pipeline(transaction=False)
    for i in range(0, len(keys), 10_000):
        pipe.mset(dict(zip(keys[i : i + 10_000], rows[i : i + 10_000], strict=True)))
    pipe.execute()
    seconds = time.perf_counter() - t0
    cpu = redis_cpu(url) - cpu0
    written = int(client.dbsize())
    client.flushdb()
    client.close()
    return {"seconds": seconds, "rows": written, "redis_cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1/10 of W1")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--store", choices=["redis", "sqlite", "both"], default="both")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    if args.store in ("redis", "both"):
        with redis_server() as url:
            root = prepare(scale, url)
            print(f"materialize W1 x{scale:g} into Redis, alternating with the floor ({args.reps} rounds):")
            ours, floor = [], []
            for _ in range(args.reps):
                ours.append(featurestore_once(root))
                floor.append(floor_once(root, ours[-1]["version"], url))
                print(
                    f"  featurestore {ours[-1]['seconds']:.2f} s ({ours[-1]['rows']:,} rows, Redis CPU "
                    f"{ours[-1]['redis_cpu']:.2f} s), floor {floor[-1]['seconds']:.2f} s (Redis CPU "
                    f"{floor[-1]['redis_cpu']:.2f} s)"
                )
            a, b = median([r["seconds"] for r in ours]), median([r["seconds"] for r in floor])
            print(f"redis: featurestore median {a:.2f} s, floor {b:.2f} s: {a / b:.2f}x the floor (target <= 1.5x)")
            a, b = median([r["redis_cpu"] for r in ours]), median([r["redis_cpu"] for r in floor])
            print(f"redis: Redis CPU per run, featurestore median {a:.2f} s, floor {b:.2f} s: {a / b:.2f}x")
    if args.store in ("sqlite", "both"):
        root = prepare(scale, "sqlite:///data/online.db")
        print(f"materialize W1 x{scale:g} into SQLite:")
        times = [featurestore_once(root)["seconds"] for _ in range(args.reps)]
        print(f"sqlite: median {median(times):.2f} s")


if __name__ == "__main__":
    main()
