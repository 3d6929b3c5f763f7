"""Benchmark: validation-gate overhead on W1 ingest (1M rows, 20 features, range + not-null each, key uniqueness).

Run: python -m benchmarks.gates [--quick] [--reps N]
Ingest is timed twice on the same repository: with the gate the definitions declare, and with
the gate replaced by a pass-through (what ingest costs without validation). Also times the
gate alone (pandera schema + policy + report) and pandera's validate alone.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import polars as pl

from benchmarks._util import median, workdir
from benchmarks.w1 import make_w1

__all__ = ["GATED_DEFINITIONS", "prepare", "main"]

GATED_DEFINITIONS = '''
"""W1 with a validation gate: a range and a not-null check per feature, plus key uniqueness."""
from datetime import timedelta

from featurestore import Entity, Feature, FeatureView, Float64, Gate, Int64, ParquetSource, in_range, not_null

driver = Entity("driver", join_keys=["driver_id"])

driver_stats = FeatureView(
    "driver_stats",
    entities=[driver],
    source=ParquetSource("data/driver_stats.parquet", timestamp="event_timestamp", created="created"),
    features=[
        Feature(
            f"f{i:02d}",
            Float64 if i % 2 == 0 else Int64,
            checks=[in_range(0, 1) if i % 2 == 0 else in_range(0, 999), not_null()],
        )
        for i in range(20)
    ],
    ttl=timedelta(days=7),
    gate=Gate(unique_key=True, max_future=None),
)
'''


def prepare(scale: float) -> Path:
    """A W1 repository at ``scale`` whose view declares the benchmark's checks, applied."""
    from featurestore import FeatureStore

    root = workdir(f"w1-gates-{scale:g}")
    if not (root / "data" / "driver_stats.parquet").is_file():
        make_w1(root, scale, ingest=False)
    (root / "definitions" / "w1.py").write_text(GATED_DEFINITIONS)
    FeatureStore(root).apply()
    return root


def _ingest_once(root: Path, gated: bool) -> tuple[float, Any]:
    import featurestore.store as store_module
    from featurestore import FeatureStore

    real = store_module.gate_for
    if not gated:
        passed = SimpleNamespace(status="passed")  # what a gate that finds nothing answers
        store_module.gate_for = lambda settings, spec, path: lambda df, **batch: (df, passed)  # type: ignore[assignment]
    try:
        store = FeatureStore(root)
        t0 = time.perf_counter()
        [result] = store.ingest()
        return time.perf_counter() - t0, result
    finally:
        store_module.gate_for = real


def _gate_alone(root: Path) -> dict[str, float]:
    import pandera.errors as pe

    from featurestore import FeatureStore
    from featurestore.offline.ingest import read_view
    from featurestore.validation import compile_gate, gate_for

    store = FeatureStore(root)
    spec = store.state().view("driver_stats")
    df = read_view(store.definitions().views["driver_stats"], spec, store.engine).rows
    compiled = compile_gate(spec)
    t0 = time.perf_counter()
    try:
        compiled.schema.validate(df, lazy=True)
    except pe.SchemaErrors:
        pass
    pandera_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gate_for(store.settings, spec, "ingest")(df)
    gate_s = time.perf_counter() - t0
    # The failure path: 1 % of rows out of range in every feature.
    bad = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 100 == 0).then(pl.lit(5000)).otherwise(pl.col(f)).cast(df.schema[f]).alias(f)
        for f in [c for c in df.columns if c.startswith("f")]
    )
    t0 = time.perf_counter()
    try:
        gate_for(store.settings, spec, "ingest")(bad)
    except Exception:  # noqa: BLE001 - the budget may reject it; only the time matters
        pass
    bad_s = time.perf_counter() - t0
    return {"pandera_validate_s": pandera_s, "gate_s": gate_s, "gate_1pct_bad_s": bad_s, "rows": df.height}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 1/10 of W1")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    root = prepare(scale)
    _ingest_once(root, True)  # warm-up: caches, compiled schema, file system
    plain, gated = [], []
    for _ in range(args.reps):
        plain.append(_ingest_once(root, False)[0])
        seconds, result = _ingest_once(root, True)
        gated.append(seconds)
    alone = _gate_alone(root)
    out = {
        "scale": scale,
        "rows": alone["rows"],
        "ingest_without_gate_s": round(median(plain), 3),
        "ingest_with_gate_s": round(median(gated), 3),
        "overhead_ratio": round(median(gated) / median(plain) - 1, 3),
        "gate_alone_s": round(alone["gate_s"], 3),
        "pandera_validate_alone_s": round(alone["pandera_validate_s"], 3),
        "gate_with_1pct_bad_rows_s": round(alone["gate_1pct_bad_s"], 3),
        "last_status": result.gate.status if result.gate else None,
    }
    print(f"W1 gate benchmark (scale {scale:g}, {out['rows']:,} rows, {args.reps} reps, medians)")
    print(f"  ingest without gate : {out['ingest_without_gate_s']:.3f} s")
    print(f"  ingest with gate    : {out['ingest_with_gate_s']:.3f} s")
    print(f"  overhead            : {out['overhead_ratio']:+.1%} (target <= +30 %)")
    pandera_s = out["pandera_validate_alone_s"]
    print(f"  gate alone          : {out['gate_alone_s']:.3f} s (pandera validate {pandera_s:.3f} s)")
    print(f"  gate, 1 % bad rows  : {out['gate_with_1pct_bad_rows_s']:.3f} s")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
