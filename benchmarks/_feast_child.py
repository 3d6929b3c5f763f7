"""Feast side of the benchmark, run with the Feast virtualenv's python; prints one JSON line last.

Run by benchmarks/feast.py, never imported by it: this file only needs Feast, pandas and the
standard library, so it works in Feast's own environment.

    python _feast_child.py apply --repo DIR
    python _feast_child.py training --repo DIR --entities FILE [--out FILE]
    python _feast_child.py materialize --repo DIR --start ISO --end ISO
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from datetime import datetime
from pathlib import Path

FEATURES = [f"f{i:02d}" for i in range(20)]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _store(repo: Path):  # type: ignore[no-untyped-def]
    from feast import FeatureStore

    return FeatureStore(repo_path=str(repo))


def definitions(source_path: str):  # type: ignore[no-untyped-def]
    """W1 in Feast's terms: one entity, one FileSource with a created column, one 20-feature view, ttl 7 days."""
    from datetime import timedelta

    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64, Int64

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    source = FileSource(
        name="driver_stats_source",
        path=source_path,
        timestamp_field="event_timestamp",
        created_timestamp_column="created",
    )
    view = FeatureView(
        name="driver_stats",
        entities=[driver],
        ttl=timedelta(days=7),
        schema=[Field(name=f, dtype=Float64 if i % 2 == 0 else Int64) for i, f in enumerate(FEATURES)],
        source=source,
        online=True,
    )
    return driver, view


def apply(args: argparse.Namespace) -> dict[str, object]:
    driver, view = definitions(args.source)
    t0 = time.perf_counter()
    _store(args.repo).apply([driver, view])
    return {"seconds": time.perf_counter() - t0}


def training(args: argparse.Namespace) -> dict[str, object]:
    import pandas as pd

    store = _store(args.repo)
    entity = pd.read_parquet(args.entities)
    refs = [f"driver_stats:{f}" for f in FEATURES]
    t0 = time.perf_counter()
    df = store.get_historical_features(entity_df=entity, features=refs).to_df()
    seconds = time.perf_counter() - t0
    out: dict[str, object] = {"seconds": seconds, "rows": len(df), "peak_mb": _peak_mb()}
    if args.out:  # after the timing: only the correctness check reads it
        keep = [c for c in ("row_id", "driver_id", "event_timestamp", *FEATURES) if c in df.columns]
        df[keep].to_parquet(args.out, index=False)
    return out


def materialize(args: argparse.Namespace) -> dict[str, object]:
    store = _store(args.repo)
    start, end = datetime.fromisoformat(args.start), datetime.fromisoformat(args.end)
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end, feature_views=["driver_stats"])
    return {"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("command", choices=["apply", "training", "materialize"])
    p.add_argument("--repo", type=Path, required=True)
    p.add_argument("--source", help="the driver_stats Parquet file (apply)")
    p.add_argument("--entities", help="the entity Parquet file (training)")
    p.add_argument("--out", help="save the training set here (training)")
    p.add_argument("--start")
    p.add_argument("--end")
    args = p.parse_args()
    out = {"apply": apply, "training": training, "materialize": materialize}[args.command](args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
