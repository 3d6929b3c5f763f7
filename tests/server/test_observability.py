"""/metrics, request ids, JSON access logs without values or secrets, /reports, and the redaction helper."""

from __future__ import annotations

import functools
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from featurestore import FeatureStore
from featurestore.config import load_settings, redact
from featurestore.server import create_app
from featurestore.server.logs import LOGGER, configure_logging
from tests.conftest import write_repo
from tests.test_materialize import build


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, io.StringIO]]:
    base = tmp_path_factory.mktemp("obs")

    make_repo = functools.partial(write_repo, base / "repo")

    root = build(make_repo, "sqlite:///data/online.db", ttl="timedelta(days=2)")
    FeatureStore(root).materialize()
    app = create_app(load_settings(root, env={"FEATURESTORE_AUTH": "off"}))
    logs = io.StringIO()
    configure_logging("info", stream=logs, json=True)
    with TestClient(app) as c:
        yield c, logs
    configure_logging("info")


def test_request_id_is_echoed_or_generated(served: tuple[TestClient, io.StringIO]) -> None:
    client, _ = served
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 16
    assert client.get("/health", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"] != "x" * 500
    # Lookups are answered by the front layer's hot routes: their answers and errors carry the id too.
    body = {"features": ["stats:a"], "entities": {"driver_id": [1]}}
    ok = client.post("/get-online-features", json=body, headers={"X-Request-ID": "hot-1"})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == "hot-1"
    assert ok.headers["content-type"] == "application/json" and int(ok.headers["content-length"]) == len(ok.content)
    bad = client.post("/rows", json={"view": 3, "entities": {"driver_id": [1]}}, headers={"X-Request-ID": "hot-2"})
    assert bad.status_code == 422 and bad.headers["x-request-id"] == "hot-2"


def test_metrics_count_requests_statuses_freshness_and_gates(served: tuple[TestClient, io.StringIO]) -> None:
    client, _ = served
    body = {"features": ["stats:a", "stats:b"], "entities": {"driver_id": [1, 2, 999]}}
    assert client.post("/get-online-features", json=body).status_code == 200
    assert client.post("/get-online-features", json={"features": ["nope:x"], "entities": {"x": [1]}}).status_code == 404
    client.get("/no/such/path")
    text = client.get("/metrics").text
    assert 'featurestore_http_requests_total{code="200",endpoint="/get-online-features"}' in text
    assert 'featurestore_http_requests_total{code="404",endpoint="/get-online-features"}' in text
    assert 'endpoint="other"' in text and "/no/such/path" not in text
    assert 'featurestore_http_request_duration_seconds_bucket{endpoint="/get-online-features",le="0.005"}' in text
    assert 'featurestore_feature_statuses_total{status="NOT_FOUND"} 2.0' in text  # entity 999, two features
    assert 'featurestore_feature_statuses_total{status="PRESENT"}' in text
    assert 'featurestore_online_store_errors_total{kind="unavailable"} 0.0' in text
    fresh = [line for line in text.splitlines() if line.startswith('featurestore_view_freshness_seconds{view="stats"}')]
    assert fresh and 0 <= float(fresh[0].split()[-1]) < 4 * 86_400
    assert 'featurestore_gate_last_status{path="materialize",status="passed",view="stats"} 1.0' in text


def test_access_log_is_json_without_values_or_keys(
    served: tuple[TestClient, io.StringIO], capsys: pytest.CaptureFixture[str]
) -> None:
    client, _ = served
    secret_entity = 987654321
    body = {"features": ["stats:s"], "entities": {"driver_id": [secret_entity]}}
    client.post("/get-online-features", json=body, headers={"X-Request-ID": "req-42"})
    err = capsys.readouterr().err
    lines = [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]
    access = [r for r in lines if r.get("path") == "/get-online-features"]
    assert access and {"request_id", "method", "status", "duration_ms", "time", "level", "pid"} <= access[-1].keys()
    assert access[-1]["request_id"] == "req-42" and access[-1]["status"] == 200
    assert str(secret_entity) not in err


def test_reports_endpoint(served: tuple[TestClient, io.StringIO]) -> None:
    client, _ = served
    reports = client.get("/reports", params={"limit": 1}).json()
    assert len(reports) == 1 and reports[0]["view"] == "stats"
    assert client.get("/reports", params={"view": "nope"}).json() == []
    assert client.get("/reports", params={"limit": "many"}).status_code == 422


def test_redact_masks_secrets() -> None:
    assert redact("redis://:s3cr3t@redis:6379/0") == "redis://:***@redis:6379/0"
    assert redact("rediss://user:p%40ss@host/1 failed") == "rediss://user:***@host/1 failed"
    assert "tok" not in redact("Authorization: Bearer tok123")
    assert "hunter2" not in redact("password=hunter2 api_key: hunter2")
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("1redis://:pw@h/0 xrediss://u:pw@h/1") == "1redis://:***@h/0 xrediss://u:***@h/1"


def test_redact_is_linear_in_a_long_text_without_urls() -> None:
    # Every error answer goes through redact; it was quadratic in a long run of name characters.
    # In a subprocess, so the timeout (a hang guard; the fixed version takes milliseconds) can stop it.
    import subprocess
    import sys

    code = (
        "from featurestore.errors import redact\n"
        "for unit in ('x', 'x1', 'a:'):\n"
        "    text = unit * (400_000 // len(unit))\n"
        "    assert redact(text) == text\n"
        "print('ok')"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr


def test_secrets_never_reach_logs_or_errors(tmp_path: Path) -> None:
    from featurestore.errors import FeatureStoreError
    from featurestore.online.redis import RedisOnlineStore

    stream = io.StringIO()
    logger = configure_logging("info", stream=stream, json=True)
    try:
        logger.warning("connecting to redis://:topsecret@h:1/0")
        try:
            RedisOnlineStore("redis://:topsecret@127.0.0.1:1/0", "p", timeout=0.2).ping()
        except FeatureStoreError as exc:
            logger.error("failed: %s", exc)
            assert "topsecret" not in str(exc)
        settings = load_settings(tmp_path, env={"FEATURESTORE_ONLINE": "redis://:topsecret@h:1/0"})
        logger.info("settings %r", settings)
    finally:
        configure_logging("info")
    assert "topsecret" not in stream.getvalue() and "***" in stream.getvalue()
    assert logging.getLogger(LOGGER).handlers
