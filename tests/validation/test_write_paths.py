"""The gate on the online write paths: materialize and push write nothing that fails it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import featurestore as fs
from featurestore.errors import GateRejectedError
from featurestore.validation import list_reports, read_quarantine
from tests.validation.helpers import BAD, VIEWS


def online_ids(store: fs.FeatureStore) -> set[int]:
    out = store.get_online_features(["items:x", "items:s"], {"id": list(range(20))})
    data = out.to_dict() if hasattr(out, "to_dict") else dict(out)
    present = [i for i, x, s in zip(data["id"], data["x"], data["s"], strict=True) if x is not None or s is not None]
    return set(present)


def regate(repo: Path, gate: str) -> fs.FeatureStore:
    """Change only the gate (the view version stays) and apply it."""
    (repo / "definitions" / "views.py").write_text(VIEWS.format(gate=gate))
    store = fs.FeatureStore(repo)
    store.apply()
    return store


def warned_repo(gated_repo: Callable[..., Path]) -> Path:
    """Bad rows reach the offline store under policy warn, so materialize has to re-check them."""
    repo = gated_repo("policy='warn'")
    store = fs.FeatureStore(repo)
    store.apply()
    store.ingest()
    return repo


def test_materialize_quarantines_rows_read_back_from_the_offline_store(gated_repo: Callable[..., Path]) -> None:
    store = regate(warned_repo(gated_repo), "max_bad_fraction=0.2")
    [result] = store.materialize()
    assert result.gate.status == "quarantined"
    assert online_ids(store) == set(range(20)) - set(BAD)
    q = read_quarantine(store.settings.offline_root, "items")
    assert set(q.filter(pl.col("_path") == "materialize").get_column("id").to_list()) == set(BAD)


def test_a_rejected_materialize_writes_nothing_online(gated_repo: Callable[..., Path]) -> None:
    store = regate(warned_repo(gated_repo), "policy='fail'")
    with pytest.raises(GateRejectedError):
        store.materialize()
    assert online_ids(store) == set()
    assert list_reports(store.settings.offline_root)[0]["path"] == "materialize"


def test_push_reports_rejected_rows_and_a_rejected_push_writes_nothing(gated_repo: Callable[..., Path]) -> None:
    repo = gated_repo("max_bad_fraction=0.5")
    store = fs.FeatureStore(repo)
    store.apply()
    ts = datetime(2026, 1, 2, tzinfo=UTC)
    rows = {"id": [1, 2], "event_timestamp": [ts, ts], "x": [5.0, 500.0], "s": ["a", "a"], "y": [1.0, 1.0]}
    result = store.push("items", pl.DataFrame(rows))
    gate = result.gate.to_dict()
    assert [r["ok"] for r in gate["rows"]] == [True, False]
    assert gate["rows"][1]["reasons"][0]["check"] == "in_range(0, 100)"
    assert online_ids(store) == {1}
    bad = {"id": [3, 4], "event_timestamp": [ts, ts], "x": [500.0, 600.0], "s": ["a", "a"], "y": [1.0, 1.0]}
    with pytest.raises(GateRejectedError) as info:
        store.push("items", pl.DataFrame(bad))
    assert [r["ok"] for r in info.value.result.to_dict()["rows"]] == [False, False]  # type: ignore[attr-defined]
    assert online_ids(store) == {1}


@pytest.mark.parametrize("to_offline", [False, True])
def test_a_pushed_value_of_the_wrong_type_fails_its_row_only(gated_repo: Callable[..., Path], to_offline: bool) -> None:
    store = fs.FeatureStore(gated_repo("max_bad_fraction=0.5"))
    store.apply()
    ts = datetime(2026, 1, 2, tzinfo=UTC).isoformat()
    rows = [
        {"id": 5, "event_timestamp": ts, "x": "abc", "s": "a", "y": 1.0, "created": ts},
        {"id": 6, "event_timestamp": ts, "x": 2.0, "s": "a", "y": 1.0, "created": ts},
    ]
    result = store.push("items", rows, to_offline=to_offline)
    gate = result.gate.to_dict()
    assert (gate["status"], result.rows_written) == ("quarantined", 1)
    dtype = {"check": "dtype", "column": "x", "value": "'abc' (String) is not Float64"}
    assert dtype in gate["rows"][0]["reasons"] and gate["rows"][1]["ok"]  # x is also not_null: both reasons
    assert online_ids(store) == {6}
    q = read_quarantine(store.settings.offline_root, "items")  # the row as pushed, with its reason
    assert q.select("id", "x", "_check", "_column", "_path").rows() == [(5, "abc", "dtype", "x", "push")]
    assert list_reports(store.settings.offline_root)[0]["rows_quarantined"] == 1
    if to_offline:
        spec = store.state().view("items")
        offline = pl.concat([pl.read_parquet(f) for f in store.layout.files("items", spec.version)], how="diagonal")
        assert offline.get_column("id").to_list() == [6]


def test_a_push_under_warn_writes_a_value_of_the_wrong_type_as_null(gated_repo: Callable[..., Path]) -> None:
    store = fs.FeatureStore(gated_repo("policy='warn'"))
    store.apply()
    ts = datetime(2026, 1, 2, tzinfo=UTC).isoformat()
    result = store.push("items", {"id": [7], "event_timestamp": [ts], "x": ["abc"], "s": ["a"], "y": [1.0]})
    assert result.gate.status == "warned" and result.rows_written == 1
    assert store.get_online_features(["items:x", "items:s"], {"id": [7]}).to_dict()["x"] == [None]


def test_quarantine_runs_holding_one_column_as_different_types_read_together(gated_repo: Callable[..., Path]) -> None:
    """The quarantine keeps values as pushed: x was a number in one run and a list in another, and
    read_quarantine and the UI's quarantine page failed with polars' SchemaError (no supertype)."""
    from featurestore.server.ui.quality import quarantine_page

    store = fs.FeatureStore(gated_repo("max_bad_fraction=1.0"))
    store.apply()
    ts = datetime(2026, 1, 2, tzinfo=UTC).isoformat()
    for i, x in enumerate([500.0, [1.0, 2.0], {"a": 1}, True], start=1):
        result = store.push("items", [{"id": i, "event_timestamp": ts, "x": x, "s": "a", "y": 1.0}])
        assert result.gate.rows_quarantined == 1
    assert online_ids(store) == set()
    root = store.settings.offline_root
    q = read_quarantine(root, "items").sort("id")
    # as written, each in its own run: text, never coerced to one run's type (True is not 1.0); an
    # object for a number is taken out before typing (push_batch): null, its value in the reason
    assert q.select("id", "x").rows() == [(1, "500.0"), (2, "[1.0,2.0]"), (3, None), (4, "true")]
    assert "{'a': 1}" in str(q.filter(pl.col("id") == 3).row(0))
    page = quarantine_page(root, "items")
    assert page["total"] == 4 and len(page["rows"]) == 4
    shown = [page["rows"][i][page["columns"].index("x")] for i in range(4)]
    assert sorted(map(str, shown)) == sorted(map(str, q["x"].to_list()))
