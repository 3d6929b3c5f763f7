"""Faults while serving: Redis restarts under load, a new version materializes mid-traffic, several workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from featurestore import FeatureStore
from tests.conftest import RedisServer, free_port
from tests.server.test_routes import running
from tests.test_materialize import NOW, VIEWS, build, point_in_time, source_frame

BODY = {"features": ["stats:a", "stats:b", "stats:s"], "entities": {"driver_id": list(range(0, 40, 3))}}


class Load(threading.Thread):
    """Sends lookups back to back and records (start time, status, seconds) of each; 0 means no answer."""

    def __init__(self, url: str, body: dict[str, Any], keep: bool = False) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.keep = url, body, keep
        self.stop = threading.Event()
        self.results: list[tuple[float, int, float]] = []
        self.bodies: list[dict[str, Any]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                t0 = time.monotonic()
                try:
                    resp = client.post(self.url + "/get-online-features", json=self.body)
                    status = resp.status_code
                    if self.keep and status == 200:
                        self.bodies.append(resp.json())
                    if status != 200:
                        self.errors.append(resp.text)
                except httpx.HTTPError:
                    status = 0
                self.results.append((t0, status, time.monotonic() - t0))


def test_redis_restart_under_load(make_repo: Any, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    redis.start()
    try:
        root = build(make_repo, redis.url)
        FeatureStore(root).materialize()
        import redis as redis_lib

        redis_lib.Redis.from_url(redis.url).save()  # the restarted server loads this snapshot
        with running(root, online_timeout="0.3") as url:
            loads = [Load(url, BODY) for _ in range(3)]
            for load in loads:
                load.start()
            time.sleep(0.5)
            stopping = time.monotonic()
            redis.stop()  # returns once the process is gone
            down = time.monotonic()
            time.sleep(1.5)
            up = time.monotonic()
            redis.start()
            deadline = up + 5
            while time.monotonic() < deadline:
                if all(any(t > up and s == 200 for t, s, _ in load.results) for load in loads):
                    break
                time.sleep(0.1)
            recovered = time.monotonic()
            for load in loads:
                load.stop.set()
                load.join(10)
            assert httpx.get(url + "/health").status_code == 200  # the server never died
            results = [r for load in loads for r in load.results]
            before = [s for t, s, d in results if t + d < stopping]
            outage = [(s, d) for t, s, d in results if down + 0.05 < t and t + d < up]
            assert before and set(before) == {200}
            assert outage and {s for s, _ in outage} == {503}, {s for s, _ in outage}
            assert max(d for _, d in outage) < 2.0  # fail fast
            assert recovered - up < 5, "no successful lookup within 5 s of Redis coming back"
            assert all(s in (200, 503) for _, s, _ in results)  # never a 500 or a dropped connection
            metrics = httpx.get(url + "/metrics").text
            assert 'featurestore_online_store_errors_total{kind="unavailable"}' in metrics
            assert 'featurestore_online_store_errors_total{kind="unavailable"} 0.0' not in metrics
    finally:
        redis.stop()


def test_materialize_new_version_while_serving_has_no_torn_reads(
    make_repo: Any, tmp_path: Path, redis_server: Any
) -> None:
    import redis as redis_lib

    redis_lib.Redis.from_url(redis_server.url).flushdb()
    n = 3000
    old = source_frame(n, rows_each=2, seed=1)
    root = build(make_repo, redis_server.url, df=old)
    FeatureStore(root).materialize(end=NOW)
    ids = list(range(0, n, 7))[:200]
    body = {"features": ["stats:a", "stats:b", "stats:s"], "entities": {"driver_id": ids}}

    def expected(df: pl.DataFrame) -> list[list[Any]]:
        latest = point_in_time(df, NOW)
        return [[latest[i][f] for i in ids] for f in ("a", "b", "s")]

    # A new version (one more feature) with different data, written by another process.
    new = source_frame(n, rows_each=2, seed=2).with_columns(pl.lit(1).alias("c"))
    (root / "definitions" / "views.py").write_text(
        VIEWS.replace("TTL", "None").replace("EXTRA", ', Feature("c", Int64)')
    )
    new.write_parquet(root / "data" / "stats.parquet")
    with running(root) as url:
        load = Load(url, body, keep=True)
        load.start()
        time.sleep(0.3)
        store = FeatureStore(root)
        store.apply()
        store.ingest()
        code = (
            f"from featurestore import FeatureStore; FeatureStore({str(root)!r}).materialize(end={NOW.isoformat()!r})"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120, env=_env())
        time.sleep(1.5)  # the server re-reads version pointers at most every second
        load.stop.set()
        load.join(10)
    olds, news = expected(old), expected(new)
    versions = []
    for resp in load.bodies:
        got = [r["values"] for r in resp["results"][1:]]
        assert got in (olds, news), "a response mixes two versions or holds rows of neither"
        versions.append(got == news)
    assert versions[0] is False and versions[-1] is True, "the new version never became visible"
    assert versions == sorted(versions), "a response went back to the old version after the switch"
    assert {s for _, s, _ in load.results} == {200}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}


def test_serve_workers_2_runs_two_processes_that_both_answer(make_repo: Any, tmp_path: Path) -> None:
    root = build(make_repo, "sqlite:///data/online.db")
    FeatureStore(root).materialize()
    port = free_port()
    env = {**_env(), "FEATURESTORE_AUTH": "off"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("wb") as err:  # a file, not a pipe: a full pipe would block the workers' logging
        proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
            time.sleep(0.2)
        body = {"features": ["stats:b"], "entities": {"driver_id": [1]}}

        def hammer() -> None:
            for _ in range(30):
                with httpx.Client(timeout=5) as client:  # a new connection each time: spread over workers
                    assert client.post(url + "/get-online-features", json=body).status_code == 200

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        metrics = httpx.get(url + "/metrics").text  # one worker answers for all (shared metric files)
        line = 'featurestore_http_requests_total{code="200",endpoint="/get-online-features"}'
        assert any(m.startswith(line) and float(m.split()[-1]) == 240 for m in metrics.splitlines()), metrics[:2000]
    finally:
        proc.terminate()
        proc.wait(20)
    pids = {
        json.loads(line)["pid"]
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"path":"/get-online-features"' in line
    }
    assert len(pids) == 2, f"requests were answered by {len(pids)} worker process(es)"
