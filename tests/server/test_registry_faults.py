"""A malformed registry file on a running server: the last good registry stays in service, /ready says degraded."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from featurestore import FeatureStore
from tests.server.test_routes import post, running

VIEWS = """
from featurestore import Entity, Feature, FeatureView, Float64, Int64, ParquetSource
driver = Entity("driver", join_keys={"driver_id": Int64})
stats = FeatureView("stats", [driver], ParquetSource("stats.parquet"), [Feature("a", Float64)])
"""
LOOKUP = {"features": ["stats:a"], "entities": {"driver_id": [1]}}
BROKEN = [
    b'{"format": 1, "views": []}',
    b'{"format": 1, "views": {"stats": "stats"}}',
    b'{"format": 1, "views": {"a b": {}}}',
]


def repo(make_repo: Any) -> Path:
    root = make_repo({"views.py": VIEWS}, config='project = "reg"\nonline = "sqlite:///online.db"\n')
    now = datetime.now(UTC).replace(microsecond=0)
    pl.DataFrame({"driver_id": [1], "event_timestamp": [now], "a": [0.5]}).write_parquet(root / "stats.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    store.materialize()
    return root


def wait_for(url: str, status: str) -> httpx.Response:
    deadline = time.monotonic() + 5
    while (resp := httpx.get(url + "/ready")).json().get("status") != status and time.monotonic() < deadline:
        time.sleep(0.05)
    return resp


def test_a_broken_registry_keeps_the_last_good_one_in_service(make_repo: Any) -> None:
    root = repo(make_repo)
    path = root / "data" / "registry.json"
    good = path.read_bytes()
    with running(root) as url:
        assert httpx.get(url + "/ready").json() == {"status": "ready"}
        for broken in BROKEN:
            path.write_bytes(broken)
            ready = wait_for(url, "degraded")
            assert ready.status_code == 200 and ready.json()["status"] == "degraded"
            assert str(path) in ready.json()["detail"] and "malformed" in ready.json()["detail"]
            for _ in range(3):  # past the catalog's refresh interval too
                resp = post(url, "/get-online-features", LOOKUP)
                assert resp.status_code == 200 and resp.json()["results"][1]["values"] == [0.5]
                rows = post(url, "/rows", {"view": "stats", "entities": {"driver_id": [1]}})
                assert rows.status_code == 200
            assert httpx.get(url + "/metrics").status_code == 200
        path.write_bytes(good)
        assert wait_for(url, "ready").json() == {"status": "ready"}


def test_a_server_started_on_a_broken_registry_answers_503_naming_it(make_repo: Any) -> None:
    root = repo(make_repo)
    path = root / "data" / "registry.json"
    path.write_bytes(BROKEN[0])
    with running(root) as url:
        ready = httpx.get(url + "/ready")
        assert ready.status_code == 503 and "views: must be an object" in ready.json()["detail"]
        resp = post(url, "/get-online-features", LOOKUP)
        assert resp.status_code == 503 and "malformed" in resp.json()["detail"]
        assert post(url, "/push", {"view": "stats", "rows": [{"driver_id": 1}]}).status_code < 500
        assert httpx.get(url + "/metrics").status_code == 200
