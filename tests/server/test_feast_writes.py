"""The routes Feast's SDK and CLI call when their online store is ``type: remote``, over real HTTP:
``/write-to-online-store`` (its push, write_to_online_store), ``/materialize`` and ``/materialize-incremental``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from featurestore import FeatureStore
from featurestore.server.auth import hash_key
from tests.conftest import write_repo
from tests.server.test_routes import post, running

VIEWS = """
from datetime import timedelta
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource, String
driver = Entity("driver", join_keys={"driver_id": Int64})
rider = Entity("rider", join_keys={"rider_id": String})
stats = FeatureView("stats", [driver], ParquetSource("stats.parquet"), [Feature("a", Float64), Feature("b", Int64)])
trips = FeatureView("trips", [rider], ParquetSource("trips.parquet"), [Feature("n", Int64)], ttl=timedelta(days=3650))
svc = FeatureService("svc", features=[stats[["b"]]])
"""
NOW = datetime.now(UTC).replace(microsecond=0)
PUSHER, READER, STATS_ONLY = "fs_feast_pusher", "fs_feast_reader", "fs_feast_stats_pusher"
KEYS = [
    {"name": "pusher", "sha256": hash_key(PUSHER), "push": True},
    {"name": "reader", "sha256": hash_key(READER)},
    {"name": "stats-pusher", "sha256": hash_key(STATS_ONLY), "push_views": ["stats"]},
]


def make_repo(root: Path) -> Path:
    root = write_repo(root, {"views.py": VIEWS}, 'project = "feastw"\nonline = "sqlite:///online.db"\n')
    old = NOW - timedelta(days=2)
    pl.DataFrame(
        {
            "driver_id": [1, 1, 2],
            "event_timestamp": [old - timedelta(days=1), old, old],
            "a": [0.1, 0.2, 0.3],
            "b": [1, 2, 3],
        }
    ).write_parquet(root / "stats.parquet")
    pl.DataFrame({"rider_id": ["r1"], "event_timestamp": [old], "n": [7]}).write_parquet(root / "trips.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    return root


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running(make_repo(tmp_path_factory.mktemp("feastw") / "repo")) as base:
        yield base


def lookup(url: str, feature: str, key: str, values: list[Any]) -> dict[str, Any]:
    resp = post(url, "/get-online-features", {"features": [feature], "entities": {key: values}})
    assert resp.status_code == 200, resp.text
    return resp.json()["results"][1]  # type: ignore[no-any-return]


def feast_write_body(view: str, columns: dict[str, list[Any]], when: datetime) -> dict[str, Any]:
    """What Feast's RemoteOnlineStore.online_write_batch posts: naive UTC ISO times, a ``created`` column of nulls."""
    n = len(next(iter(columns.values())))
    naive = when.astimezone(UTC).replace(tzinfo=None).isoformat()
    df = {**columns, "event_timestamp": [naive] * n, "created": [None] * n}
    return {"feature_view_name": view, "df": df, "allow_registry_cache": False}


def test_feast_remote_write_is_served_online(url: str) -> None:
    when = NOW - timedelta(seconds=30, microseconds=250)
    body = feast_write_body("stats", {"driver_id": [501, 502], "a": [0.5, None], "b": [5, 6]}, when)
    resp = post(url, "/write-to-online-store", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["rows_written"] == 2
    got = lookup(url, "stats:b", "driver_id", [501, 502])
    assert got["values"] == [5, 6] and got["statuses"] == ["PRESENT", "PRESENT"]
    assert got["event_timestamps"][0].startswith(when.strftime("%Y-%m-%dT%H:%M:%S"))  # naive read as UTC
    newer = feast_write_body("stats", {"driver_id": [501], "a": [1.5], "b": [50]}, when + timedelta(seconds=1))
    assert post(url, "/write-to-online-store", newer).status_code == 200
    assert lookup(url, "stats:b", "driver_id", [501])["values"] == [50]


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"df": {"driver_id": [1]}}, 422, "feature_view_name"),
        ({"feature_view_name": 5, "df": {"driver_id": [1]}}, 422, "feature_view_name"),
        ({"feature_view_name": "stats"}, 422, "'df'"),
        ({"feature_view_name": "stats", "df": [{"driver_id": 1}]}, 422, "'df'"),
        ({"feature_view_name": "stats", "df": {}}, 422, "'df'"),
        ({"feature_view_name": "nope", "df": {"driver_id": [1]}}, 404, "nope"),
        ({"feature_view_name": "stats", "df": {"driver_id": [1]}, "transform_on_write": 0}, 422, "transform_on_write"),
        ({"feature_view_name": "stats", "df": {"driver_id": [1], "event_timestamp": ["x"]}}, 422, "missing"),
    ],
)
def test_bad_remote_writes_are_refused_naming_the_field(
    url: str, body: dict[str, Any], status: int, named: str
) -> None:
    resp = post(url, "/write-to-online-store", body)
    assert resp.status_code == status, resp.text
    assert named in resp.json()["detail"]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"push_source_name": 5, "df": {"driver_id": [1]}}, "'push_source_name'"),
        ({"push_source_name": "stats", "df": []}, "'df'"),
        ({"push_source_name": "stats"}, "'df'"),
        ({"view": "stats", "rows": []}, "'rows'"),
        ({}, "'view'"),
    ],
)
def test_push_errors_name_the_field_the_client_sent(url: str, body: dict[str, Any], named: str) -> None:
    resp = post(url, "/push", body)
    assert resp.status_code == 422, resp.text
    assert named in resp.json()["detail"]


def test_materialize_over_http_as_feast_sends_it(url: str) -> None:
    # `feast materialize START END --views trips` with a remote online store: naive ISO times.
    body = {
        "start_ts": (NOW - timedelta(days=30)).replace(tzinfo=None).isoformat(),
        "end_ts": NOW.replace(tzinfo=None).isoformat(),
        "feature_views": ["trips"],
        "disable_event_timestamp": False,
        "full_feature_names": False,
    }
    resp = post(url, "/materialize", body)
    assert resp.status_code == 200, resp.text
    assert [r["view"] for r in resp.json()["results"]] == ["trips"]
    assert lookup(url, "trips:n", "rider_id", ["r1"])["values"] == [7]
    everything = post(url, "/materialize", {"disable_event_timestamp": True, "feature_views": None})
    assert everything.status_code == 200, everything.text
    assert sorted(r["view"] for r in everything.json()["results"]) == ["stats", "trips"]


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"end_ts": "2026-01-01T00:00:00"}, 422, "start_ts"),
        ({"start_ts": "2026-01-02", "end_ts": "2026-01-01"}, 422, "before"),
        ({"start_ts": "2026-01-01", "end_ts": "soon"}, 422, "end_ts"),
        ({"start_ts": 1, "end_ts": "2026-01-01"}, 422, "start_ts"),
        ({"disable_event_timestamp": "yes"}, 422, "disable_event_timestamp"),
        ({"disable_event_timestamp": True, "feature_views": "trips"}, 422, "feature_views"),
        ({"disable_event_timestamp": True, "feature_views": ["nope"]}, 404, "nope"),
        ({"disable_event_timestamp": True, "version": "v2"}, 422, "version"),
    ],
)
def test_bad_materialize_requests_are_refused_naming_the_field(
    url: str, body: dict[str, Any], status: int, named: str
) -> None:
    resp = post(url, "/materialize", body)
    assert resp.status_code == status, resp.text
    assert named in resp.json()["detail"]


def test_materialize_incremental_and_an_end_before_the_watermark(url: str) -> None:
    end = datetime.now(UTC).isoformat()  # after the watermark of the runs above
    resp = post(url, "/materialize-incremental", {"end_ts": end, "feature_views": ["stats"]})
    assert resp.status_code == 200, resp.text
    assert lookup(url, "stats:a", "driver_id", [1, 2])["values"] == [0.2, 0.3]
    # Was a 500 (an OnlineStoreError): the caller's end precedes the view's watermark.
    early = post(url, "/materialize-incremental", {"end_ts": "2000-01-01T00:00:00Z", "feature_views": ["stats"]})
    assert early.status_code == 422, early.text
    assert "stats" in early.json()["detail"]
    for body in ({}, {"end_ts": None}, {"end_ts": "2026-13-01"}):
        bad = post(url, "/materialize-incremental", body)
        assert bad.status_code == 422 and "end_ts" in bad.json()["detail"], bad.text


def test_async_materialize_answers_202_then_writes(url: str) -> None:
    body = {"disable_event_timestamp": True, "feature_views": ["trips"]}
    maybe = httpx.post(url + "/materialize", params={"async": "maybe"}, json=body, timeout=10)
    assert maybe.status_code == 422 and "async" in maybe.json()["detail"], maybe.text
    resp = httpx.post(url + "/materialize", params={"async": "true"}, json=body, timeout=10)
    assert resp.status_code == 202, resp.text
    assert resp.json() == {"status": "accepted", "feature_views": ["trips"]}
    deadline = time.monotonic() + 60
    while post(url, "/materialize", body).status_code == 409:  # still running: another request is refused
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert lookup(url, "trips:n", "rider_id", ["r1"])["values"] == [7]


@pytest.fixture(scope="module")
def auth_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = make_repo(tmp_path_factory.mktemp("feastw-auth") / "repo")
    with running(root, auth="on", api_keys=json.dumps(KEYS)) as base:
        yield base


def test_writes_and_materialize_need_a_push_key(auth_url: str) -> None:
    write = feast_write_body("stats", {"driver_id": [9], "a": [0.9], "b": [9]}, NOW - timedelta(seconds=5))
    trips = feast_write_body("trips", {"rider_id": ["r9"], "n": [9]}, NOW - timedelta(seconds=5))
    mat = {"disable_event_timestamp": True, "feature_views": ["stats"]}
    mat_all = {"disable_event_timestamp": True}

    def call(path: str, body: dict[str, Any], key: str | None) -> int:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(auth_url + path, json=body, headers=headers, timeout=30).status_code

    for path, body in (("/write-to-online-store", write), ("/materialize", mat), ("/materialize-incremental", {})):
        assert call(path, body, None) == 401, path
        assert call(path, body, READER) == 403, path  # reads everything, may not write
    assert call("/write-to-online-store", write, PUSHER) == 200
    assert call("/write-to-online-store", write, STATS_ONLY) == 200
    assert call("/write-to-online-store", trips, STATS_ONLY) == 403  # not in its push_views
    assert call("/materialize", mat, STATS_ONLY) == 200
    assert call("/materialize", mat_all, STATS_ONLY) == 403  # every online view: trips too
    assert call("/materialize", mat_all, PUSHER) == 200
