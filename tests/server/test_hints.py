"""HTTP answers that say what to do: did-you-mean in 404 bodies, no server path in a push response."""

from __future__ import annotations

from pathlib import Path

import httpx
import polars as pl
import pytest

from featurestore import FeatureStore
from tests.cli.test_ux import NOW, VIEWS
from tests.server.test_routes import post, running


@pytest.fixture
def url(make_repo):
    root: Path = make_repo({"views.py": VIEWS})
    (root / "data").mkdir()
    pl.DataFrame(
        {"driver_id": [1, 2], "event_timestamp": [NOW, NOW], "rate": [0.1, 0.2], "trips": [1, 2]}
    ).write_parquet(root / "data" / "stats.parquet")
    store = FeatureStore(root)
    store.apply()
    store.ingest()
    store.materialize()
    with running(root) as base:
        yield base


@pytest.mark.parametrize(
    ("path", "body", "hint"),
    [
        ("/get-online-features", {"features": ["stats:rat"], "entities": {"driver_id": [1]}}, "did you mean 'rate'?"),
        ("/get-online-features", {"features": ["stat:rate"], "entities": {"driver_id": [1]}}, "did you mean 'stats'?"),
        ("/get-online-features", {"feature_service": "modle", "entities": {"driver_id": [1]}}, "did you mean 'model'?"),
        ("/rows", {"view": "stat", "entities": {"driver_id": [1]}}, "did you mean 'stats'?"),
        ("/push", {"view": "stat", "rows": [{"driver_id": 1}]}, "did you mean 'stats'?"),
    ],
)
def test_unknown_names_answer_404_with_a_suggestion(url: str, path: str, body: dict, hint: str) -> None:
    resp = post(url, path, body)
    assert resp.status_code == 404, resp.text
    assert hint in resp.json()["detail"]


def test_a_push_response_names_the_quarantine_run_not_a_server_path(url: str, make_repo) -> None:
    when = NOW.isoformat()
    rows = [{"driver_id": 10 + i, "event_timestamp": when, "rate": 0.1, "trips": i} for i in range(40)]
    rows[0]["rate"] = 9.0  # fails in_range(0, 1): quarantined, within the 5% budget
    resp = post(url, "/push", {"view": "stats", "rows": rows})
    assert resp.status_code == 200, resp.text
    gate = resp.json()["gate"]
    assert gate["status"] == "quarantined" and gate["quarantine_run"] == gate["run_id"]
    assert "quarantine_file" not in gate and "/_quarantine" not in resp.text
    bad = post(url, "/push", {"view": "stats", "rows": [{**rows[1], "event_timestamp": "yesterday"}]})
    assert bad.status_code == 422
    detail = bad.json()["detail"]
    assert "'event_timestamp'" in detail and "'yesterday' is not a timestamp" in detail and "col(" not in detail
    assert httpx.get(url + "/health").status_code == 200
