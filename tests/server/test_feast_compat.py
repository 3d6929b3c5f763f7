"""Request shapes a Feast HTTP client sends: unused entity columns, integer keys as strings, service + features."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from featurestore import FeatureStore, RequestError
from tests.conftest import write_repo
from tests.server.test_routes import post, running

VIEWS = """
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource, String
driver = Entity("driver", join_keys={"driver_id": Int64})
rider = Entity("rider", join_keys={"rider_id": String})
stats = FeatureView("stats", [driver], ParquetSource("stats.parquet"), [Feature("a", Float64), Feature("b", Int64)])
trips = FeatureView("trips", [rider], ParquetSource("trips.parquet"), [Feature("n", Int64)])
svc = FeatureService("svc", features=[stats])
"""


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_repo(
        tmp_path_factory.mktemp("compat") / "repo",
        {"views.py": VIEWS},
        'project = "compat"\nonline = "sqlite:///online.db"\n',
    )
    now = datetime.now(UTC).replace(microsecond=0)
    pl.DataFrame(
        {"driver_id": [1001, 1002], "event_timestamp": [now, now], "a": [0.5, None], "b": [7, 8]}
    ).write_parquet(root / "stats.parquet")
    pl.DataFrame({"rider_id": ["r1"], "event_timestamp": [now], "n": [3]}).write_parquet(root / "trips.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    store.materialize()
    return root


@pytest.fixture(scope="module")
def url(repo: Path) -> Iterator[str]:
    with running(repo) as base:
        yield base


def test_entity_columns_the_views_do_not_use_are_echoed(url: str) -> None:
    # Feast echoes every entity column of the request, in its order, with PRESENT statuses.
    body = {"features": ["stats:a"], "entities": {"rider_id": ["r1", "r9"], "driver_id": [1001, 1002]}}
    resp = post(url, "/get-online-features", body)
    assert resp.status_code == 200, resp.text
    data = resp.json()
    assert data["metadata"]["feature_names"] == ["rider_id", "driver_id", "a"]
    rider, driver, a = data["results"]
    assert rider["values"] == ["r1", "r9"] and rider["statuses"] == ["PRESENT", "PRESENT"]
    assert driver["values"] == [1001, 1002]
    assert a["values"] == [0.5, None] and a["statuses"] == ["PRESENT", "NULL_VALUE"]


def test_unused_entity_columns_through_a_service_and_the_sdk(url: str, repo: Path) -> None:
    body = {"feature_service": "svc", "entities": {"driver_id": [1001], "rider_id": ["r1"]}}
    resp = post(url, "/get-online-features", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["metadata"]["feature_names"] == ["driver_id", "rider_id", "a", "b"]
    sdk = FeatureStore(repo).get_online_features(["stats:b"], {"rider_id": ["x"], "driver_id": [1002]})
    assert sdk.to_dict() == {"rider_id": ["x"], "driver_id": [1002], "b": [8]}


@pytest.mark.parametrize(
    ("entities", "message"),
    [
        ({"driver_id": [1001], "nobody_id": [1]}, "nobody_id"),  # no entity declares it
        ({"rider_id": ["r1"]}, "driver_id"),  # a requested view's key is still required
        ({"driver_id": [1001], "rider_id": ["r1", "r2"]}, "same length"),
    ],
)
def test_unknown_or_missing_entity_columns_are_still_refused(url: str, entities: dict[str, Any], message: str) -> None:
    resp = post(url, "/get-online-features", {"features": ["stats:a"], "entities": entities})
    assert resp.status_code == 422 and message in resp.json()["detail"]


def test_int_keys_sent_as_strings_are_converted(url: str, repo: Path) -> None:
    resp = post(url, "/get-online-features", {"features": ["stats:b"], "entities": {"driver_id": ["1001", 1002, "-3"]}})
    assert resp.status_code == 200, resp.text
    keys, b = resp.json()["results"]
    assert keys["values"] == [1001, 1002, -3]  # echoed as the integers they stand for, as Feast does
    assert b["values"] == [7, 8, None] and b["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
    rows = post(url, "/rows", {"view": "stats", "entities": {"driver_id": ["1002"]}})
    assert rows.status_code == 200 and rows.json()["statuses"] == ["PRESENT"]
    sdk = FeatureStore(repo).get_online_features(["stats:b"], {"driver_id": ["1001"]})
    assert sdk.to_dict() == {"driver_id": [1001], "b": [7]}


@pytest.mark.parametrize("value", ["1.5", "abc", "", " 1", "1e3", "0x10", "1_000", True, 1.0, None])
def test_int_keys_that_are_not_exact_integers_are_refused(url: str, value: Any) -> None:
    for path, body in [
        ("/get-online-features", {"features": ["stats:b"], "entities": {"driver_id": [value]}}),
        ("/rows", {"view": "stats", "entities": {"driver_id": [value]}}),
    ]:
        resp = post(url, path, body)
        assert resp.status_code == 422, (path, value, resp.text)
        assert "driver_id" in resp.json()["detail"]


def test_string_keys_stay_strings(url: str) -> None:
    resp = post(url, "/get-online-features", {"features": ["trips:n"], "entities": {"rider_id": [1]}})
    assert resp.status_code == 422 and "rider_id" in resp.json()["detail"]


def test_feature_service_and_features_together_are_refused(url: str) -> None:
    body = {"feature_service": "svc", "features": ["trips:n"], "entities": {"driver_id": [1001]}}
    resp = post(url, "/get-online-features", body)
    assert resp.status_code == 422
    detail = resp.json()["detail"]
    assert "feature_service" in detail and "features" in detail


def test_sdk_refuses_an_unknown_entity_column(repo: Path) -> None:
    with pytest.raises(RequestError, match="nobody_id"):
        FeatureStore(repo).get_online_features(["stats:a"], {"driver_id": [1], "nobody_id": [2]})


def test_the_readme_lists_the_deliberate_differences() -> None:
    # A stored null is NULL_VALUE here (Feast's protocol) and PRESENT in Feast's server: documented, on purpose.
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("Deliberate differences from Feast", 1)[1].split("\n\n", 2)[1]
    assert "NULL_VALUE" in section and "OUTSIDE_MAX_AGE" in section and "feature_service" in section


def offline_b(repo: Path, driver: int) -> list[Any]:
    """Driver ``driver``'s ``b`` values in the offline store."""
    store = FeatureStore(repo)
    files = store.layout.files("stats", store.state().view("stats").version)
    rows = pl.concat([pl.read_parquet(f) for f in files], how="diagonal")
    return rows.filter(pl.col("driver_id") == driver).get_column("b").to_list()


def online_b(url: str, driver: int) -> Any:
    resp = post(url, "/get-online-features", {"features": ["stats:b"], "entities": {"driver_id": [driver]}})
    return resp.json()["results"][1]["values"][0]


@pytest.mark.parametrize(
    ("to", "online", "offline"),
    [("online", True, False), ("offline", False, True), ("ONLINE_AND_OFFLINE", True, True), (None, True, False)],
)
def test_feast_push_modes_write_where_they_say(
    url: str, repo: Path, to: str | None, online: bool, offline: bool
) -> None:
    driver = {"online": 6002, "offline": 6001, "ONLINE_AND_OFFLINE": 6004, None: 6005}[to]
    now = datetime.now(UTC).isoformat()
    body: dict[str, Any] = {
        "push_source_name": "stats",
        "df": {"driver_id": [driver], "event_timestamp": [now], "a": [1.0], "b": [driver]},
    }
    if to is not None:
        body["to"] = to
    reports = len(FeatureStore(repo).reports("stats"))
    resp = post(url, "/push", body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["gate"]["status"] == "passed" and len(FeatureStore(repo).reports("stats")) == reports + 1
    assert online_b(url, driver) == (driver if online else None)
    assert offline_b(repo, driver) == ([driver] if offline else [])


@pytest.mark.parametrize("to", ["bogus", "", 1, None, ["offline"]])
def test_an_unknown_push_mode_is_refused_naming_it(url: str, to: Any) -> None:
    df = {"driver_id": [6003], "event_timestamp": ["2026-01-01"], "a": [1.0], "b": [1]}
    body = {"push_source_name": "stats", "df": df}
    resp = post(url, "/push", {**body, "to": to})
    assert resp.status_code == 422, resp.text
    detail = resp.json()["detail"]
    assert repr(to) in detail and "'online', 'offline', 'online_and_offline'" in detail
    assert online_b(url, 6003) is None


def test_push_mode_and_flags_together_or_neither_store_are_refused(url: str) -> None:
    body = {"view": "stats", "rows": [{"driver_id": 6006, "event_timestamp": "2026-01-01", "a": 1.0, "b": 1}]}
    both = post(url, "/push", {**body, "to": "offline", "to_offline": True})
    assert both.status_code == 422 and "'to'" in both.json()["detail"] and "to_offline" in both.json()["detail"]
    neither = post(url, "/push", {**body, "to_online": False})
    assert neither.status_code == 422 and "'stats'" in neither.json()["detail"]
