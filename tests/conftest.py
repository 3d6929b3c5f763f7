"""Shared fixtures: throwaway feature repositories and a real redis-server on a free port."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cluster_port() -> int:
    """A free port for a cluster node: at most 55535, with port + 10000 (the cluster bus) free too."""
    while True:
        port = random.randint(20_000, 55_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


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


class RedisClusterServers:
    """A real Redis Cluster on loopback: ``masters`` masters with one replica each, started by the tests.

    ``redis-server --cluster-enabled yes`` on free ports, joined by ``redis-cli --cluster create``.
    A node killed by a test can be brought back with ``restart`` (it rejoins as a replica).
    ``cluster-require-full-coverage no``: while a master is failing over, the other masters keep serving.
    """

    def __init__(self, workdir: Path, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []
        while len(self.ports) < masters * 2:
            port = cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """Seed nodes as the store expects them: ``redis+cluster://127.0.0.1:P1,127.0.0.1:P2``."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])

    def _spawn(self, port: int) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            pytest.fail("redis-server is not installed; `make test` installs it")
        folder = self.workdir / str(port)
        folder.mkdir(exist_ok=True)
        args = [exe, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                "--cluster-config-file", str(folder / "nodes.conf"), "--cluster-node-timeout",
                str(self.node_timeout_ms), "--cluster-require-full-coverage", "no",
                "--save", "", "--appendonly", "no", "--dir", str(folder)]  # fmt: skip
        self.procs[port] = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start on port {port}") from None
                time.sleep(0.02)

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``redis-cli`` (e.g. ``cli("--cluster", "check", "127.0.0.1:7000")``) and return its output."""
        exe = shutil.which("redis-cli")
        if exe is None:
            pytest.fail("redis-cli is not installed; `make test` installs it (package redis-tools)")
        done = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"redis-cli {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def start(self) -> None:
        for port in self.ports:
            self._spawn(port)
        self.cli("--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports), "--cluster-replicas", "1",
                 "--cluster-yes")  # fmt: skip
        self.wait_healthy()

    def info(self, port: int) -> dict[str, str]:
        """``CLUSTER INFO`` of one node as a dict."""
        out = self.cli("-p", str(port), "cluster", "info", timeout=5)
        return dict(line.split(":", 1) for line in out.strip().splitlines() if ":" in line)

    def nodes(self) -> list[dict[str, str]]:
        """The cluster's nodes as seen by a live node: id, port, role ("master"/"slave"), flags, slots."""
        port = next(p for p in self.ports if p in self.procs)
        out = self.cli("-p", str(port), "cluster", "nodes", timeout=5)
        rows = []
        for line in out.strip().splitlines():
            parts = line.split()
            flags = parts[2].split(",")
            rows.append({"id": parts[0], "port": parts[1].split("@")[0].rsplit(":", 1)[1], "flags": parts[2],
                         "role": "master" if "master" in flags else "slave", "slots": " ".join(parts[8:])})  # fmt: skip
        return rows

    def masters(self) -> list[dict[str, str]]:
        """Live masters that serve slots."""
        return [n for n in self.nodes() if n["role"] == "master" and "fail" not in n["flags"] and n["slots"]]

    def wait_healthy(self, timeout: float = 30) -> None:
        """Until every live node reports ``cluster_state:ok`` with all six nodes known and no failure flag."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                states = [self.info(p) for p in self.procs]
                nodes = self.nodes()
                ok = all(s.get("cluster_state") == "ok" and s.get("cluster_slots_ok") == "16384" for s in states)
                if ok and len(nodes) == len(self.ports) and not any("fail" in n["flags"] for n in nodes):
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not become healthy")
            time.sleep(0.1)

    def wait_replicated(self, timeout: float = 10) -> None:
        """Until every live replica has received everything its master wrote (before killing a master)."""
        deadline = time.monotonic() + timeout
        while True:
            lagging = False
            for master in self.masters():
                out = self.cli("-p", master["port"], "info", "replication", timeout=5)
                info = dict(line.split(":", 1) for line in out.strip().splitlines() if ":" in line)
                offsets = [dict(kv.split("=") for kv in v.split(",")).get("offset") for k, v in info.items()
                           if k.startswith("slave") and k[5:].isdigit()]  # fmt: skip
                lagging |= not offsets or any(o != info["master_repl_offset"].strip() for o in offsets)
            if not lagging:
                return
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster replicas did not catch up")
            time.sleep(0.05)

    def reshard(self, source_id: str, target_id: str, slots: int) -> None:
        """Move ``slots`` slots (and their keys) from one master to another with ``redis-cli --cluster reshard``."""
        seed = next(p for p in self.ports if p in self.procs)
        self.cli("--cluster", "reshard", f"127.0.0.1:{seed}", "--cluster-from", source_id, "--cluster-to", target_id,
                 "--cluster-slots", str(slots), "--cluster-yes")  # fmt: skip

    def pause(self, port: int, seconds: float) -> None:
        """Freeze one node (SIGSTOP) for ``seconds``, in the background: it accepts nothing, answers nothing."""
        proc = self.procs[port]
        proc.send_signal(signal.SIGSTOP)
        threading.Timer(seconds, proc.send_signal, args=(signal.SIGCONT,)).start()

    def kill(self, port: int) -> None:
        """``kill -9`` one node."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(5)

    def restart(self, port: int) -> None:
        """Start a killed node again with its nodes.conf: it rejoins (as a replica if it was failed over)."""
        self._spawn(port)

    def stop(self) -> None:
        procs = list(self.procs.values())
        self.procs.clear()
        for proc in procs:  # no data to keep: kill all at once rather than wait for six shutdowns
            proc.kill()
        for proc in procs:
            proc.wait(5)


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """One Redis Cluster (3 masters + 3 replicas) for the session; tests use distinct projects."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def wait_for_health(server: subprocess.Popen[bytes], url: str, seconds: float = 60) -> Any:
    """Poll ``url``/health until the server answers (failing with its stderr if it exits); the response."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url + "/health")
        except httpx.TransportError:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)


# One local Spark for the whole run: a JVM takes seconds to start, so every Spark test shares it.
SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.memory": "1g",
    "spark.sql.adaptive.enabled": "true",
}


@pytest.fixture(scope="session")
def spark(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A SparkSession on ``local[2]`` for the test run (skipped when pyspark or Java is missing).

    Executors read ``s3://`` files with the AWS variables of their own environment, which a local
    session's JVM takes from this process when it starts: so the moto server (and its variables)
    comes first, whichever test opens the session.
    """
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (make test installs openjdk-17-jre-headless)")
    request.getfixturevalue("s3_server")
    from featurestore.offline.spark import spark_session

    session = spark_session("local[2]", SPARK_TEST_CONF)
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


class S3Server:
    """moto's standalone S3 server on a free port: a real HTTP S3 endpoint (conditional writes included)."""

    BUCKET = "featurestore-test"

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The standard AWS variables pointing every client (boto3, pyarrow) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
        }

    def start(self) -> None:
        exe = Path(sys.executable).with_name("moto_server")
        if not exe.exists():
            pytest.fail("moto_server is not installed; `make install-test` installs moto[server]")
        args = [str(exe), "-H", "127.0.0.1", "-p", str(self.port)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"moto_server did not start on port {self.port}")
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=self.BUCKET)

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
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session, with the AWS variables set for the code under test."""
    server = S3Server()
    server.start()
    saved = {k: os.environ.get(k) for k in server.env()}
    os.environ.update(server.env())
    yield server
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    server.stop()


@pytest.fixture
def s3_root(s3_server: S3Server) -> str:
    """A fresh ``s3://bucket/prefix`` for one test."""
    import uuid

    return f"s3://{S3Server.BUCKET}/{uuid.uuid4().hex[:12]}"
