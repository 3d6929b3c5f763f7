"""Metrics with several workers: a real `featurestore serve --workers 2` sums its workers' counters on /metrics."""

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
import pytest

from featurestore import FeatureStore
from featurestore.server.metrics import MULTIPROC_ENV, worker_started, worker_stopped
from featurestore.server.served_log import served_files
from tests.conftest import free_port
from tests.test_materialize import build


def _samples(text: str, name: str) -> list[tuple[str, float]]:
    """(labels, value) of every sample of metric ``name`` in an exposition text."""
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, value = line.rsplit(" ", 1)
            out.append((head[len(name) :], float(value)))
    return out


def _wait_started(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the server did not start"
        time.sleep(0.2)


def test_two_workers_sum_their_counters_and_logged_rows_on_metrics(
    make_repo: Any, redis_server: Any, tmp_path: Path
) -> None:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    root = build(make_repo, str(redis_server.url))
    FeatureStore(root).materialize()
    parent = tmp_path / "metrics"  # set by an operator: each run gets a fresh folder inside it
    parent.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "FEATURESTORE_AUTH": "off",
        "FEATURESTORE_LOG_SAMPLE_RATE": "1.0",
        MULTIPROC_ENV: str(parent),
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "featurestore.cli.main", "serve", "--repo", str(root), "--port", str(port)]
    log = tmp_path / "server.log"
    with log.open("wb") as err:  # a file, not a pipe: a full pipe would block the workers' logging
        proc = subprocess.Popen([*cmd, "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    body = {"features": ["stats:a", "stats:b"], "entities": {"driver_id": [1, 2, 999]}}
    try:
        _wait_started(url, proc)
        [run_dir] = list(parent.iterdir())
        assert run_dir.name.startswith("featurestore-metrics-")

        def hammer() -> None:
            for _ in range(30):
                with httpx.Client(timeout=10) as client:  # a new connection each time: spread over workers
                    assert client.post(url + "/get-online-features", json=body).status_code == 200

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # Each worker's writer reports its spooled rows on its next pass: wait for the outcome, then read
        # the same sums from several scrapes (new connections: whichever worker answers reports them all).
        deadline = time.monotonic() + 60
        while True:
            text = httpx.get(url + "/metrics").text
            spooled = _samples(text, "featurestore_served_log_spooled_rows_total")
            if spooled == [("", 720.0)] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        for _ in range(4):
            text = httpx.get(url + "/metrics").text
            assert _samples(text, "featurestore_served_log_spooled_rows_total") == [("", 720.0)], text[-3000:]
            requests = dict(_samples(text, "featurestore_http_requests_total"))
            assert requests['{code="200",endpoint="/get-online-features"}'] == 240
            statuses = dict(_samples(text, "featurestore_feature_statuses_total"))
            assert statuses['{status="NOT_FOUND"}'] == 480  # entity 999, two features, 240 lookups
            assert statuses['{status="PRESENT"}'] == 960
            assert _samples(text, "featurestore_served_log_dropped_rows_total") == [("", 0.0)]
            # A gauge summed over the live workers: one sample, no per-process series.
            [(labels, _)] = _samples(text, "featurestore_served_log_queued_bytes")
            assert labels == ""
    finally:
        proc.terminate()
        proc.wait(60)
    pids = {
        json.loads(line)["pid"]
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"path":"/get-online-features"' in line
    }
    assert len(pids) == 2, f"requests were answered by {len(pids)} worker process(es)"
    assert list(parent.iterdir()) == []  # the run's metric files are removed with it
    # Nothing lost on a clean shutdown: both workers spooled and converted their lookups.
    logged = sum(pl.read_parquet(f).height for f in served_files(root / "data/offline", "stats"))
    assert logged == 720


def test_a_worker_forgets_the_live_gauges_of_dead_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # prometheus-client chooses how to keep values when first imported: before the variable is set here,
    # so this test process's other apps keep theirs in memory.
    import prometheus_client.values  # noqa: F401

    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    gone = int(dead.stdout)
    files = {
        "dead_gauge": tmp_path / f"gauge_livesum_{gone}.db",  # a worker killed without a clean exit
        "dead_counter": tmp_path / f"counter_{gone}.db",  # what it served still counts
        "own_gauge": tmp_path / f"gauge_livesum_{os.getpid()}.db",
    }
    for path in files.values():
        path.write_bytes(b"")
    worker_started()
    assert [name for name, path in files.items() if path.exists()] == ["dead_counter", "own_gauge"]
    worker_stopped()  # a clean exit takes its own live gauges out of the sum
    assert [name for name, path in files.items() if path.exists()] == ["dead_counter"]
