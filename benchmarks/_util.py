"""Shared benchmark helpers: workspaces, subprocess runs with peak memory, medians, tables."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["workdir", "run_child", "median", "timed", "peak_rss_mb", "machine"]

ROOT = Path(__file__).resolve().parent


def workdir(name: str) -> Path:
    """A scratch folder under benchmarks/.work (ignored by git)."""
    path = ROOT / ".work" / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_child(module: str, *args: str) -> dict[str, Any]:
    """Run ``python -m module args`` in a fresh process; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT.parent,
        env={**os.environ, "PYTHONPATH": str(ROOT.parent)},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) // (1024 * 1024)
    except OSError:
        pass
    return {"cores": os.cpu_count(), "memory_gb": mem, "python": sys.version.split()[0]}
