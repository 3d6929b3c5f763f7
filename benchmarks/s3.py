"""Benchmark: W1 ingest and training set with the offline store on S3 (a local moto server) vs local disk.

Run: python -m benchmarks.s3 [--quick] [--reps N]
Both repositories hold the same W1 data; every measurement runs in a fresh process (its own
peak memory), the two storages interleaved so machine noise hits both alike. moto is a Python
S3 server on this machine: the figures show the protocol's own cost (listing, uploads, the
commit record, pyarrow's S3 reads), not a network's.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks._util import machine, median, peak_rss_mb, run_child, timed, workdir
from benchmarks.w1 import FEATURES, make_w1

__all__ = ["measure", "main", "moto_server"]

BUCKET = "featurestore-bench"
STORAGES = ("local", "s3")


@contextmanager
def moto_server() -> Iterator[dict[str, str]]:
    """A moto S3 server on a free port with a bucket; yields the AWS variables pointing at it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
    }
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        import boto3

        boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=BUCKET)
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    finally:
        proc.terminate()
        proc.wait(10)


def prepare(scale: float) -> dict[str, Path]:
    """Two W1 repositories (local disk, s3://) with the same source data, applied, not yet ingested."""
    roots = {}
    for storage in STORAGES:
        root = workdir(f"w1-{storage}-{scale:g}")
        make_w1(root, scale, ingest=False)
        if storage == "s3":
            config = root / "featurestore.toml"
            config.write_text(config.read_text() + f'offline_root = "s3://{BUCKET}/w1-{scale:g}/offline"\n')
        roots[storage] = root
    return roots


def _ingest(root: Path) -> dict[str, Any]:
    from featurestore import FeatureStore

    store = FeatureStore(root)
    seconds, results = timed(lambda: store.ingest())
    return {"seconds": seconds, "rows": sum(r.rows_written for r in results)}


def _training(root: Path) -> dict[str, Any]:
    import polars as pl

    from featurestore import FeatureStore

    store = FeatureStore(root)
    entity = pl.read_parquet(root / "data" / "entities.parquet")
    refs = [f"driver_stats:{f}" for f in FEATURES]
    seconds, df = timed(lambda: store.get_training_set(entity, refs))
    out = root / "data" / "training_out.parquet"
    df.write_parquet(out)
    return {"seconds": seconds, "rows": df.height}


def _child(which: str, root: Path) -> None:
    out = _ingest(root) if which == "ingest" else _training(root)
    out["peak_mb"] = peak_rss_mb()
    print(json.dumps(out))


def measure(scale: float = 1.0, reps: int = 3) -> dict[str, Any]:
    """Median seconds, rows/s and peak memory of ingest and training set, per storage."""
    with moto_server():
        roots = prepare(scale)
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for subject in ("ingest", "training"):
            for _ in range(reps):
                for storage in STORAGES:
                    run = run_child("benchmarks.s3", "--child", subject, "--root", str(roots[storage]))
                    runs.setdefault((subject, storage), []).append(run)
        import polars as pl

        same = pl.read_parquet(roots["s3"] / "data" / "training_out.parquet").equals(
            pl.read_parquet(roots["local"] / "data" / "training_out.parquet")
        )
    result: dict[str, Any] = {"scale": scale, "reps": reps, "machine": machine(), "s3_equals_local": same}
    for (subject, storage), rs in runs.items():
        secs = median([r["seconds"] for r in rs])
        result.setdefault(subject, {})[storage] = {
            "seconds": secs,
            "rows": rs[0]["rows"],
            "rows_per_s": rs[0]["rows"] / secs,
            "peak_mb": max(r["peak_mb"] for r in rs),
        }
    for subject in ("ingest", "training"):
        result[subject]["s3_over_local"] = result[subject]["s3"]["seconds"] / result[subject]["local"]["seconds"]
    return result


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    lines = [
        f"W1 on S3 (moto, local) vs local disk (scale {r['scale']:g}, median of {r['reps']}; "
        f"{m['cores']} cores, {m['memory_gb']} GB):",
        "| subject | storage | seconds | rows/s | peak MB | rows |",
        "|---|---|---|---|---|---|",
    ]
    for subject, label in (("ingest", "ingest"), ("training", "training set")):
        for storage in STORAGES:
            x = r[subject][storage]
            lines.append(
                f"| {label} | {storage} | {x['seconds']:.2f} | {x['rows_per_s']:,.0f} | {x['peak_mb']:.0f} "
                f"| {x['rows']:,} |"
            )
    lines.append(
        f"s3/local: ingest {r['ingest']['s3_over_local']:.2f}x, training set {r['training']['s3_over_local']:.2f}x; "
        f"training sets equal: {r['s3_equals_local']}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any] | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tenth of W1")
    p.add_argument("--scale", type=float, default=None, help="W1 scale (default 1, quick 0.1)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--child", choices=["ingest", "training"])
    p.add_argument("--root", type=Path)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.root)
        return None
    scale = args.scale if args.scale is not None else (0.1 if args.quick else 1.0)
    r = measure(scale, args.reps)
    print(render(r))
    (workdir("results") / "s3.json").write_text(json.dumps(r, indent=2))
    return r


if __name__ == "__main__":
    main()
