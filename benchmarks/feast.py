"""Benchmark: Feast 0.67 on W1 (training sets on its file and DuckDB stores, materialize to Redis, feast serve).

Run: python -m benchmarks.feast [--quick] [--reps N]   (the whole comparison: python -m benchmarks)
Feast is installed on first use into its own virtualenv, benchmarks/.work/feast-venv, and every
Feast call runs there (benchmarks/_feast_child.py); this environment never imports Feast.
The Feast repository reads the very files of the featurestore W1 repository (same seeds).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks._util import ROOT, median, workdir
from benchmarks.w1 import FEATURES

__all__ = [
    "FEAST_VERSION",
    "FeastUnavailableError",
    "feast_python",
    "prepare",
    "training",
    "materialize",
    "feast_server",
    "compare_training",
    "compare_online",
    "main",
]

FEAST_VERSION = "0.67.0"
# Run with -P: the child sits beside this module, whose name would shadow the feast package.
CHILD = ROOT / "_feast_child.py"
# Both offline stores read the same repository; each gets its own feature_store.yaml folder.
OFFLINE_STORES = ("file", "duckdb")
WINDOW = ("2025-12-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00")  # covers every W1 row


class FeastUnavailableError(RuntimeError):
    """Feast could not be installed here; the Feast columns are skipped."""


def feast_python() -> Path:
    """The Feast virtualenv's python, creating the env and installing Feast on first use."""
    venv = workdir("feast-venv")
    python = venv / "bin" / "python"
    marker = venv / f".installed-{FEAST_VERSION}"
    if marker.is_file():
        return python
    print(f"installing feast[redis,duckdb]=={FEAST_VERSION} into {venv} (once) ...", file=sys.stderr)
    try:
        if not python.is_file():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"feast[redis,duckdb]=={FEAST_VERSION}"],
            check=True,
            capture_output=True,
            text=True,
        )
    except subprocess.CalledProcessError as exc:
        raise FeastUnavailableError(f"could not install Feast {FEAST_VERSION}: {(exc.stderr or '')[-800:]}") from None
    marker.touch()
    return python


def _env() -> dict[str, str]:
    return {**os.environ, "FEAST_USAGE": "False", "PYTHONWARNINGS": "ignore"}


def _child(*args: str) -> dict[str, Any]:
    """Run the Feast child in the Feast virtualenv; its last stdout line is JSON."""
    proc = subprocess.run(
        [str(feast_python()), "-P", str(CHILD), *args], capture_output=True, text=True, check=False, env=_env()
    )
    if proc.returncode != 0:
        raise RuntimeError(f"feast {args[0]} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _yaml(registry: Path, offline: str, redis: str | None, online_db: Path) -> str:
    online = f'  type: redis\n  connection_string: "{redis}"\n' if redis else f"  type: sqlite\n  path: {online_db}\n"
    return (
        "project: w1\nprovider: local\n"
        f"registry: {registry}\n"
        f"offline_store:\n  type: {offline}\n"
        f"online_store:\n{online}"
        "entity_key_serialization_version: 3\n"
    )


def configure(repo: Path, redis: str | None = None) -> None:
    """(Re)write each offline store's feature_store.yaml; ``redis`` is Feast's connection string."""
    for offline in OFFLINE_STORES:
        folder = repo / offline
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "feature_store.yaml").write_text(_yaml(repo / "registry.db", offline, redis, repo / "online.db"))


def prepare(scale: float, w1_root: Path) -> Path:
    """The Feast repository over ``w1_root``'s files, applied; also writes entities with a row_id."""
    import polars as pl

    repo = workdir(f"feast-{scale:g}")
    entities = repo / "entities.parquet"
    if not entities.is_file():
        df = pl.read_parquet(w1_root / "data" / "entities.parquet")
        df.with_row_index("row_id").with_columns(pl.col("row_id").cast(pl.Int64)).write_parquet(entities)
    if not (repo / "registry.db").is_file():
        configure(repo)
        source = str((w1_root / "data" / "driver_stats.parquet").resolve())
        _child("apply", "--repo", str(repo / "file"), "--source", source)
    return repo


def training(repo: Path, offline: str, out: Path | None = None) -> dict[str, Any]:
    """One get_historical_features(...).to_df() run in a fresh process: seconds, rows, peak_mb."""
    configure(repo)
    args = ["training", "--repo", str(repo / offline), "--entities", str(repo / "entities.parquet")]
    return _child(*args, *(["--out", str(out)] if out else []))


def materialize(repo: Path, redis: str, offline: str = "file") -> dict[str, Any]:
    """One ``materialize`` of the whole W1 window from ``offline`` into Redis (Feast connection string ``redis``)."""
    configure(repo, redis)
    return _child("materialize", "--repo", str(repo / offline), "--start", WINDOW[0], "--end", WINDOW[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no answer from {url} after {timeout} s") from None
            time.sleep(0.2)


@contextlib.contextmanager
def feast_server(repo: Path, redis: str) -> Iterator[str]:
    """``feast serve`` with one worker on 127.0.0.1 over Redis; yields its base URL and stops it.

    Gunicorn's worker recycling is turned off (``--max-requests 0``) so no restart lands in a timing.
    """
    configure(repo, redis)
    port = _free_port()
    feast = feast_python().parent / "feast"
    cmd = [str(feast), "-c", str(repo / "file"), "serve", "-h", "127.0.0.1", "-p", str(port)]
    cmd += ["-w", "1", "--no-access-log", "--max-requests", "0"]
    log = open(repo / "serve.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(url + "/health", proc)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 15)  # gunicorn's arbiter and its worker
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()


def _equal_count(a: Any, b: Any) -> int:
    """How many positions differ between two columns (null equals null; compared as float64)."""
    import polars as pl

    return int((~a.cast(pl.Float64).eq_missing(b.cast(pl.Float64))).sum())


def compare_training(fs_frame: Any, feast_file: Path) -> dict[str, Any]:
    """Differing feature values between featurestore's training set and Feast's, on the row_ids both return."""
    import polars as pl

    feast = pl.read_parquet(feast_file)
    both = fs_frame.join(feast, on="row_id", how="inner", suffix="_feast")
    diffs = {f: _equal_count(both[f], both[f + "_feast"]) for f in FEATURES}
    missing = fs_frame.join(feast.select("row_id"), on="row_id", how="anti")
    return {
        "rows_compared": both.height,
        "values_compared": both.height * len(FEATURES),
        "values_differing": sum(diffs.values()),
        "non_null_values_compared": sum(int(both[f].is_not_null().sum()) for f in FEATURES),
        "differing_by_feature": {f: n for f, n in diffs.items() if n},
        "rows_missing_in_feast": missing.height,
        # A row Feast drops should be one with no feature value inside the ttl.
        "missing_rows_with_features": int(missing["f00"].is_not_null().sum()),
    }


def online_lookup(url: str, ids: list[int]) -> dict[str, list[Any]]:
    """POST /get-online-features for ``ids``; returns {feature: values} in the order of ``ids``."""
    import urllib.request

    body = json.dumps({"features": [f"driver_stats:{f}" for f in FEATURES], "entities": {"driver_id": ids}}).encode()
    req = urllib.request.Request(url + "/get-online-features", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        data = json.loads(resp.read())
    names = data["metadata"]["feature_names"]
    return {n: r["values"] for n, r in zip(names, data["results"], strict=True)}


def compare_online(fs_url: str, feast_url: str, ids: list[int]) -> dict[str, Any]:
    """Values of f00..f19 for ``ids`` from both servers: how many differ."""
    a, b = online_lookup(fs_url, ids), online_lookup(feast_url, ids)
    differing = sum(1 for f in FEATURES for x, y in zip(a[f], b[f], strict=True) if x != y)
    missing = sum(1 for f in FEATURES for v in (*a[f], *b[f]) if v is None)
    return {
        "entities": len(ids),
        "values_compared": len(ids) * len(FEATURES),
        "values_differing": differing,
        "null_values": missing,
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--quick", action="store_true", help="about a tenth of W1")
    p.add_argument("--reps", type=int, default=1)
    args = p.parse_args(argv)
    from benchmarks import training_set

    scale = 0.1 if args.quick else 1.0
    try:
        feast_python()
    except FeastUnavailableError as exc:
        print(f"skipped: {exc}")
        return
    repo = prepare(scale, training_set.prepare(scale))
    for offline in OFFLINE_STORES:
        runs = [training(repo, offline) for _ in range(args.reps)]
        secs = median([r["seconds"] for r in runs])
        print(f"feast {offline}: {secs:.2f} s, {runs[0]['rows']:,} rows, peak {max(r['peak_mb'] for r in runs):.0f} MB")


if __name__ == "__main__":
    main()
