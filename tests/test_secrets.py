"""Secrets never reach output: every command and server path runs with passwords set, and all output is grepped."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from tests.conftest import RedisServer, free_port, write_repo

ROOT = Path(__file__).resolve().parents[1]
# Unique, so a hit can only be a leak. PLAIN_KEY is what a client sends; its hash is configured.
PASSWORD = "pw" + secrets.token_hex(12)
WRONG_PASSWORD = "wrong" + secrets.token_hex(12)
PLAIN_KEY = "fs_" + secrets.token_hex(16)
WRONG_KEY = "fs_bad" + secrets.token_hex(16)
SECRETS = (PASSWORD, WRONG_PASSWORD, PLAIN_KEY, WRONG_KEY, hashlib.sha256(PLAIN_KEY.encode()).hexdigest())

VIEWS = """
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource
driver = Entity("driver", join_keys={"driver_id": Int64})
stats = FeatureView("stats", [driver], ParquetSource("stats.parquet"), [Feature("a", Float64)])
svc = FeatureService("svc", features=[stats])
"""


def assert_no_secret(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret appears in {where}:\n{text[:3000]}"


@pytest.fixture(scope="module")
def redis_pw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis_pw"), password=PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_pw: RedisServer) -> Path:
    # The password sits in featurestore.toml here; the error paths below set it through the environment.
    root = write_repo(tmp_path_factory.mktemp("secrets") / "repo", {"views.py": VIEWS}, 'project = "sec"\n')
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now - timedelta(hours=1), now]
    pl.DataFrame({"driver_id": [1, 2], "event_timestamp": times, "a": [0.5, 1.5]}).write_parquet(root / "stats.parquet")
    pl.DataFrame({"driver_id": [1, 2], "event_timestamp": times}).write_parquet(root / "entities.parquet")
    (root / "rows.jsonl").write_text(f'{{"driver_id": 3, "event_timestamp": "{now.isoformat()}", "a": 2.5}}\n')
    (root / "featurestore.toml").write_text(f'project = "sec"\nonline = "{redis_pw.url}"\n')
    return root


def env(**settings: str) -> dict[str, str]:
    keys = orjson.dumps([{"name": "app", "sha256": hashlib.sha256(PLAIN_KEY.encode()).hexdigest(), "push": True}])
    base = {k: v for k, v in os.environ.items() if not k.startswith("FEATURESTORE_")}
    extra = {f"FEATURESTORE_{k.upper()}": v for k, v in settings.items()}
    return {**base, "PYTHONPATH": str(ROOT), "FEATURESTORE_API_KEYS": keys.decode(), **extra}


def cli(repo: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "featurestore.cli.main", *args, "--repo", str(repo)]
    done = subprocess.run(cmd, env=env(**settings), capture_output=True, text=True, timeout=120)
    assert_no_secret(done.stdout + done.stderr, f"`featurestore {' '.join(args)}`")
    return done


# Every command that reads the settings, in an order that builds on the previous ones.
COMMANDS: list[list[str]] = [
    ["plan"],
    ["apply"],
    ["list"],
    ["ingest"],
    ["validate", "stats"],
    ["reports"],
    ["profile", "stats"],
    ["training-set", "--entities", "entities.parquet", "-f", "stats:a", "-o", "train.parquet"],
    ["materialize"],
    ["materialize-incremental"],
    ["get", "-f", "stats:a", "-e", "driver_id=1,2"],
    ["skew"],
    ["describe", "stats"],
    ["push", "stats", "--file", "rows.jsonl"],
]
# serve runs below (ui is the same server); new-api-key and init read no settings
NO_SETTINGS = {"new-api-key", "serve", "ui", "init"}


def test_every_command_is_covered() -> None:
    from featurestore.cli.main import app

    names = {c.name or c.callback.__name__ for c in app.registered_commands if c.callback is not None}
    assert names <= {c[0] for c in COMMANDS} | NO_SETTINGS | {"report"}, "add new commands to COMMANDS"


def test_commands_print_no_secret(repo: Path) -> None:
    for args in COMMANDS:
        args = [str(repo / a) if a.endswith((".parquet", ".jsonl")) else a for a in args]
        done = cli(repo, *args)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    report = cli(repo, "report", "--html", str(repo / "r.html"))
    assert report.returncode == 0, report.stderr
    assert_no_secret((repo / "r.html").read_text(), "the HTML report")


@pytest.mark.parametrize(
    "online",
    [
        "redis://:{wrong}@127.0.0.1:{port}/0",  # refused by the server
        "redis://:{password}@127.0.0.1:{closed}/0",  # nothing listens
        "redis://app:{password}@127.0.0.1:notaport/0",  # not a URL redis-py accepts
        "memcached://:{password}@127.0.0.1:11211",  # unknown scheme
    ],
    ids=["wrong password", "unreachable", "bad port", "unknown scheme"],
)
def test_error_paths_print_no_secret(repo: Path, redis_pw: RedisServer, online: str, tmp_path: Path) -> None:
    url = online.format(wrong=WRONG_PASSWORD, password=PASSWORD, port=redis_pw.port, closed=free_port())
    for args in (["materialize"], ["get", "-f", "stats:a", "-e", "driver_id=1"]):
        done = cli(repo, *args, online=url, online_timeout="0.3")
        assert done.returncode != 0, (args, done.stdout)
        assert "error" in done.stdout + done.stderr
    server = Server(repo, tmp_path, online=url, online_timeout="0.3")
    try:
        if server.running:  # the store is opened at start-up, so a bad URL may stop it there
            codes = server.every_path()
            assert codes[0] >= 500 and codes[6] == 503, codes
    finally:
        server.stop_and_check()


class Server:
    """``featurestore serve`` as a process, its output in files, every response body kept."""

    def __init__(self, repo: Path, tmp: Path, **settings: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out, self.err = tmp / f"serve{self.port}.out", tmp / f"serve{self.port}.err"
        cmd = [sys.executable, "-m", "featurestore.cli.main", "serve", "--repo", str(repo), "--port", str(self.port)]
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.proc = subprocess.Popen(cmd, env=env(log_level="debug", **settings), stdout=out, stderr=err)
        self.seen: list[str] = []
        self.running = False
        deadline = time.monotonic() + 30
        while self.proc.poll() is None:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    self.running = True
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, self.err.read_text()
            time.sleep(0.1)

    def call(self, method: str, path: str, key: str | None = PLAIN_KEY, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        resp = httpx.request(method, self.url + path, json=body, headers=headers, timeout=5)
        self.seen.append(f"{method} {path} -> {resp.status_code} {dict(resp.headers)} {resp.text}")
        return resp

    def every_path(self) -> list[int]:
        lookup = {"features": ["stats:a"], "entities": {"driver_id": [1, 2]}}
        push = {"view": "stats", "rows": [{"driver_id": 3, "event_timestamp": datetime.now(UTC).isoformat(), "a": 1.0}]}
        return [
            self.call("POST", "/get-online-features", body=lookup).status_code,
            self.call("POST", "/get-online-features", key=WRONG_KEY, body=lookup).status_code,
            self.call("POST", "/get-online-features", key=None, body=lookup).status_code,
            self.call(
                "POST", "/get-online-features", body={"feature_service": "svc", "entities": {"x": [1]}}
            ).status_code,
            self.call("POST", "/rows", body={"view": "stats", "entities": {"driver_id": [1]}}).status_code,
            self.call("POST", "/push", body=push).status_code,
            self.call("GET", "/ready").status_code,
            self.call("GET", "/health").status_code,
            self.call("GET", "/metrics").status_code,
            self.call("GET", "/reports").status_code,
            self.call("GET", "/openapi.json").status_code,
        ]

    def stop_and_check(self) -> None:
        self.proc.terminate()
        self.proc.wait(20)
        assert_no_secret("\n".join(self.seen), "a server response")
        assert_no_secret(self.out.read_text(), "the server's stdout")
        assert_no_secret(self.err.read_text(), "the server's stderr (logs)")


def test_server_paths_show_no_secret(repo: Path, redis_pw: RedisServer, tmp_path: Path) -> None:
    server = Server(repo, tmp_path)
    try:
        assert server.running, server.err.read_text()
        assert "redis://:***@" in server.out.read_text()  # the start-up line names the store, masked
        codes = server.every_path()
        assert codes[0] == 200 and codes[1] == 401 and codes[6] == 200, codes
        redis_pw.stop()  # the store goes away: 503 paths and their logs
        try:
            codes = server.every_path()
            assert codes[0] == 503 and codes[6] == 503, codes
        finally:
            redis_pw.start()
    finally:
        server.stop_and_check()
