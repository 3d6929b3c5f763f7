"""``/rows`` of an aggregation view over real HTTP: its windows at the request time, as ``/get-online-features``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from featurestore import FeatureStore
from tests.aggregation.brute import AGGREGATIONS
from tests.aggregation.conftest import VIEWS, frame
from tests.conftest import write_repo
from tests.server.test_routes import running


def test_rows_of_an_aggregation_view_are_its_windows_now(tmp_path: Path) -> None:
    root = write_repo(tmp_path / "repo", {"views.py": VIEWS}, 'project = "aggrows"\n')
    (root / "data").mkdir()
    frame([]).write_parquet(root / "data" / "events.parquet")
    fs = FeatureStore(root)
    fs.apply()
    now = datetime.now(UTC)
    fs.push(
        "exact",
        [
            {
                "card_id": 1,
                "event_timestamp": (now - timedelta(minutes=m)).isoformat(),
                "created": None,
                "amount": a,
                "qty": 1,
                "merchant": "x",
                "eid": f"e{m}",
            }
            for m, a in ((1, 2.0), (20, 5.0))
        ],
    )
    with running(root) as url:
        rows = httpx.post(url + "/rows", json={"view": "exact", "entities": {"card_id": [1, 2]}}, timeout=10)
        lookup = httpx.post(
            url + "/get-online-features",
            json={"features": [f"exact:{name}" for name, *_ in AGGREGATIONS], "entities": {"card_id": [1, 2]}},
            timeout=10,
        )
        unregistered = httpx.post(url + "/rows", json={"view": "tiled", "entities": {"card_id": [1]}}, timeout=10)
    assert rows.status_code == 200, rows.text
    body = rows.json()
    assert body["statuses"] == ["PRESENT", "PRESENT"]
    columns = body["columns"]
    assert columns[0] == "event_timestamp_us" and columns[-1] == "created_us"
    got = [dict(zip(columns, row, strict=True)) for row in body["rows"]]
    assert got[0]["n_10m"] == 1 and got[0]["n_1h"] == 2 and got[0]["sum_1h"] == 7.0 and got[0]["last_1h"] == 2.0
    assert got[1]["n_1h"] == 0 and got[1]["sum_1h"] == 0 and got[1]["mean_1h"] is None  # an empty window
    # the same values /get-online-features serves (both at the request's time; the windows hold minutes)
    names = lookup.json()["metadata"]["feature_names"]
    results = lookup.json()["results"]
    for name, column in zip(names, results, strict=True):
        if name in columns:
            assert column["values"] == [got[0][name], got[1][name]], name
    # a view nothing was pushed to or materialized yet: every window empty, not an error
    assert unregistered.status_code == 200 and unregistered.json()["statuses"] == ["PRESENT"]
    assert dict(zip(unregistered.json()["columns"], unregistered.json()["rows"][0], strict=True))["n_1h"] == 0
