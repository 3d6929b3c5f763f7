"""kill -9 a materialization at random points: the rerun equals a clean run, readers only ever saw complete rows."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from featurestore import FeatureStore
from tests.conftest import RedisServer
from tests.test_materialize import NOW, build, source_frame

N_ENTITIES = 20_000
CHILD = """
import sys
from featurestore import FeatureStore
store = FeatureStore(sys.argv[1])
store.online_store().ping()
print("ready", flush=True)
store.materialize(end=sys.argv[2])
print("done", flush=True)
"""


def snapshot(client: Any) -> dict[bytes, bytes]:
    """Every key of the project and its value (strings) or content (hashes)."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match="fs:mat:*", count=10_000):
        out[key] = client.hgetall(key) if client.type(key) == b"hash" else client.get(key)
    return out


class Reader(threading.Thread):
    """Polls the store like a server: follow the pointer, read rows, check each one against the offline rows."""

    def __init__(self, url: str, version: str, valid: dict[str, set[bytes]]) -> None:
        super().__init__(daemon=True)
        import redis

        self.client = redis.Redis.from_url(url)
        self.version, self.valid = version, valid
        self.keys = sorted(valid)
        self.stop = threading.Event()
        self.problems: list[str] = []
        self.reads = 0
        self.rows_seen = 0

    def run(self) -> None:
        prefix = f"fs:mat:stats:{self.version}:"
        rng = random.Random(1)
        while not self.stop.is_set():
            sample = rng.sample(self.keys, 200)
            live = self.client.hget("fs:mat:@versions", "stats") == self.version.encode()
            rows = self.client.mget([prefix + k for k in sample])
            self.reads += 1
            for key, row in zip(sample, rows, strict=True):
                if row is None:
                    if live:  # a version is live only once every row is written
                        self.problems.append(f"entity {key} missing in the live version")
                    continue
                self.rows_seen += 1
                if row not in self.valid[key]:
                    self.problems.append(f"entity {key}: row {row[:60]!r} is no offline row")


def offline_rows(root: Path) -> tuple[str, dict[str, set[bytes]]]:
    """The view version, and per entity key every row the offline data could legitimately produce."""
    import polars as pl

    from featurestore.online.codec import encode_rows

    store = FeatureStore(root)
    spec = store.state().view("stats")
    df = pl.read_parquet(root / "data" / "stats.parquet").with_columns(
        pl.col("event_timestamp").dt.replace_time_zone("UTC")
    )
    encoded = encode_rows(df, ["driver_id"], list(spec.features), spec.ttl)
    valid: dict[str, set[bytes]] = {}
    for key, row in zip(encoded.keys, encoded.rows, strict=True):
        valid.setdefault(key, set()).add(row)
    return spec.version, valid


def run_trials(make_repo: Any, tmp_path: Path, trials: int, seed: int) -> int:
    """Run ``trials`` kill-and-rerun rounds; return how many rows the readers saw (crashes mid-write)."""
    import redis as redis_lib

    server = RedisServer(tmp_path / "redis-workdir")
    server.workdir.mkdir()
    server.start()
    try:
        df = source_frame(N_ENTITIES, rows_each=2, seed=seed)
        root = build(make_repo, server.url, df=df)
        client = redis_lib.Redis.from_url(server.url)
        end = NOW.isoformat()
        t0 = time.monotonic()
        FeatureStore(root).materialize(end=end)
        clean_seconds = time.monotonic() - t0
        clean = snapshot(client)
        assert len(clean) > N_ENTITIES  # every entity, the pointer, watermark and newest-event hashes
        version, valid = offline_rows(root)
        rng = random.Random(seed)
        seen = 0
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        # How long the child takes from "ready" to done: kills are spread over that span.
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(root), end], stdout=subprocess.PIPE, env=env)
        assert child.stdout is not None
        child.stdout.readline()
        t0 = time.monotonic()
        child.wait(60)
        clean_seconds = max(clean_seconds, time.monotonic() - t0)
        for trial in range(trials):
            client.flushdb()
            reader = Reader(server.url, version, valid)
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(root), end],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
            assert child.stdout is not None
            assert child.stdout.readline().strip() == b"ready", "the materialize child did not start"
            reader.start()
            time.sleep(rng.uniform(0, clean_seconds * 1.1))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(10)
            reader.stop.set()
            reader.join(10)
            assert not reader.problems, (trial, reader.problems[:5])
            assert reader.reads > 0
            seen += reader.rows_seen
            FeatureStore(root).materialize(end=end)  # the rerun
            assert snapshot(client) == clean, f"trial {trial}: the online store differs from a clean run"
        return seen
    finally:
        server.stop()


def test_kill_materialize_then_rerun_equals_clean_run(make_repo: Any, tmp_path: Path) -> None:
    run_trials(make_repo, tmp_path, trials=3, seed=11)


@pytest.mark.stress
def test_kill_materialize_stress(make_repo: Any, tmp_path: Path) -> None:
    assert run_trials(make_repo, tmp_path, trials=25, seed=12) > 0  # some kills landed mid-write
