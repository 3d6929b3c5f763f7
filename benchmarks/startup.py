"""Benchmark: start-up. ``import featurestore`` and ``featurestore serve`` to a ready /health, against floors.

Run: python -m benchmarks.startup [--quick] [--reps N]
The floors: ``import starlette`` alone, and the bare uvicorn + Redis MGET app of benchmarks.online_http
started the same way. Each repetition alternates featurestore with its floor; figures are medians.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks._util import median

__all__ = ["import_seconds", "ready_seconds", "run", "main"]

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "FEATURESTORE_LOG_LEVEL": "warning"}


def import_seconds(module: str) -> float:
    """Seconds a fresh interpreter spends importing ``module`` (its own clock, not the interpreter's start)."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env())
    return float(out.stdout.strip().splitlines()[-1])


def ready_seconds(args: list[str], port: int, path: str = "/health", any_status: bool = False) -> float:
    """Seconds from starting ``python args`` to the first 200 (or any answer) on ``path``; stopped after."""
    from benchmarks.online_http import _stop

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{args} exited at start-up")
                try:
                    status = client.get(f"http://127.0.0.1:{port}{path}").status_code
                    if status == 200 or any_status:
                        return time.perf_counter() - t0
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - t0 > 60:
                    raise RuntimeError(f"{args} not ready after 60 s")
                time.sleep(0.01)
    finally:
        _stop(proc)


def run(root: Path, url: str, prefix: str, reps: int) -> dict[str, Any]:
    """Median import and ready times of featurestore and of the floors, alternated ``reps`` times."""
    from benchmarks.online_http import _free_port

    times: dict[str, list[float]] = {"import": [], "import_floor": [], "ready": [], "ready_floor": []}
    for _ in range(reps):
        times["import"].append(import_seconds("featurestore"))
        times["import_floor"].append(import_seconds("starlette.applications"))
        port = _free_port()
        serve = ["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)]
        times["ready"].append(ready_seconds(serve, port))
        port = _free_port()
        floor = ["-m", "benchmarks.online_http", "--serve-floor", url, prefix, str(port)]
        times["ready_floor"].append(ready_seconds(floor, port, "/rows", any_status=True))  # it has no /health
    return {key: median(values) for key, values in times.items()} | {"reps": reps}


def table(r: dict[str, Any]) -> list[str]:
    """Markdown rows of one run's start-up figures with their ratios to the floors."""
    return [
        f"### Start-up (median of {r['reps']}, alternating with the floors)",
        "",
        "| measure | featurestore s | floor s | time / floor |",
        "|---|---|---|---|",
        f"| `import featurestore` (floor: `import starlette.applications`) | {r['import']:.3f} | "
        f"{r['import_floor']:.3f} | {r['import'] / r['import_floor']:.2f}x |",
        f"| `featurestore serve` to a ready `/health` (floor: bare uvicorn + MGET app) | {r['ready']:.2f} | "
        f"{r['ready_floor']:.2f} | {r['ready'] / r['ready_floor']:.2f}x |",
    ]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a tenth of W1 (the repository served)")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args(argv)
    from benchmarks.materialize import prepare, redis_server

    scale = 0.1 if args.quick else 1.0
    with redis_server() as url:
        root = prepare(scale, url)
        result = run(root, url, "fs:w1:driver_stats:none:", args.reps)
    print("\n".join(table(result)))
    return result


if __name__ == "__main__":
    main()
