"""Gate policies end to end: exact ids written to the offline store and to the quarantine."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import featurestore as fs
from featurestore.errors import GateRejectedError
from featurestore.validation import gate_for, list_reports, read_quarantine
from tests.validation.helpers import BAD, make_frame, make_spec, source_frame

ALL = set(range(20))
BAD_IDS = set(BAD)  # {3, 7, 11}: 15 % of 20 rows


def stored_ids(store: fs.FeatureStore, view: str = "items") -> set[int]:
    spec = store.state().view(view)
    files = store.layout.files(view, spec.version)
    if not files:
        return set()
    return set(pl.concat([pl.read_parquet(f) for f in files]).get_column("id").to_list())


def quarantined_ids(store: fs.FeatureStore, view: str = "items") -> set[int]:
    q = read_quarantine(store.settings.offline_root, view)
    return set(q.get_column("id").to_list()) if q.height else set()


def ingest(repo: Path) -> fs.FeatureStore:
    store = fs.FeatureStore(repo)
    store.apply()
    store.ingest()
    return store


def test_quarantine_writes_the_good_rows_and_sets_the_bad_aside(gated_repo: Callable[..., Path]) -> None:
    store = ingest(gated_repo("max_bad_fraction=0.2"))
    assert stored_ids(store) == ALL - BAD_IDS
    assert quarantined_ids(store) == BAD_IDS
    q = read_quarantine(store.settings.offline_root, "items").sort("id")
    assert q.select("id", "_check", "_column", "_value").rows() == [
        (3, "in_range(0, 100)", "x", "1048.0"),
        (7, "not_null()", "x", None),
        (11, "isin(['a', 'b'])", "s", "zzz"),
    ]
    # The quarantined rows keep their data, so they can be fixed and re-ingested.
    assert q.filter(pl.col("id") == 3).get_column("x").to_list() == [1048.0]
    [report] = list_reports(store.settings.offline_root, "items")
    assert (report["status"], report["rows_checked"], report["rows_written"], report["rows_quarantined"]) == (
        "quarantined",
        20,
        17,
        3,
    )


def test_quarantine_is_the_default_policy(gated_repo: Callable[..., Path]) -> None:
    store = ingest(gated_repo("max_bad_fraction=0.15"))  # exactly at the budget: still written
    assert stored_ids(store) == ALL - BAD_IDS
    assert quarantined_ids(store) == BAD_IDS


def test_over_the_budget_nothing_is_written(gated_repo: Callable[..., Path]) -> None:
    store = fs.FeatureStore(gated_repo("max_bad_fraction=0.149"))
    store.apply()
    with pytest.raises(GateRejectedError, match="over the budget") as info:
        store.ingest()
    assert stored_ids(store) == set()
    assert quarantined_ids(store) == BAD_IDS  # kept, explained, not written
    assert info.value.result.status == "rejected"  # type: ignore[attr-defined]
    assert list_reports(store.settings.offline_root)[0]["rows_written"] == 0


def test_a_dataframe_level_failure_rejects_the_batch(gated_repo: Callable[..., Path]) -> None:
    store = fs.FeatureStore(gated_repo("max_bad_fraction=0.5, checks=[min_rows(21)]"))
    store.apply()
    with pytest.raises(GateRejectedError, match="min_rows"):
        store.ingest()
    assert stored_ids(store) == set()


def test_fail_rejects_any_failure_and_keeps_the_previous_data(gated_repo: Callable[..., Path]) -> None:
    repo = gated_repo("policy='fail'", frame=source_frame())
    store = ingest(repo)
    assert stored_ids(store) == ALL
    before = {f: f.read_bytes() for f in store.layout.files("items", store.state().view("items").version)}
    bad = source_frame(bad={5: {"x": -1.0}}).filter(pl.col("id") < 10)
    bad.write_parquet(repo / "data" / "src.parquet")
    with pytest.raises(GateRejectedError, match="policy 'fail'"):
        store.ingest()
    after = {f: f.read_bytes() for f in store.layout.files("items", store.state().view("items").version)}
    assert after == before
    assert quarantined_ids(store) == {5}


def test_warn_writes_everything_and_reports(gated_repo: Callable[..., Path]) -> None:
    store = ingest(gated_repo("policy='warn'"))
    assert stored_ids(store) == ALL
    assert quarantined_ids(store) == set()
    [report] = list_reports(store.settings.offline_root)
    assert report["status"] == "warned"
    assert {v["check"]: v["count"] for v in report["failures"].values()} == {
        "in_range(0, 100)": 1,
        "not_null()": 1,
        "isin(['a', 'b'])": 1,
    }


def test_clean_data_passes_every_policy(gated_repo: Callable[..., Path]) -> None:
    for policy in ["quarantine", "fail", "warn"]:
        store = fs.FeatureStore(gated_repo(f"policy={policy!r}", frame=source_frame(), name=policy))
        store.apply()
        [result] = store.ingest()
        assert result.gate.status == "passed"
        assert stored_ids(store) == ALL


def test_validate_writes_nothing(gated_repo: Callable[..., Path]) -> None:
    store = fs.FeatureStore(gated_repo("max_bad_fraction=0.1"))
    result = store.validate("items")  # no apply needed: validates the current definitions
    assert result.rejected and result.rows_quarantined == 3 and result.quarantine_file is None
    assert {s["row"] for s in result.sample} == {3, 7, 11}
    assert not store.settings.offline_root.exists() or not any(store.settings.offline_root.rglob("*.parquet"))
    assert store.reports() == []
    ok = store.validate("items", start="2026-01-01T00:00:00", end="2026-01-01T03:00:00")
    assert ok.status == "passed" and ok.rows_checked == 3


def test_push_path_answers_per_row(settings: object) -> None:
    spec = make_spec({"v": ("Float64", [fs.in_range(0, 1)])}, fs.Gate(max_bad_fraction=0.5))
    rows, result = gate_for(settings, spec, "push")(make_frame(v=[0.5, 7.0, 0.25]))
    assert rows.get_column("id").to_list() == [0, 2]
    per_row = result.to_dict()["rows"]
    assert [r["ok"] for r in per_row] == [True, False, True]
    assert per_row[1]["reasons"] == [{"check": "in_range(0, 1)", "column": "v", "value": "7.0"}]
    assert result.path == "push"


def test_a_check_that_cannot_run_on_its_feature_is_a_definition_error(make_repo: Callable[..., Path]) -> None:
    """greater_than_or_equal_to("zero") on an Int64 was applied; ingest then rejected every batch
    ("dataframe-level checks failed") and push and materialize skipped the check and wrote every row."""
    views = """
    from featurestore import Entity, Feature, FeatureView, Int64, ParquetSource, greater_than_or_equal_to
    e = Entity("e", join_keys=["id"])
    v = FeatureView("v", [e], ParquetSource("data/src.parquet"),
                    [Feature("n", Int64, checks=[greater_than_or_equal_to("zero")])])
    """
    store = fs.FeatureStore(make_repo({"views.py": views}))
    with pytest.raises(fs.DefinitionError) as info:
        store.apply(data_check=False)
    message = str(info.value)
    assert "module definitions.views" in message and "feature 'n' (Int64)" in message
    assert "greater_than_or_equal_to('zero') cannot run on it" in message
    with pytest.raises(ValueError, match="check matches"):
        fs.Feature("x", fs.Float64, checks=[fs.matches("a+")])


def test_a_registered_row_check_that_cannot_run_rejects_a_push(settings: object) -> None:
    """A registry written before the definition-time check: push and materialize dropped the failure
    as a dataframe-level check and wrote every row unchecked."""
    from featurestore.dsl.checks import Check

    spec = make_spec({"n": ("Int64", [Check("greater_than_or_equal_to", {"value": "zero"})])})
    for path in ("push", "materialize"):
        with pytest.raises(GateRejectedError) as info:
            gate_for(settings, spec, path)(make_frame(n=[1, 2]))
        assert info.value.result.rows_written == 0  # type: ignore[attr-defined]
