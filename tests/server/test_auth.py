"""API keys: hashes in the config, Bearer or X-API-Key, 401/403, scopes, open probes, the CLI and no secrets shown."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from featurestore import FeatureStore
from featurestore.config import load_settings, parse_api_keys
from featurestore.errors import ConfigError
from featurestore.server import create_app
from featurestore.server.auth import KeyRing, hash_key
from tests.conftest import write_repo
from tests.test_materialize import build

READER, SVC_ONLY, PUSHER = "fs_reader_key", "fs_service_key", "fs_push_key"
SVC_PUSHER = "fs_svc_pusher_key"
KEYS = [
    {"name": "reader", "sha256": hash_key(READER)},
    {"name": "svc-only", "sha256": hash_key(SVC_ONLY), "services": ["svc"]},
    {"name": "pusher", "sha256": hash_key(PUSHER), "views": ["stats"], "push": True},
    {"name": "svc-pusher", "sha256": hash_key(SVC_PUSHER), "services": ["svc"], "push": True},
]
LOOKUP = {"features": ["stats:b"], "entities": {"driver_id": [1]}}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    base = tmp_path_factory.mktemp("auth")

    make_repo = functools.partial(write_repo, base / "repo")

    root = build(make_repo, "sqlite:///data/online.db")
    FeatureStore(root).materialize()
    settings = load_settings(root, env={"FEATURESTORE_API_KEYS": json.dumps(KEYS)})
    assert settings.auth == "on"  # the default
    with TestClient(create_app(settings)) as c:
        yield c


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_no_or_wrong_key_is_401(client: TestClient) -> None:
    for headers in ({}, bearer("nope"), {"X-API-Key": ""}, {"Authorization": "Basic " + READER}):
        resp = client.post("/get-online-features", json=LOOKUP, headers=headers)
        assert resp.status_code == 401, headers
        assert resp.headers["www-authenticate"] == "Bearer"
        assert READER not in resp.text


def test_bearer_and_x_api_key_both_work(client: TestClient) -> None:
    assert client.post("/get-online-features", json=LOOKUP, headers=bearer(READER)).status_code == 200
    assert client.post("/get-online-features", json=LOOKUP, headers={"X-API-Key": READER}).status_code == 200
    assert client.post(
        "/rows", json={"view": "stats", "entities": {"driver_id": [1]}}, headers=bearer(READER)
    ).is_success


def test_probes_metrics_and_docs_stay_open(client: TestClient) -> None:
    for path in ("/health", "/ready", "/metrics", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_service_scope(client: TestClient) -> None:
    svc = {"feature_service": "svc", "entities": {"driver_id": [1]}}
    assert client.post("/get-online-features", json=svc, headers=bearer(SVC_ONLY)).status_code == 200
    resp = client.post("/get-online-features", json=LOOKUP, headers=bearer(SVC_ONLY))
    assert resp.status_code == 403 and "svc-only" in resp.json()["detail"]
    rows = client.post("/rows", json={"view": "stats", "entities": {"driver_id": [1]}}, headers=bearer(SVC_ONLY))
    assert rows.status_code == 403


def test_a_service_key_sees_its_views_in_the_ui_but_not_their_rows(client: TestClient) -> None:
    """The API lets a service key read its views through the service only: the UI shows the views'
    definitions and reports, but not their quarantined rows, which hold every column of the view."""
    assert client.get("/ui/api/views/stats", headers=bearer(SVC_ONLY)).status_code == 200
    assert client.get("/ui/api/quality/stats", headers=bearer(SVC_ONLY)).status_code == 200
    rows = client.get("/ui/api/quarantine/stats", headers=bearer(SVC_ONLY))
    assert rows.status_code == 403 and "through its feature services only" in rows.json()["detail"]
    assert client.get("/ui/api/quarantine/stats", headers=bearer(PUSHER)).status_code == 200  # lists the view
    assert client.get("/ui/api/quarantine/stats", headers=bearer(READER)).status_code == 200  # no limit


def test_view_scope_allows_features_of_that_view(client: TestClient) -> None:
    assert client.post("/get-online-features", json=LOOKUP, headers=bearer(PUSHER)).status_code == 200


def test_push_needs_a_push_key(client: TestClient) -> None:
    from tests.test_materialize import NOW

    row = {"driver_id": 1, "event_timestamp": NOW.isoformat(), "a": 0.5, "b": 3, "s": "x"}
    body = {"view": "stats", "rows": [row]}
    resp = client.post("/push", json=body, headers=bearer(READER))
    assert resp.status_code == 403 and "may not push" in resp.json()["detail"]
    assert client.post("/push", json=body, headers=bearer(PUSHER)).status_code == 200


def test_a_push_key_pushes_only_where_it_may_read(client: TestClient) -> None:
    """A key scoped to a service may push to that service's views only (over HTTP, before the view is looked up)."""
    from tests.test_materialize import NOW

    row = {"driver_id": 1, "event_timestamp": NOW.isoformat(), "a": 0.5, "b": 3, "s": "x"}
    assert client.post("/push", json={"view": "stats", "rows": [row]}, headers=bearer(SVC_PUSHER)).status_code == 200
    other = client.post("/push", json={"view": "other", "rows": [row]}, headers=bearer(SVC_PUSHER))
    assert other.status_code == 403 and "only to views it may read" in other.json()["detail"]


SCOPES = {"svc": ["stats"], "svc2": ["other"]}


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ({}, set()),  # push not allowed at all
        ({"push": True}, {"stats", "other", "third"}),  # no read limit: every view
        ({"push": True, "views": ["stats"]}, {"stats"}),
        ({"push": True, "services": ["svc"]}, {"stats"}),
        ({"push": True, "services": ["svc", "svc2"]}, {"stats", "other"}),
        ({"push": True, "services": ["svc"], "views": ["third"]}, {"stats", "third"}),
        ({"push": True, "services": ["unknown"]}, set()),
        ({"services": ["svc"], "views": ["stats"]}, set()),  # readers only
        ({"push_views": ["third"]}, {"third"}),  # push_views says where, whatever the reads
        ({"push": True, "services": ["svc"], "push_views": ["other"]}, {"other"}),
        ({"push": True, "push_views": []}, set()),
    ],
)
def test_every_combination_of_push_scopes(entry: dict[str, Any], allowed: set[str]) -> None:
    from featurestore.errors import ForbiddenError, RequestError
    from featurestore.server.auth import check_push

    (key,) = parse_api_keys([{"name": "k", "sha256": hash_key("x"), **entry}])
    for view in ("stats", "other", "third"):
        try:
            check_push(key, view, lambda service: SCOPES.get(service, []))
            ok = True
        except RequestError as exc:
            assert isinstance(exc, ForbiddenError) and "'k'" in str(exc)
            ok = False
        assert ok == (view in allowed), (entry, view)
    check_push(None, "stats", lambda service: [])  # auth off: no key, no limit


def test_reports_follow_the_key_scope(client: TestClient) -> None:
    assert client.get("/reports").status_code == 401
    got = client.get("/reports", params={"view": "stats", "limit": 5}, headers=bearer(READER))
    assert got.status_code == 200 and all(r["view"] == "stats" for r in got.json())
    assert client.get("/reports", params={"limit": 0}, headers=bearer(READER)).status_code == 422
    assert client.get("/reports", params={"view": "other"}, headers=bearer(SVC_ONLY)).status_code == 403


def test_keyring_compares_hashes() -> None:
    ring = KeyRing(parse_api_keys(KEYS))
    assert ring.authenticate([(b"x-api-key", READER.encode())]).name == "reader"  # type: ignore[union-attr]
    assert ring.authenticate([(b"authorization", b"bearer " + PUSHER.encode())]).name == "pusher"  # type: ignore[union-attr]
    assert ring.authenticate([(b"x-api-key", hash_key(READER).encode())]) is None  # the hash is not the key


def test_config_refuses_plain_keys_and_bad_hashes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sha256"):
        parse_api_keys([{"name": "x", "key": "plain"}])
    with pytest.raises(ConfigError, match="64 hex"):
        parse_api_keys('[{"name": "x", "sha256": "abc"}]')
    with pytest.raises(ConfigError, match="auth"):
        load_settings(tmp_path, env={"FEATURESTORE_AUTH": "maybe"})
    (tmp_path / "featurestore.toml").write_text(
        f'auth = "on"\n[[api_keys]]\nname = "t"\nsha256 = "{hash_key("k")}"\nservices = ["svc"]\npush = false\n'
    )
    settings = load_settings(tmp_path, env={})
    assert settings.api_keys[0].services == ("svc",)
    assert hash_key("k") not in repr(settings)
    assert load_settings(tmp_path, env={"FEATURESTORE_API_KEYS": ""}).api_keys == ()


def test_new_api_key_cli_prints_key_once_and_its_hash() -> None:
    from featurestore.cli.main import app

    out = CliRunner().invoke(app, ["new-api-key", "--name", "ranker", "--services", "svc", "--push"]).output
    key = next(line for line in out.splitlines() if line.startswith("fs_"))
    snippet = out[out.index("[[api_keys]]") :]
    import tomllib

    (entry,) = tomllib.loads(snippet)["api_keys"]
    assert entry == {"name": "ranker", "sha256": hash_key(key), "services": ["svc"], "push": True}
    assert out.count(key) == 1


def test_auth_off_needs_no_key(tmp_path: Path, make_repo: Any) -> None:
    root = build(make_repo, "sqlite:///data/online.db")
    with TestClient(create_app(load_settings(root, env={"FEATURESTORE_AUTH": "off"}))) as c:
        assert c.post("/get-online-features", json=LOOKUP).status_code == 200
