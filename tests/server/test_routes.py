"""The HTTP server through real uvicorn: Feast-compatible shape, native rows, push, bad input, registry reload."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from featurestore import FeatureStore, GateRejectedError, __version__
from featurestore.client import FeatureClient
from featurestore.config import load_settings
from featurestore.server import create_app
from tests.conftest import free_port, write_repo
from tests.test_materialize import NOW, build, source_frame


@contextmanager
def running(root: Path, **env: str) -> Iterator[str]:
    """Serve ``root`` with uvicorn in a thread on a free loopback port; yield its base URL."""
    import uvicorn

    env = {"auth": "off", **env}  # auth is on by default; tests/server/test_auth.py covers it
    settings = load_settings(root, env={f"FEATURESTORE_{k.upper()}": v for k, v in env.items()})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, redis_server: Any) -> Iterator[tuple[str, Path]]:
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    base = tmp_path_factory.mktemp("served")

    make_repo = functools.partial(write_repo, base / "repo")

    root = build(make_repo, redis_server.url)
    FeatureStore(root).materialize()
    with running(root, max_entities="50", max_body_bytes="4000") as url:
        yield url, root


def post(url: str, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return httpx.post(url + path, content=content, headers={"content-type": "application/json"}, timeout=5)


def test_feast_compatible_request_and_response(served: tuple[str, Path]) -> None:
    url, root = served
    resp = post(url, "/get-online-features", {"features": ["stats:b", "stats:a"], "entities": {"driver_id": [3, 999]}})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    data = resp.json()
    assert set(data) == {"metadata", "results"}
    assert data["metadata"] == {"feature_names": ["driver_id", "b", "a"]}
    assert [set(r) for r in data["results"]] == [{"values", "statuses", "event_timestamps"}] * 3
    keys, b, a = data["results"]
    assert keys["values"] == [3, 999] and keys["statuses"] == ["PRESENT", "PRESENT"]
    assert b["statuses"] == ["PRESENT", "NOT_FOUND"] and b["values"][1] is None
    expected = FeatureStore(root).get_online_features(["stats:b"], {"driver_id": [3]}).to_dict()["b"]
    assert b["values"][0] == expected[0]
    full = post(
        url,
        "/get-online-features",
        {"feature_service": "svc", "entities": {"driver_id": [3]}, "full_feature_names": True},
    ).json()
    assert full["metadata"]["feature_names"] == ["driver_id", "stats__a", "stats__b", "stats__s"]


def test_native_rows_splice_stored_rows(served: tuple[str, Path]) -> None:
    url, _ = served
    data = post(url, "/rows", {"view": "stats", "entities": {"driver_id": [3, 999]}}).json()
    assert data["columns"] == ["event_timestamp_us", "a", "b", "s", "created_us"]
    assert data["statuses"] == ["PRESENT", "NOT_FOUND"] and data["rows"][1] is None
    feast = post(url, "/get-online-features", {"features": ["stats:s"], "entities": {"driver_id": [3]}}).json()
    assert data["rows"][0][3] == feast["results"][1]["values"][0]


def test_python_client(served: tuple[str, Path]) -> None:
    url, _ = served
    with FeatureClient(url) as client:
        got = client.get_online_features("svc", {"driver_id": [3, 4]})
        assert got.feature_names == ["driver_id", "a", "b", "s"] and got.statuses()["b"] == ["PRESENT"] * 2
        assert client.get_online_features(["stats:b"], {"driver_id": [3]})["b"] == got["b"][:1]
        assert client.get_rows("stats", {"driver_id": [3]})["statuses"] == ["PRESENT"]
        assert client.ready()


BAD: list[tuple[str, Any, int, str]] = [
    ("malformed json", b'{"features": [', 400, "malformed JSON"),
    ("not an object", [1, 2], 400, "JSON object"),
    ("unknown view", {"features": ["nope:b"], "entities": {"driver_id": [1]}}, 404, "nope"),
    ("unknown feature", {"features": ["stats:zz"], "entities": {"driver_id": [1]}}, 404, "zz"),
    ("unknown service", {"feature_service": "nosvc", "entities": {"driver_id": [1]}}, 404, "nosvc"),
    ("no features", {"entities": {"driver_id": [1]}}, 422, "features"),
    ("features not strings", {"features": [1], "entities": {"driver_id": [1]}}, 422, "features"),
    ("missing entities", {"features": ["stats:b"]}, 422, "entities"),
    ("wrong key name", {"features": ["stats:b"], "entities": {"rider_id": [1]}}, 422, "rider_id"),
    ("wrong key type", {"features": ["stats:b"], "entities": {"driver_id": ["1.5"]}}, 422, "wrong type"),
    ("bool is not int", {"features": ["stats:b"], "entities": {"driver_id": [True]}}, 422, "wrong type"),
    (
        "integer past 64 bits",
        b'{"features": ["stats:b"], "entities": {"driver_id": [99999999999999999999999999]}}',
        422,
        "64-bit integer range",
    ),
    ("a float is not an integer", {"features": ["stats:b"], "entities": {"driver_id": [1.0]}}, 422, "wrong type"),
    (
        "past Int64 but within 64 bits",
        b'{"features": ["stats:b"], "entities": {"driver_id": [9223372036854775808]}}',
        422,
        "outside its range",
    ),
    (
        "digits past Int64",
        {"features": ["stats:b"], "entities": {"driver_id": ["9999999999999999999"]}},
        422,
        "outside its range",
    ),
    ("mismatched lengths", {"features": ["stats:b"], "entities": {"driver_id": [1, 2], "x": [1]}}, 422, "length"),
    ("empty entities", {"features": ["stats:b"], "entities": {"driver_id": []}}, 422, "no entities"),
    ("too many entities", {"features": ["stats:b"], "entities": {"driver_id": list(range(51))}}, 422, "too many"),
    ("body too large", {"features": ["stats:b"], "entities": {"driver_id": [1] * 3000}}, 413, "larger"),
    (
        "bad full names flag",
        {"features": ["stats:b"], "entities": {"driver_id": [1]}, "full_feature_names": 1},
        422,
        "",
    ),
]


@pytest.mark.parametrize(("body", "status", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_input_gets_a_clear_4xx(served: tuple[str, Path], body: Any, status: int, message: str) -> None:
    url, _ = served
    resp = post(url, "/get-online-features", body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"view": "nope", "entities": {"driver_id": [1]}}, 404),
        ({"view": 3, "entities": {"driver_id": [1]}}, 422),
        ({"view": "stats", "entities": {"driver_id": ["x"]}}, 422),
        ({"view": "stats", "entities": {"other": [1]}}, 422),
        (b"nope", 400),
    ],
)
def test_rows_bad_input(served: tuple[str, Path], body: Any, status: int) -> None:
    url, _ = served
    assert post(url, "/rows", body).status_code == status


def test_a_huge_unknown_name_gets_a_404_and_does_not_hold_the_server(served: tuple[str, Path]) -> None:
    # A 900 kB name (under the default 1 MiB body limit) is echoed in the 404; the error's redaction
    # was quadratic in it and held the server for many minutes. A real `featurestore serve` process,
    # so the timeout (a hang guard, not a timing) can fire while the server is stuck.
    from tests.server.conftest import start_server, stop_server

    _, root = served
    server = start_server(root, env={"FEATURESTORE_AUTH": "off"})
    try:
        body = orjson.dumps({"feature_service": "x" * 900_000, "entities": {"driver_id": [1]}})
        resp = httpx.post(server.url + "/get-online-features", content=body, timeout=60)
        assert resp.status_code == 404 and "unknown feature service" in resp.json()["detail"]
        assert httpx.get(server.url + "/health", timeout=60).status_code == 200
    finally:
        stop_server(server)


@pytest.mark.parametrize(
    ("query", "name"), [("limit=many", "limit"), ("limit=0", "limit"), ("limit=99999999999999999999", "limit")]
)
def test_a_refused_query_parameter_gets_one_detail_string_naming_it(
    served: tuple[str, Path], query: str, name: str
) -> None:
    # FastAPI answered a list of objects as "detail"; every error is {"detail": "..."} (the UI shows it).
    url, _ = served
    resp = httpx.get(f"{url}/reports?{query}", timeout=5)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert isinstance(detail, str) and f"query parameter {name!r}" in detail, detail


def test_health_ready_and_docs(served: tuple[str, Path]) -> None:
    url, _ = served
    assert httpx.get(url + "/health").json() == {"status": "ok", "version": __version__}
    assert httpx.get(url + "/ready").status_code == 200
    spec = httpx.get(url + "/openapi.json").json()
    assert {"/get-online-features", "/rows", "/push", "/health", "/ready"} <= set(spec["paths"])
    assert spec["info"]["version"] == __version__
    assert httpx.get(url + "/docs").status_code == 200


def test_push_over_http(served: tuple[str, Path], monkeypatch: Any) -> None:
    url, _ = served
    row = {"driver_id": 500, "event_timestamp": NOW.isoformat(), "a": 0.25, "b": 5, "s": "pushed"}
    resp = post(url, "/push", {"view": "stats", "rows": [row]})
    assert resp.status_code == 200 and resp.json()["rows_written"] == 1
    got = post(url, "/get-online-features", {"features": ["stats:s"], "entities": {"driver_id": [500]}}).json()
    assert got["results"][1]["values"] == ["pushed"]
    assert post(url, "/push", {"view": "stats", "rows": [{"driver_id": 1}]}).status_code == 422
    assert post(url, "/push", {"view": "nope", "rows": [row]}).status_code == 404

    import featurestore.serving.push as push

    class Result:
        def to_dict(self) -> dict[str, Any]:
            return {"status": "rejected"}

    def rejecting(*args: Any) -> Any:
        def gate(df: Any, **batch: Any) -> Any:
            raise GateRejectedError("too many bad rows", Result())

        return gate

    monkeypatch.setattr(push, "gate_for", rejecting)
    resp = post(url, "/push", {"view": "stats", "rows": [{**row, "driver_id": 501}]})
    assert resp.status_code == 422 and resp.json()["gate"] == {"status": "rejected"}
    got = post(url, "/get-online-features", {"features": ["stats:s"], "entities": {"driver_id": [501]}}).json()
    assert got["results"][1]["statuses"] == ["NOT_FOUND"]


@pytest.mark.parametrize(
    ("rows", "named"),
    [
        ([1, 2], ["rows must be objects", "row 0 is 1"]),
        ([None], ["rows must be objects", "row 0 is None"]),
        ([{"event_timestamp": 1.5}], ["'event_timestamp'", "Float64", "not a timestamp"]),
        ([{"created": 5}], ["'created'", "Int64", "not a timestamp"]),
    ],
)
def test_push_errors_name_the_row_or_column_at_fault(served: tuple[str, Path], rows: Any, named: list[str]) -> None:
    url, _ = served
    row = {"driver_id": 502, "event_timestamp": NOW.isoformat(), "a": 0.25, "b": 5, "s": "x"}
    body = [r if not isinstance(r, dict) else {**row, **r} for r in rows]
    resp = post(url, "/push", {"view": "stats", "rows": body})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert "'stats'" in detail and all(n in detail for n in named), detail
    got = post(url, "/get-online-features", {"features": ["stats:s"], "entities": {"driver_id": [502]}}).json()
    assert got["results"][1]["statuses"] == ["NOT_FOUND"]


def test_registry_reload_without_restart(make_repo: Any) -> None:
    root = build(make_repo, "sqlite:///data/online.db")
    FeatureStore(root).materialize()
    with running(root) as url:
        body = {"features": ["stats:c"], "entities": {"driver_id": [1]}}
        assert post(url, "/get-online-features", body).status_code == 404
        views = root / "definitions" / "views.py"
        views.write_text(views.read_text().replace('Feature("s", String)', 'Feature("s", String), Feature("c", Int64)'))
        source_frame().with_columns(c=9).write_parquet(root / "data" / "stats.parquet")
        store = FeatureStore(root)
        store.apply()
        store.ingest()
        store.materialize()
        deadline = time.monotonic() + 5
        while (resp := post(url, "/get-online-features", body)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert resp.status_code == 200 and resp.json()["results"][1]["values"] == [9]
