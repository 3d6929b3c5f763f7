"""Redis over TLS with a password (rediss://): a real TLS redis-server, a self-signed certificate."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from featurestore import FeatureStore, StoreUnavailableError
from featurestore.online import open_online_store
from tests.conftest import free_port
from tests.test_materialize import build, point_in_time, source_frame

PASSWORD = "tls-s3cret"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    openssl, redis_server = shutil.which("openssl"), shutil.which("redis-server")
    if openssl is None or redis_server is None:
        pytest.fail("openssl and redis-server are needed (make test installs redis-server)")
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
         "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [redis_server, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "no", "--requirepass", PASSWORD, "--save", "", "--dir", str(tmp)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail("TLS redis-server did not start")
            time.sleep(0.05)
    yield port, cert
    proc.terminate()
    proc.wait(5)


def test_materialize_and_read_over_tls_with_a_password(make_repo: Any, tls_redis: tuple[int, Path]) -> None:
    port, cert = tls_redis
    url = f"rediss://:{PASSWORD}@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    store = FeatureStore(build(make_repo, url))
    store.materialize()
    expected = point_in_time(source_frame(), store.materialize()[0].end)
    ids = sorted(expected)[:5]
    got = store.get_online_features(["stats:b"], {"driver_id": ids})
    assert got["b"] == [expected[i]["b"] for i in ids]
    assert set(got.statuses()["b"]) == {"PRESENT"}


def test_a_wrong_password_is_refused_without_leaking_it(tls_redis: tuple[int, Path]) -> None:
    port, cert = tls_redis
    store = open_online_store(f"rediss://:wrong-pw@127.0.0.1:{port}/0?ssl_ca_certs={cert}", "p", timeout=1)
    with pytest.raises(StoreUnavailableError, match="password") as info:
        store.read_rows("v", "1", ["a"])
    assert "wrong-pw" not in str(info.value)
