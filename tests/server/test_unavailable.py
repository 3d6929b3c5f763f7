"""When Redis goes away the server answers 503 within a bounded time, and recovers by itself."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from featurestore import FeatureStore
from tests.conftest import RedisServer
from tests.server.test_routes import post, running
from tests.test_materialize import build


def test_503_when_redis_stops_then_recovery(make_repo: Any, tmp_path: Path) -> None:
    import httpx

    redis = RedisServer(tmp_path)
    redis.start()
    try:
        root = build(make_repo, redis.url)
        FeatureStore(root).materialize()
        body = {"features": ["stats:b"], "entities": {"driver_id": [1]}}
        with running(root, online_timeout="0.3") as url:
            assert post(url, "/get-online-features", body).status_code == 200
            redis.stop()
            for _ in range(3):  # the pooled connection breaks, then reconnects fail fast
                t0 = time.monotonic()
                resp = post(url, "/get-online-features", body)
                assert resp.status_code == 503 and "unreachable" in resp.json()["detail"]
                assert time.monotonic() - t0 < 1.5
            assert httpx.get(url + "/ready").status_code == 503
            assert httpx.get(url + "/health").status_code == 200
            redis.start()  # same port, empty (no persistence): materialize again
            FeatureStore(root).materialize()
            deadline = time.monotonic() + 5
            while (resp := post(url, "/get-online-features", body)).status_code != 200:
                assert time.monotonic() < deadline, resp.text
                time.sleep(0.1)
            assert resp.json()["results"][1]["statuses"] == ["PRESENT"]
            assert httpx.get(url + "/ready").status_code == 200
    finally:
        redis.stop()
