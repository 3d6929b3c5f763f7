"""W2: window aggregations. Training set vs a bare DuckDB RANGE-window floor, online p99, pushes into Redis.

Run: python -m benchmarks.w2 [--cards 100000 --events 10000000 --rows 1000000] [--redis redis://...]
    [--quick] [--online-only] [--http]
(the issue's sizes are the defaults; pass smaller ones on a small machine; ``--quick`` is a
hundredth). With ``--redis``: materialize, then pushes of 100 events per call and one-entity
lookups of the 12 features through the SDK and, with ``--http``, through ``featurestore serve``
(one worker: pushes by an httpx client at concurrency 1, lookups by wrk at concurrency 1).
``--online-only`` skips the training set and its floor.
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
    # measured without API keys, as W1's lookups (auth costs one SHA-256 per request)
    (root / "featurestore.toml").write_text(f'project = "w2"\nonline = "{online}"\nauth = "off"\n')
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


def differing(training: pl.DataFrame, floor: pl.DataFrame) -> int:
    """Values of the training set unlike the floor's (counts exactly, the rest within 1e-9 relative)."""
    bad = 0
    for f in FUNCTIONS:
        for w in WINDOWS:
            got, want = training.get_column(f"amount_{f}_{w}"), floor.get_column(f"{f}_{w}")
            if f == "sum":
                want = want.fill_null(0.0)  # SQL's sum of nothing is null; the definition says 0
            pair = pl.DataFrame({"a": got.cast(pl.Float64), "b": want.cast(pl.Float64)})
            close = (pl.col("a") - pl.col("b")).abs() <= 1e-9 * pl.max_horizontal(pl.col("b").abs(), pl.lit(1.0))
            same = (pl.col("a").is_null() & pl.col("b").is_null()) | close.fill_null(False)
            bad += int(pair.select((~same).sum()).item())
    return bad


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cards", type=int, default=100_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--redis", default="")
    ap.add_argument("--quick", action="store_true", help="a hundredth: 1,000 cards, 100,000 events, 10,000 rows")
    ap.add_argument("--online-only", action="store_true", help="skip the training set and its floor")
    ap.add_argument("--http", action="store_true", help="also push and look up through featurestore serve")
    ap.add_argument("--pushes", type=int, default=200, help="pushes of 100 events (each way)")
    args = ap.parse_args(argv)
    if args.quick:
        args.cards, args.events, args.rows = args.cards // 100, args.events // 100, args.rows // 100
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
        if args.online_only:
            if args.redis:
                out.update(_online(fs, args.cards, args.pushes, root if args.http else None))
            print(out, file=sys.stderr)
            return out
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
        out["values_differing"] = differing(training, floor)
        del floor
        if args.redis:
            out.update(_online(fs, args.cards, args.pushes, root if args.http else None))
    print(out, file=sys.stderr)
    return out


def _push_batches(cards: int, pushes: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of 100 events of random cards within the last hour, times in ``isoformat()`` form (as JSON has them)."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    return [
        [
            {"card_id": int(c), "event_timestamp": (now - timedelta(seconds=int(s))).isoformat(), "amount": float(a)}
            for c, s, a in zip(rng.integers(0, cards, 100), rng.integers(0, 3600, 100), rng.random(100), strict=True)
        ]
        for _ in range(pushes)
    ]


def _online(fs: Any, cards: int, pushes: int = 200, http_repo: Path | None = None) -> dict[str, Any]:
    """Materialize into Redis, then pushes of 100 events per call and lookups of one entity (12 features).

    The pushes land on the materialized state (about 23 events per card inside the 7-day window at
    W2's density), as they would in production. CPU per event: this process's and Redis's CPU time
    over the pushes, divided by the events (on a shared machine, wall time also counts waiting).
    """
    from benchmarks.materialize import redis_cpu

    rng = np.random.default_rng(1)
    t0 = time.perf_counter()
    materialized = fs.materialize()
    materialize_s = time.perf_counter() - t0
    written = sum(r.rows_written for r in materialized)
    url = fs.settings.online_url
    batches = _push_batches(cards, pushes, 2)
    for rows in batches[:10]:  # warm: the first push reads the version pointers, the gate compiles
        fs.push("txn", rows)
    redis0, cpu0, t0 = redis_cpu(url), time.process_time(), time.perf_counter()
    for rows in batches:
        fs.push("txn", rows)
    wall = time.perf_counter() - t0
    events = 100 * len(batches)
    out: dict[str, Any] = {
        "materialize_s": round(materialize_s, 2),
        "materialized_events": written,
        "push_events_per_s": round(events / wall),
        "push_cpu_us_per_event": round((time.process_time() - cpu0) / events * 1e6, 1),
        "push_redis_cpu_us_per_event": round((redis_cpu(url) - redis0) / events * 1e6, 1),
    }
    lat = []
    for c in rng.integers(0, cards, 2000):
        t = time.perf_counter()
        fs.get_online_features(["txn:*"], {"card_id": [int(c)]})
        lat.append((time.perf_counter() - t) * 1000)
    out["online_sdk_p50_ms"] = round(float(np.percentile(lat, 50)), 3)
    out["online_sdk_p99_ms"] = round(float(np.percentile(lat, 99)), 3)
    if http_repo is not None:
        out.update(_http(http_repo, cards, batches))
    return out


LOOKUP_LUA = r"""
local cards = %(cards)d
bad = 0
math.randomseed(11)
function request()
  local body = '{"features":["txn:*"],"entities":{"card_id":[' .. math.random(0, cards - 1) .. ']}}'
  return wrk.format("POST", "/get-online-features", {["Content-Type"] = "application/json"}, body)
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  io.write(string.format("BENCH p50_us=%%d p99_us=%%d rps=%%.1f errors=%%d\n", latency:percentile(50),
    latency:percentile(99), summary.requests / (summary.duration / 1e6),
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.timeout))
end
"""


def _http(root: Path, cards: int, batches: list[list[dict[str, Any]]]) -> dict[str, Any]:
    """POST /push (httpx, keep-alive, one at a time) and /get-online-features (wrk -c1) on one server worker."""
    import re
    import shutil
    import subprocess

    import httpx
    import orjson

    from benchmarks.online_http import _free_port, _start, _stop

    port = _free_port()
    server = _start(["-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)], port)
    out: dict[str, Any] = {}
    try:
        # bodies encoded up front (a producer sends bytes it has): the client's JSON is not the server's time
        bodies = [orjson.dumps({"view": "txn", "rows": rows}) for rows in batches]
        headers = {"Content-Type": "application/json"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            for body in bodies[:10]:
                client.post("/push", content=body, headers=headers).raise_for_status()
            t0 = time.perf_counter()
            for body in bodies:
                client.post("/push", content=body, headers=headers).raise_for_status()
            out["http_push_events_per_s"] = round(100 * len(bodies) / (time.perf_counter() - t0))
        if shutil.which("wrk") is None:
            return out
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(LOOKUP_LUA % {"cards": cards})
        try:
            run = subprocess.run(
                ["wrk", "-t1", "-c1", "-d5s", "--latency", "-s", f.name, f"http://127.0.0.1:{port}"],
                capture_output=True,
                text=True,
                check=True,
            )
        finally:
            Path(f.name).unlink()
        m = re.search(r"BENCH p50_us=(\d+) p99_us=(\d+) rps=([\d.]+) errors=(\d+)", run.stdout)
        if m is None:
            raise RuntimeError(f"wrk printed no result: {run.stdout} {run.stderr}")
        if int(m.group(4)):
            raise RuntimeError(f"{m.group(4)} lookups failed over HTTP")
        out["online_http_p50_ms"] = int(m.group(1)) / 1000
        out["online_http_p99_ms"] = int(m.group(2)) / 1000
        out["online_http_rps"] = float(m.group(3))
    finally:
        _stop(server)
    return out


if __name__ == "__main__":
    main()
