"""Every check kind: a passing and a failing case, and the round trip through the registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandera.polars as pa
import polars as pl
import pytest

import featurestore as fs
from featurestore.dsl.checks import Check, FrameCheck, Gate, check_from_dict
from featurestore.errors import ValidationError
from featurestore.validation import compile_gate
from featurestore.validation.gate import find_failures
from tests.validation.helpers import make_frame, make_spec

ROW_CASES: list[tuple[str, Check, str, list[Any], list[Any]]] = [
    # id, check, dtype, passing values, failing values
    ("not_null", fs.not_null(), "Float64", [1.0, 2.0], [None, None]),
    ("in_range", fs.in_range(0, 10), "Float64", [0.0, 10.0, None], [-0.5, 10.5]),
    ("in_range_open", fs.in_range(0, 10, include_min=False, include_max=False), "Int64", [1, 9], [0, 10]),
    ("greater_than", fs.greater_than(0), "Int64", [1, 2], [0, -1]),
    ("greater_than_or_equal_to", fs.greater_than_or_equal_to(0), "Int64", [0, 1], [-1, -2]),
    ("less_than", fs.less_than(5), "Float64", [4.9, -1.0], [5.0, 6.0]),
    ("less_than_or_equal_to", fs.less_than_or_equal_to(5), "Int64", [5, 4], [6, 7]),
    ("isin", fs.isin(["JFK", "LGA"]), "String", ["JFK", "LGA"], ["EWR", "jfk"]),
    ("not_in", fs.not_in(["", "N/A"]), "String", ["a", "b"], ["", "N/A"]),
    ("matches", fs.matches(r"^N[0-9A-Z]{1,5}$"), "String", ["N10156", "N1"], ["10156", "N-1"]),
    ("str_length", fs.str_length(2, 3), "String", ["ab", "abc"], ["a", "abcd"]),
    ("unique", fs.unique(), "Int64", [1, 2], [3, 3]),
    ("expr", fs.expr(pl.col("v") % 2 == 0, name="even"), "Int64", [2, 4], [1, 3]),
]


@pytest.mark.parametrize(("check", "dtype", "good", "bad"), [c[1:] for c in ROW_CASES], ids=[c[0] for c in ROW_CASES])
def test_row_check_passes_and_fails(check: Check, dtype: str, good: list[Any], bad: list[Any]) -> None:
    spec = make_spec({"v": (dtype, [check])})
    compiled = compile_gate(spec)
    polars_dtype = spec.features["v"].polars
    passing = find_failures(compiled, make_frame(v=pl.Series(good, dtype=polars_dtype)))
    assert passing.rows.height == 0 and not passing.frame
    failing = find_failures(compiled, make_frame(v=pl.Series(good + bad, dtype=polars_dtype)))
    n = len(good)
    assert failing.bad_rows.to_list() == list(range(n, n + len(bad)))
    assert set(failing.rows.get_column("check")) == {check.name}
    assert set(failing.rows.get_column("column")) == {"v"}


def test_failure_keeps_the_offending_value() -> None:
    compiled = compile_gate(make_spec({"wind_speed": ("Float64", [fs.in_range(0, 250)])}))
    f = find_failures(compiled, make_frame(wind_speed=[10.0, 1048.0]))
    assert f.rows.select("row", "check", "column", "value").rows() == [(1, "in_range(0, 250)", "wind_speed", "1048.0")]


def test_unique_key_flags_every_copy_of_a_duplicate() -> None:
    compiled = compile_gate(make_spec({"v": ("Int64", [])}))
    df = make_frame(v=[1, 2, 3])
    df = df.with_columns(pl.when(pl.col("id") == 2).then(pl.lit(0)).otherwise(pl.col("id")).alias("id"))
    df = df.with_columns(
        pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).cast(pl.Datetime("us", "UTC")).alias("event_timestamp")
    )
    f = find_failures(compiled, df)
    assert f.bad_rows.to_list() == [0, 2]
    assert set(f.rows.get_column("check")) == {"unique_key"}
    clean = find_failures(compile_gate(make_spec({"v": ("Int64", [])})), make_frame(v=[1, 2, 3]))
    assert clean.rows.height == 0
    off = compile_gate(make_spec({"v": ("Int64", [])}, Gate(unique_key=False)))
    assert find_failures(off, df).rows.height == 0


def test_max_future_tolerance() -> None:
    compiled = compile_gate(make_spec({"v": ("Int64", [])}, Gate(max_future=timedelta(hours=1))))
    now = datetime.now(UTC)
    df = make_frame(v=[1, 2, 3]).with_columns(
        pl.Series(
            "event_timestamp", [now - timedelta(days=1), now + timedelta(minutes=30), now + timedelta(hours=2)]
        ).cast(pl.Datetime("us", "UTC"))
    )
    f = find_failures(compiled, df)
    assert f.bad_rows.to_list() == [2]
    assert f.rows.get_column("check").to_list() == ["max_future"]


def test_freshness_is_a_dataframe_level_failure() -> None:
    compiled = compile_gate(make_spec({"v": ("Int64", [])}, Gate(freshness=timedelta(days=1), max_future=None)))
    old = make_frame(v=[1, 2])
    assert [x["check"] for x in find_failures(compiled, old).frame] == ["freshness"]
    fresh = old.with_columns(pl.lit(datetime.now(UTC)).cast(pl.Datetime("us", "UTC")).alias("event_timestamp"))
    fresh = fresh.with_columns(pl.Series("id", [0, 1]))
    assert find_failures(compiled, fresh).frame == []


FRAME_CASES = [
    ("min_rows", fs.min_rows(3), [1, 2, 3], [1, 2]),
    ("max_null_fraction", fs.max_null_fraction("v", 0.25), [1, 2, 3, None], [1, None, 3, None]),
    ("frame_expr", fs.frame_expr(pl.col("v").mean() < 10, name="mean_small"), [1, 2], [1, 100]),
]


@pytest.mark.parametrize(("check", "good", "bad"), [c[1:] for c in FRAME_CASES], ids=[c[0] for c in FRAME_CASES])
def test_frame_check_passes_and_fails(check: FrameCheck, good: list[Any], bad: list[Any]) -> None:
    compiled = compile_gate(make_spec({"v": ("Int64", [])}, Gate(checks=[check])))
    assert find_failures(compiled, make_frame(v=good)).frame == []
    f = find_failures(compiled, make_frame(v=bad))
    assert [x["check"] for x in f.frame] == [check.name]
    assert f.rows.height == 0  # a batch-level failure condemns no single row


def test_expert_pandera_schema_runs_in_the_defining_process() -> None:
    schema = pa.DataFrameSchema({"v": pa.Column(pl.Int64, pa.Check.le(3))})
    gate = Gate(schema=schema)
    spec = make_spec({"v": ("Int64", [])}, gate)
    assert "DataFrameSchema" in spec.raw["gate"]["schema"]["repr"]
    f = find_failures(compile_gate(spec), make_frame(v=[1, 5]))
    assert f.bad_rows.to_list() == [1]
    assert f.rows.get_column("check").to_list()[0].startswith("schema:")


def test_compiled_schema_is_pandera_and_cached() -> None:
    spec = make_spec({"v": ("Float64", [fs.in_range(0, 1)])})
    compiled = compile_gate(spec)
    assert isinstance(compiled.schema, pa.DataFrameSchema)
    assert compile_gate(make_spec({"v": ("Float64", [fs.in_range(0, 1)])})) is compiled
    assert compile_gate(make_spec({"v": ("Float64", [fs.in_range(0, 2)])})) is not compiled


def test_checks_round_trip_through_to_dict() -> None:
    checks = [c[1] for c in ROW_CASES] + [c[1] for c in FRAME_CASES]
    checks.append(fs.in_range(datetime(2013, 1, 1, tzinfo=UTC), datetime(2014, 1, 1, tzinfo=UTC)))
    for c in checks:
        back = check_from_dict(c.to_dict())
        assert back == c and type(back) is type(c)
    gate = Gate(
        "warn",
        max_bad_fraction=0.1,
        freshness=timedelta(hours=3),
        checks=[fs.min_rows(5)],
        drift=fs.Drift(0.2, features=["v"], fail=True),
    )
    assert Gate.from_dict(gate.to_dict()).to_dict() == gate.to_dict()


def test_checks_round_trip_through_the_registry_file(gated_repo: Any) -> None:
    repo = gated_repo("policy='warn', checks=[min_rows(2), max_null_fraction('x', 0.5)], drift=Drift(0.3)")
    store = fs.FeatureStore(repo)
    store.apply()
    # A fresh process only has the registry: rebuild everything from the stored file.
    spec = fs.FeatureStore(repo).state().view("items")
    compiled = compile_gate(spec)
    assert compiled.gate.policy == "warn"
    assert [c.name for c in compiled.gate.checks] == ["min_rows(2)", "max_null_fraction('x', 0.5)"]
    assert compiled.gate.drift is not None and compiled.gate.drift.psi_threshold == 0.3
    names = {(col, name) for col, name in compiled.row_checks}
    assert {("x", "in_range(0, 100)"), ("x", "not_null()"), ("s", "isin(['a', 'b'])"), ("y", "y_at_most_10x")} <= names
    df = make_frame(x=[1.0, 2.0], s=["a", "q"], y=[1.0, 50.0])
    assert find_failures(compiled, df).rows.sort("check").select("row", "check").rows() == [
        (1, "isin(['a', 'b'])"),
        (1, "y_at_most_10x"),
    ]


def test_a_foreign_check_object_is_a_clear_error(tmp_path: Path) -> None:
    spec = make_spec({"v": ("Int64", [])})
    spec.raw["features"][0]["checks"] = [{"repr": "<lambda>"}]
    with pytest.raises(ValidationError, match="feature 'v'.*not a featurestore check"):
        compile_gate(spec)
    assert SimpleNamespace  # keep the import list honest for ruff


def test_bad_gate_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="policy"):
        Gate("drop")
    with pytest.raises(ValueError, match="dataframe-level"):
        Gate(checks=[fs.not_null()])  # type: ignore[list-item]
