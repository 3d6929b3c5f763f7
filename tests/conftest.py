"""Shared fixtures: throwaway feature repositories and a real redis-server on a free port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RepoFactory = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> RepoFactory:
    """Create a feature repository: ``make_repo({"views.py": "..."}, config="...")``.

    Module sources are dedented; the definitions package gets an ``__init__.py``.
    """

    def factory(modules: dict[str, str], config: str = 'project = "test"\n', name: str = "repo") -> Path:
        return write_repo(tmp_path / name, modules, config)

    return factory


def write_repo(root: Path, modules: dict[str, str], config: str) -> Path:
    """Write a repository at ``root``: featurestore.toml plus a definitions package of ``modules``."""
    pkg = root / "definitions"
    pkg.mkdir(parents=True, exist_ok=True)
    (root / "featurestore.toml").write_text(config)
    (pkg / "__init__.py").touch()
    for fname, text in modules.items():
        (pkg / fname).write_text(textwrap.dedent(text))
    return root


class RedisServer:
    """A real redis-server process on loopback, started and stopped by the tests."""

    def __init__(self, workdir: Path, port: int | None = None, password: str | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed; `make test` installs it")
        args = [
            exe,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests use distinct key prefixes or FLUSHDB."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
