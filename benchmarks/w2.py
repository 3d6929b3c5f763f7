"""W2: window aggregations. Training set vs a bare DuckDB RANGE-window floor, online p99, pushes into Redis.

Run: python -m benchmarks.w2 [--cards 100000 --events 10000000 --rows 1000000] [--redis redis://...]
(the issue's sizes are the defaults; pass smaller ones on a small machine).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

__all__ = ["main", "make_repo"]

WINDOWS = {"1h": timedelta(hours=1), "1d": timedelta(days=1), "7d": timedelta(days=7)}
FUNCTIONS = ["count", "sum", "mean", "max"]
VIEWS = """
from datetime import timedelta
from featurestore import Aggregation, Entity, FeatureView, Int64, ParquetSource

card = Entity("card", join_keys={"card_id": Int64})
txn = FeatureView(
    "txn", entities=[card], source=ParquetSource("data/txns.parquet", timestamp="ts"),
    aggregations=[
        Aggregation("amount", f, window=w) for f in ("count", "sum", "mean", "max")
        for w in (timedelta(hours=1), timedelta(days=1), timedelta(days=7))
    ],
)
"""


def make_repo(root: Path, cards: int, events: int, rows: int, online: str) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=30)
    span = int((end - start).total_seconds() * 1e6)
    (root / "definitions").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "definitions" / "__init__.py").touch()
    (root / "definitions" / "txn.py").write_text(VIEWS)
    (root / "featurestore.toml").write_text(f'project = "w2"\nonline = "{online}"\n')
    pl.DataFrame({"card_id": rng.integers(0, cards, events), "amount": rng.gamma(2.0, 30.0, events)}).with_columns(
        ts=pl.lit(start) + pl.Series(rng.integers(0, span, events)).cast(pl.Duration("us"))
    ).write_parquet(root / "data" / "txns.parquet")
    return pl.DataFrame({"card_id": rng.integers(0, cards, rows)}).with_columns(
        event_timestamp=pl.lit(start) + pl.Series(rng.integers(0, span, rows)).cast(pl.Duration("us"))
    )


def floor_sql(files: str) -> str:
    windows = {"1h": "1 HOUR", "1d": "1 DAY", "7d": "7 DAYS"}
    aggs = {"count": "count(amount)", "sum": "sum(amount)", "mean": "avg(amount)", "max": "max(amount)"}
    cols = [f"{sql} OVER w{w} AS {f}_{w}" for f, sql in aggs.items() for w in windows]
    defs = [
        f"w{w} AS (PARTITION BY card_id ORDER BY ts RANGE BETWEEN INTERVAL {i} PRECEDING AND CURRENT ROW)"
        for w, i in windows.items()
    ]
    return (
        "WITH u AS (SELECT card_id, ts, amount, NULL::BIGINT AS rid FROM read_parquet(" + files + ") "
        "UNION ALL SELECT card_id, event_timestamp AS ts, NULL, rid FROM ent) "
        f"SELECT rid, {', '.join(cols)} FROM u WINDOW {', '.join(defs)} "
        "QUALIFY rid IS NOT NULL ORDER BY rid"
    )


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--redis", default="")
    args = ap.parse_args(argv)
    from featurestore import FeatureStore
    from featurestore.offline.duckdb import duckdb_connection

    out: dict[str, Any] = {"cards": args.cards, "events": args.events, "rows": args.rows}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        entity = make_repo(root, args.cards, args.events, args.rows, args.redis or "sqlite:///data/online.db")
        fs = FeatureStore(root)
        fs.apply()
        t0 = time.perf_counter()
        fs.ingest()
        out["ingest_s"] = round(time.perf_counter() - t0, 2)
        before = _rss_mb()
        t0 = time.perf_counter()
        training = fs.get_training_set(entity, ["txn:*"])
        out["training_s"] = round(time.perf_counter() - t0, 2)
        out["training_peak_rss_mb"] = round(max(before, _rss_mb()), 0)
        con = duckdb_connection()
        con.register("ent", entity.with_row_index("rid").with_columns(pl.col("rid").cast(pl.Int64)))
        files = "'" + str(root / "data" / "txns.parquet") + "'"
        t0 = time.perf_counter()
        floor = con.sql(floor_sql(files)).pl()
        out["floor_s"] = round(time.perf_counter() - t0, 2)
        out["ratio_to_floor"] = round(out["training_s"] / out["floor_s"], 2)
        out["columns"] = training.width - entity.width
        del floor
        if args.redis:
            out.update(_online(fs, args.cards))
    print(out, file=sys.stderr)
    return out


def _online(fs: Any, cards: int) -> dict[str, Any]:
    """SDK lookups of one entity (12 aggregation features) and pushes of 100 events per call, into Redis."""
    rng = np.random.default_rng(1)
    now = datetime.now(UTC)
    pushes, t0 = 0, time.perf_counter()
    for _ in range(200):
        rows = [
            {"card_id": int(c), "event_timestamp": (now - timedelta(seconds=int(s))).isoformat(), "amount": float(a)}
            for c, s, a in zip(rng.integers(0, cards, 100), rng.integers(0, 3600, 100), rng.random(100), strict=True)
        ]
        fs.push("txn", rows)
        pushes += len(rows)
    push_rate = pushes / (time.perf_counter() - t0)
    lat = []
    for c in rng.integers(0, cards, 2000):
        t = time.perf_counter()
        fs.get_online_features(["txn:*"], {"card_id": [int(c)]})
        lat.append((time.perf_counter() - t) * 1000)
    return {
        "push_events_per_s": round(push_rate),
        "online_sdk_p50_ms": round(float(np.percentile(lat, 50)), 3),
        "online_sdk_p99_ms": round(float(np.percentile(lat, 99)), 3),
    }


if __name__ == "__main__":
    main()
