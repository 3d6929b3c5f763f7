"""Benchmark: materialize W1 (1M offline rows -> 100,000 latest rows x 20 features) into Redis and SQLite.

Run: python -m benchmarks.materialize [--quick] [--reps N] [--store redis|sqlite|both]
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

from benchmarks._util import median, workdir
from benchmarks.w1 import make_w1

__all__ = ["prepare", "redis_server", "main"]


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


def _run(root: Path, reps: int) -> list[float]:
    from featurestore import FeatureStore

    times = []
    for _ in range(reps):
        store = FeatureStore(root)
        online = store.online_store()
        with contextlib.suppress(Exception):
            online.delete("driver_stats")
        t0 = time.perf_counter()
        (result,) = store.materialize(["driver_stats"])
        times.append(time.perf_counter() - t0)
        print(
            f"  {result.rows_read:,} offline rows -> {result.rows_written:,} online rows in {times[-1]:.2f} s "
            f"({result.rows_written / times[-1]:,.0f} rows/s)"
        )
        online.close()
    return times


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
            print(f"materialize W1 x{scale:g} into Redis ({url}):")
            best = median(_run(root, args.reps))
            print(f"redis: median {best:.2f} s (target < 2.5 s on full W1; Feast 0.67: 15.2 s)")
    if args.store in ("sqlite", "both"):
        root = prepare(scale, "sqlite:///data/online.db")
        print(f"materialize W1 x{scale:g} into SQLite:")
        print(f"sqlite: median {median(_run(root, args.reps)):.2f} s")


if __name__ == "__main__":
    main()
