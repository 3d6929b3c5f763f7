"""Data problems at ingest are counted and kept: duplicates, values of the wrong type, NaN, whole source rows."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from featurestore import DefinitionError, Feature, FeatureStore, GateRejectedError, Int64
from featurestore.cli.main import app
from featurestore.registry.discover import discover
from featurestore.registry.spec import build_specs
from featurestore.validation import list_reports, read_quarantine

T0 = datetime(2026, 1, 1, tzinfo=UTC)

VIEWS = """
from featurestore import Bool, Entity, Feature, FeatureView, Float64, Gate, Int32, ParquetSource, in_range
e = Entity("e", join_keys={{"k": Int32}})
v = FeatureView(
    "v", [e], ParquetSource("data/src.parquet", created="created"),
    [Feature("x", Float64, checks=[in_range(0, 100)]){extra}],
    gate=Gate({gate}), online={online},
)
"""


def new_store(make_repo: Any, df: pl.DataFrame, gate: str = "", extra: str = "", online: bool = True) -> FeatureStore:
    root = make_repo({"views.py": VIEWS.format(gate=gate, extra=extra, online=online)})
    (root / "data").mkdir(exist_ok=True)
    df.write_parquet(root / "data" / "src.parquet")
    store = FeatureStore(root)
    store.apply(data_check=False)  # the data is meant to be wrong: ingest and its gate are what is tested
    return store


def stored(store: FeatureStore) -> pl.DataFrame:
    spec = store.state().view("v")
    files = store.layout.files("v", spec.version)
    return pl.concat([pl.read_parquet(f) for f in files]).sort("k", "event_timestamp") if files else pl.DataFrame()


def source(n: int = 10, **columns: list[Any]) -> pl.DataFrame:
    """``n`` rows: k = i, hourly times, created, x = i, an id and a note that are not features."""
    base = pl.DataFrame(
        {
            "row_id": [f"r{i}" for i in range(n)],
            "k": list(range(n)),
            "event_timestamp": [T0 + timedelta(hours=i) for i in range(n)],
            "created": [T0 + timedelta(hours=i, minutes=1) for i in range(n)],
            "x": [float(i) for i in range(n)],
            "note": [f"note {i}" for i in range(n)],
        }
    )
    return base.with_columns(pl.Series(name, values, strict=False) for name, values in columns.items())


# -- 15: duplicates ----------------------------------------------------------------------------------------------


def test_duplicates_dropped_are_counted_in_the_result_the_report_and_the_cli(make_repo: Any) -> None:
    df = source(10)
    # Rows 0..3 again, with the same (key, event time): two older versions and two newer ones.
    again = df.head(4).with_columns(
        pl.col("created") + pl.Series([timedelta(hours=h) for h in (-1, -1, 1, 1)]),
        pl.col("x") + 50,
    )
    store = new_store(make_repo, pl.concat([df, again]))
    [result] = store.ingest()
    assert (result.rows_read, result.duplicates_dropped, result.rows_written) == (14, 4, 10)
    assert result.gate.duplicates_dropped == 4
    assert list_reports(store.settings.offline_root, "v")[0]["duplicates_dropped"] == 4
    # The greatest created time wins.
    assert stored(store)["x"].to_list()[:4] == [0.0, 1.0, 52.0, 53.0]
    out = CliRunner().invoke(app, ["ingest", "--repo", str(store.repo)], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "duplicates dropped" in out.output and "│ 4 " in out.output


# -- 14: quarantine keeps whole source rows ----------------------------------------------------------------------


def test_quarantined_rows_keep_every_source_column(make_repo: Any) -> None:
    df = source(40, x=[1048.0 if i == 3 else float(i) for i in range(40)])
    store = new_store(make_repo, df, gate="max_bad_fraction=0.1")
    [result] = store.ingest()
    assert result.gate.status == "quarantined" and result.rows_written == 39
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.height == 1
    row = q.row(0, named=True)
    # ids, created and columns that are not features are all there, as the source held them.
    assert set(df.columns) <= set(q.columns)
    assert (row["row_id"], row["note"], row["k"], row["x"]) == ("r3", "note 3", 3, 1048.0)
    assert row["created"] == df["created"][3]
    assert (row["_row"], row["_check"], row["_column"]) == (3, "in_range(0, 100)", "x")
    assert q.schema["k"] == pl.Int64  # the source's type, not the declared Int32


# -- 16: values of the wrong type --------------------------------------------------------------------------------


def test_text_that_is_not_a_number_fails_its_row_and_the_policy_applies(make_repo: Any) -> None:
    text = [str(float(i)) for i in range(20)]
    text[5], text[6] = "abc", "  "  # blank text is null, not a failure
    store = new_store(make_repo, source(20, x=text), gate="max_bad_fraction=0.1")
    [result] = store.ingest()
    g = result.gate
    assert g.status == "quarantined" and g.failures["x: dtype"]["count"] == 1 and result.rows_written == 19
    assert any("column 'x' value \"'abc' (String) is not Float64\"" in n for n in g.notes)
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "x", "_check", "_column").rows() == [("r5", "abc", "dtype", "x")]
    assert q.row(0, named=True)["_reasons"] == "dtype on x: 'abc' (String) is not Float64"
    out = stored(store)
    assert out.schema["x"] == pl.Float64 and out.filter(pl.col("k") == 6)["x"].to_list() == [None]


def test_text_for_a_bool_is_typed_row_by_row(make_repo: Any) -> None:
    """``true``/``false`` in any case are booleans; one other word fails its own row (it failed all 20)."""
    text = ["true" if i % 2 else "false" for i in range(20)]
    text[1], text[2], text[3], text[4] = " TRUE ", "False", "", "maybe"
    active = ', Feature("active", Bool)'
    store = new_store(make_repo, source(20, active=text), gate="max_bad_fraction=0.1", extra=active)
    [result] = store.ingest()
    g = result.gate
    assert g.status == "quarantined" and g.failures["active: dtype"]["count"] == 1 and result.rows_written == 19
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "active", "_check", "_column").rows() == [("r4", "maybe", "dtype", "active")]
    assert q.row(0, named=True)["_reasons"] == "dtype on active: 'maybe' (String) is not Bool"
    out = stored(store)
    assert out.schema["active"] == pl.Boolean
    assert out["active"].to_list()[:6] == [False, True, False, None, True, False]  # blank text is null


def test_text_in_lists_for_a_bool_list_is_typed_element_by_element() -> None:
    from featurestore.dsl.types import Bool, List
    from featurestore.offline.cast import cast_column

    df = pl.DataFrame({"a": [["true", "FALSE"], ["true", "maybe"], None, []]})
    cast = cast_column("a", df.schema["a"], List(Bool))
    assert cast.failed is not None
    typed = df.select(cast.value, cast.failed.alias("bad"))
    assert typed["a"].to_list() == [[True, False], [True, None], None, []]
    assert typed["bad"].to_list() == [False, True, False, False]


def test_a_column_of_an_unrelated_type_fails_every_row_with_a_value(make_repo: Any) -> None:
    lists = [[float(i)] for i in range(10)]
    store = new_store(make_repo, source(10).with_columns(pl.Series("x", lists)))
    with pytest.raises(GateRejectedError) as info:
        store.ingest()
    assert info.value.result.failures["x: dtype"]["count"] == 10
    assert "List(Float64)" in info.value.result.sample[0]["value"]
    assert stored(store).height == 0


def test_warn_writes_rows_whose_value_could_not_be_typed_as_null(make_repo: Any) -> None:
    store = new_store(make_repo, source(3, x=["1", "many", "3"]), gate='"warn"')
    [result] = store.ingest()
    assert result.gate.status == "warned"
    assert stored(store)["x"].to_list() == [1.0, None, 3.0]


def test_an_unreadable_event_time_is_a_failing_row_not_a_lost_one(make_repo: Any) -> None:
    times = [(T0 + timedelta(hours=i)).isoformat() for i in range(20)]
    times[2] = "yesterday"
    df = source(20).with_columns(pl.Series("event_timestamp", times))
    store = new_store(make_repo, df, gate="max_bad_fraction=0.1")
    [result] = store.ingest()
    assert result.gate.failures["event_timestamp: dtype"]["count"] == 1 and result.rows_written == 19
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "event_timestamp").rows() == [("r2", "yesterday")]


def test_a_null_key_fails_its_row_and_is_never_stored(make_repo: Any) -> None:
    """No entity can be found by a null key: push refuses it, ingest quarantines the row (materialize
    used to drop it uncounted, after the offline store had kept it)."""
    keys: list[Any] = list(range(20))
    keys[3] = None
    store = new_store(make_repo, source(20, k=keys), gate="max_bad_fraction=0.1")
    [result] = store.ingest()
    assert result.gate.failures["k: not_null"]["count"] == 1 and result.rows_written == 19
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "_check", "_column").rows() == [("r3", "not_null", "k")]
    assert stored(store)["k"].null_count() == 0 and stored(store).height == 19
    [done] = store.materialize()
    assert done.rows_read == done.rows_written == 19


def test_warn_never_writes_a_row_without_a_key(make_repo: Any) -> None:
    store = new_store(make_repo, source(3, k=[1, None, 3]), gate='"warn"')
    [result] = store.ingest()
    assert result.gate.status == "warned" and result.gate.failures["k: not_null"]["count"] == 1
    assert stored(store)["k"].to_list() == [1, 3] and result.rows_written == 2


def test_warn_quarantines_the_rows_it_cannot_write_and_its_report_counts_what_was_stored(make_repo: Any) -> None:
    """Under warn a row without a key was neither written nor quarantined, and the report said it was written."""
    store = new_store(make_repo, source(4, k=[1, None, 3, 4], x=[1.0, 2.0, 500.0, 4.0]), gate='"warn"')
    [result] = store.ingest()
    assert stored(store)["k"].to_list() == [1, 3, 4]  # the out-of-range 500 is written: policy warn
    [report] = list_reports(store.settings.offline_root, "v")
    assert (report["status"], report["rows_checked"], report["rows_written"], report["rows_quarantined"]) == (
        "warned",
        4,
        3,
        1,
    )
    assert result.gate.rows_written == result.rows_written == 3
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "_check", "_column").rows() == [("r1", "not_null", "k")]


@pytest.mark.parametrize("gate", ["max_bad_fraction=0.5", '"warn"'])
def test_a_row_without_an_event_time_fails_its_row_not_dropped_uncounted(make_repo: Any, gate: str) -> None:
    """A null event time made the row vanish before the gate: not read, not reported, not quarantined."""
    times: list[Any] = [T0 + timedelta(hours=i) for i in range(4)]
    times[1] = times[2] = None  # two of them, with the same key: neither is a duplicate of the other
    store = new_store(make_repo, source(4, event_timestamp=times, k=[0, 1, 1, 3]), gate=gate)
    [result] = store.ingest()
    assert (result.rows_read, result.rows_written, result.duplicates_dropped) == (4, 2, 0)
    assert stored(store)["k"].to_list() == [0, 3]
    [report] = list_reports(store.settings.offline_root, "v")
    assert report["failures"]["event_timestamp: not_null"]["count"] == 2
    assert (report["rows_checked"], report["rows_written"], report["rows_quarantined"]) == (4, 2, 2)
    q = read_quarantine(store.settings.offline_root, "v")
    assert q.select("row_id", "_check", "_column").rows() == [
        ("r1", "not_null", "event_timestamp"),
        ("r2", "not_null", "event_timestamp"),
    ]
    # A ranged re-ingest reports them too: they belong to no range, and are never stored.
    [again] = store.ingest(start=T0, end=T0 + timedelta(days=1))
    assert again.gate.failures["event_timestamp: not_null"]["count"] == 2 and stored(store).height == 2


def test_a_text_key_holding_the_key_separator_fails_its_row(make_repo: Any) -> None:
    views = VIEWS.replace('join_keys={{"k": Int32}}', 'join_keys={{"k": String}}').replace(
        "Int32, ParquetSource", "Int32, ParquetSource, String"
    )
    root = make_repo({"views.py": views.format(gate='"warn"', extra="", online=True)})
    (root / "data").mkdir(exist_ok=True)
    source(3, k=["a", "b\x1fc", "d"]).write_parquet(root / "data" / "src.parquet")
    store = FeatureStore(root)
    store.apply(data_check=False)
    [result] = store.ingest()
    assert result.gate.failures["k: key_separator"]["count"] == 1
    assert stored(store)["k"].to_list() == ["a", "d"]


# -- 7: NaN is null ----------------------------------------------------------------------------------------------


def test_infinities_are_null_offline_as_online(make_repo: Any) -> None:
    """Online rows are JSON, which has no infinity: the offline store holds null too, so a training set
    and a lookup answer the same."""
    inf = float("inf")
    store = new_store(make_repo, source(3, x=[inf, 2.0, -inf]))
    store.ingest()
    assert stored(store)["x"].to_list() == [None, 2.0, None]
    store.materialize()
    online = store.get_online_features(["v:x"], {"k": [0, 1, 2]}).to_dict()
    entity = pl.DataFrame({"k": [0, 1, 2], "event_timestamp": [T0 + timedelta(hours=5)] * 3})
    assert store.get_training_set(entity, ["v:x"])["x"].to_list() == online["x"] == [None, 2.0, None]
    # A push too, on its fast path (every value already a float) and written offline.
    now = datetime.now(UTC)
    store.push("v", {"k": [7, 8], "event_timestamp": [now, now], "x": [inf, 1.0]}, to_offline=True)
    assert store.get_online_features(["v:x"], {"k": [7, 8]}).to_dict()["x"] == [None, 1.0]
    assert stored(store).filter(pl.col("k") >= 7)["x"].to_list() == [None, 1.0]


def test_nan_is_stored_as_null_unless_the_feature_allows_nan(make_repo: Any) -> None:
    nan = float("nan")
    df = source(3, x=[1.0, nan, 3.0]).with_columns(pl.Series("y", [nan, 2.0, nan]))
    store = new_store(make_repo, df, extra=', Feature("y", Float64, allow_nan=True)', online=False)
    store.ingest()
    out = stored(store)
    assert out["x"].to_list() == [1.0, None, 3.0]
    y = out["y"].to_list()
    assert math.isnan(y[0]) and y[1] == 2.0 and math.isnan(y[2])
    training = store.get_training_set(
        pl.DataFrame({"k": [1, 0], "event_timestamp": [T0 + timedelta(hours=5)] * 2}), ["v:x", "v:y"]
    )
    assert training["x"].to_list()[0] is None and math.isnan(training["y"].to_list()[1])


def test_allow_nan_is_refused_on_an_online_view_and_only_versions_views_that_use_it(make_repo: Any) -> None:
    with pytest.raises(DefinitionError, match="allow NaN.*online=False"):
        new_store(make_repo, source(3), extra=', Feature("y", Float64, allow_nan=True)', online=True)
    with pytest.raises(ValueError, match="allow_nan applies to Float64"):
        Feature("n", Int64, allow_nan=True)
    # A view that does not use it keeps the version it had before allow_nan existed.
    root = make_repo({"views.py": VIEWS.format(gate="", extra="", online=True)}, name="plain")
    spec = build_specs(discover(root / "definitions"))["views"]["v"]
    assert "allow_nan" not in spec["features"][0]
    assert spec["version"] == "7636b9d34485"  # what main gave before allow_nan


def test_nan_in_text_parsed_as_a_number_is_null(make_repo: Any) -> None:
    store = new_store(make_repo, source(2, x=["NaN", "2"]))
    store.ingest()
    assert stored(store)["x"].to_list() == [None, 2.0]


def test_nan_inside_lists_is_null_and_a_list_element_that_cannot_be_cast_fails_its_row() -> None:
    from featurestore.dsl.types import Float64, Int32, List
    from featurestore.offline.cast import cast_column
    from featurestore.offline.frames import nan_as_null

    nan = float("nan")
    df = pl.DataFrame({"a": [[1.0, nan, None], [], None, [nan]], "b": [[1, 2], [2**40], None, []]})
    out = nan_as_null(df, {"a": List(Float64)})
    assert out["a"].to_list() == [[1.0, None, None], [], None, [None]]
    cast = cast_column("b", df.schema["b"], List(Int32))
    assert cast.failed is not None
    typed = df.select(cast.value, cast.failed.alias("bad"))
    assert typed["bad"].to_list() == [False, True, False, False]
    assert typed["b"].to_list()[0] == [1, 2] and typed.schema["b"] == pl.List(pl.Int32)


def test_decimal_columns_are_numbers_typed_row_by_row(make_repo: Any) -> None:
    """A decimal column (DuckDB's ``1.0`` literal, a warehouse export) failed every row under ``dtype``
    and apply refused it, though it holds numbers as a float column does."""
    from decimal import Decimal

    x = [Decimal("1.25"), Decimal("500.00"), None, Decimal("3.50")]
    n = [Decimal("3.00"), Decimal("4.00"), Decimal("2.50"), Decimal("99999999999999999999.00")]
    df = source(4).with_columns(pl.Series("x", x), pl.Series("n", n))
    store = new_store(make_repo, df, gate="max_bad_fraction=0.9", extra=', Feature("n", Int32)')
    store.plan()  # the plan-time data check takes a decimal column for a Float64 feature
    [result] = store.ingest()
    assert result.gate.failures["x: in_range(0, 100)"]["count"] == 1
    assert result.gate.failures["n: dtype"]["count"] == 2  # 2.5 has a fraction, 1e20 is past Int32
    assert stored(store).select("k", "x", "n").rows() == [(0, 1.25, 3)]
