"""Errors that say what to do, repository discovery, describe, list, push --file and plan-time data checks."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from featurestore.cli.common import format_duration
from featurestore.cli.main import app
from tests.cli.test_cli import assert_one_line_error

VIEWS = """
from datetime import timedelta
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource, in_range
driver = Entity("driver", join_keys=["driver_id"], description="a driver")
stats = FeatureView("stats", entities=[driver], source=ParquetSource("data/stats.parquet"),
    features=[Feature("rate", Float64, checks=[in_range(0, 1)]), Feature("trips", Int64)], ttl=timedelta(days=7))
model = FeatureService("model", features=[stats])
"""


NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def repo(make_repo, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = make_repo({"views.py": VIEWS})
    (root / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            # Recent, so materialize keeps them within the 7-day ttl.
            "event_timestamp": [NOW - timedelta(days=2), NOW - timedelta(days=2), NOW - timedelta(days=1)],
            "rate": [0.1, 0.2, 0.3],
            "trips": [1, 2, 3],
        }
    ).write_parquet(root / "data" / "stats.parquet")
    monkeypatch.chdir(root)
    return root


def cli(*args: str, code: int = 0, env: dict[str, str] | None = None):
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return result


def applied(repo: Path) -> Path:
    cli("apply")
    return repo


# -- errors that say what to do -------------------------------------------------


@pytest.mark.parametrize(
    ("args", "flag", "value"),
    [
        (["ingest", "--start", "yesterday"], "--start", "yesterday"),
        (["ingest", "--end", "soon"], "--end", "soon"),
        (["materialize", "--start", "2026-13-01"], "--start", "2026-13-01"),
        (["materialize-incremental", "--end", "2026-02-30"], "--end", "2026-02-30"),
        (["validate", "stats", "--start", "x"], "--start", "x"),
    ],
)
def test_a_bad_time_flag_names_the_flag_and_the_formats(repo: Path, args: list[str], flag: str, value: str) -> None:
    applied(repo)
    result = CliRunner().invoke(app, args)
    assert_one_line_error(result, "UsageError", f"{flag} {value!r} is not a time", "ISO 8601", "2024-01-31")


def test_outside_a_repository_the_error_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(empty)
    for command in (["list"], ["plan"], ["ingest"], ["describe", "x"], ["serve"]):
        result = CliRunner().invoke(app, command)
        assert_one_line_error(
            result, f"no featurestore.toml in {empty.resolve()} or its parents; run `featurestore init` or pass --repo"
        )


def test_a_subfolder_of_a_repository_finds_its_root(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo / "definitions")
    cli("apply")
    assert (repo / "data" / "registry.json").is_file()
    assert "stats" in cli("list").output
    assert "stats" in cli("list", "--repo", str(repo / "data")).output  # --repo also walks up


def test_unknown_config_key_and_variable_name_the_nearest(repo: Path) -> None:
    (repo / "featurestore.toml").write_text('project = "test"\nonlien = "sqlite:///x.db"\n')
    assert_one_line_error(CliRunner().invoke(app, ["list"]), "unknown key 'onlien' (did you mean 'online'?)")
    (repo / "featurestore.toml").write_text('project = "test"\n')
    result = CliRunner().invoke(app, ["list"], env={"FEATURESTORE_MAX_ENTITY": "5"})
    assert_one_line_error(result, "FEATURESTORE_MAX_ENTITY", "did you mean 'FEATURESTORE_MAX_ENTITIES'?")


@pytest.mark.parametrize(("command", "served"), [("serve", "serving"), ("ui", "/ui")])
def test_a_server_on_a_busy_port_fails_in_one_line_before_serving(repo: Path, command: str, served: str) -> None:
    applied(repo)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, [command, "--port", str(port)])
    assert_one_line_error(result, f"--port {port}", f"127.0.0.1:{port}")
    assert served not in result.output


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["serve", "--port", "99999"], "--port"),
        (["serve", "--port", "-1"], "--port"),
        (["serve", "--port", "0"], "--port"),
        (["serve", "--workers", "0"], "--workers"),
        (["ui", "--port", "99999"], "--port"),
    ],
)
def test_serve_refuses_an_impossible_port_or_worker_count_naming_the_flag(
    repo: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], flag: str
) -> None:
    # --port 99999 printed "serving" (or the UI's address) and hung; --port -1 blamed --host.
    # The guard stops a server that starts.
    import featurestore.server

    def started(*_: object, **__: object) -> None:
        raise AssertionError("the server started")

    monkeypatch.setattr(featurestore.server, "serve", started)
    applied(repo)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert flag in result.output and "--host" not in result.output and "serving" not in result.output


@pytest.mark.parametrize(
    ("key", "command", "where"),
    [("registry", "apply", "featurestore.toml/registry.json"), ("offline_root", "ingest", "featurestore.toml")],
)
def test_a_store_path_that_cannot_be_written_is_one_line_naming_it(
    repo: Path, key: str, command: str, where: str
) -> None:
    # A registry under a file, or an offline root that is a file, printed an OSError traceback.
    applied(repo)
    env = {f"FEATURESTORE_{key.upper()}": str(repo / where)}
    result = CliRunner().invoke(app, [command], env=env)
    assert_one_line_error(result, "featurestore.toml")


@pytest.mark.parametrize("value", [",", " , ", ""])
def test_get_with_no_feature_names_is_a_usage_error(repo: Path, value: str) -> None:
    # -f , printed an IndexError traceback.
    applied(repo)
    result = CliRunner().invoke(app, ["get", "-f", value, "-e", "driver_id=1"])
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert "--features" in result.output


def test_reports_of_an_unknown_view_name_it_with_a_did_you_mean(repo: Path) -> None:
    # `reports stast` printed "no gate reports yet" and exited 0.
    applied(repo)
    cli("ingest")
    assert_one_line_error(CliRunner().invoke(app, ["reports", "stast"]), "'stast'", "did you mean 'stats'?")
    assert "stats" in cli("reports", "stats").output


def test_skew_of_an_unknown_target_names_it_with_a_did_you_mean(repo: Path) -> None:
    # `skew modle` blamed a missing served-feature log instead of the name.
    applied(repo)
    assert_one_line_error(CliRunner().invoke(app, ["skew", "modle"]), "'modle'", "did you mean 'model'?")


def test_validate_does_not_point_at_output_it_did_not_write(repo: Path) -> None:
    applied(repo)
    pl.DataFrame(
        {"driver_id": [1, 2], "event_timestamp": [datetime(2024, 1, 1)] * 2, "rate": [5.0, 0.2], "trips": [1, 2]}
    ).write_parquet(repo / "data" / "stats.parquet")
    result = cli("validate", "stats", code=1)
    assert "rejected" in result.output
    assert "quarantine folder" not in result.output and "featurestore reports" not in result.output
    assert not (repo / "data" / "offline" / "_quarantine").exists()


def test_hints_name_the_cli_flag(repo: Path) -> None:
    applied(repo)
    cli("ingest")
    pl.DataFrame({"driver_id": [1], "ts": [NOW]}).write_parquet(repo / "e.parquet")
    result = CliRunner().invoke(app, ["training-set", "--entities", "e.parquet", "-f", "model", "-o", "t.parquet"])
    assert_one_line_error(result, "--timestamp-column")
    assert "timestamp_column=" not in result.output
    out = cli("training-set", "--entities", "e.parquet", "-f", "model", "-o", "t.parquet", "--timestamp-column", "ts")
    assert "1 rows" in out.output


def test_a_bad_timestamp_in_an_entity_file_names_column_value_and_formats(repo: Path) -> None:
    applied(repo)
    cli("ingest")
    (repo / "e.csv").write_text("driver_id,event_timestamp\n1,2024-01-03\n2,yesterday\n")
    result = CliRunner().invoke(app, ["training-set", "--entities", "e.csv", "-f", "model", "-o", "t.parquet"])
    assert_one_line_error(result, "'event_timestamp'", "'yesterday' is not a timestamp", "ISO 8601")
    assert "col(" not in result.output and "str." not in result.output


def test_unknown_names_get_a_did_you_mean(repo: Path) -> None:
    applied(repo)
    cli("ingest")
    cli("materialize")
    assert_one_line_error(CliRunner().invoke(app, ["get", "-f", "stats:rat", "-e", "driver_id=1"]), "'rate'?")
    assert_one_line_error(CliRunner().invoke(app, ["get", "-f", "stat:rate", "-e", "driver_id=1"]), "'stats'?")
    assert_one_line_error(CliRunner().invoke(app, ["get", "-f", "modle", "-e", "driver_id=1"]), "'model'?")
    assert_one_line_error(CliRunner().invoke(app, ["get", "-f", "stats", "-e", "driver_id=1"]), "'stats:*'?")
    assert_one_line_error(CliRunner().invoke(app, ["ingest", "stat"]), "did you mean 'stats'?")
    assert_one_line_error(CliRunner().invoke(app, ["describe", "modl"]), "did you mean 'model'?")


def test_get_splits_features_on_commas(repo: Path) -> None:
    applied(repo)
    cli("ingest")
    cli("materialize")
    out = cli("get", "-f", "stats:rate,stats:trips", "-e", "driver_id=1,2").output
    assert "rate" in out and "trips" in out and "0.3" in out and "0.2" in out


def test_get_with_a_key_repeated_looks_up_every_value(repo: Path) -> None:
    # -e driver_id=1 -e driver_id=2 looked up only 2.
    applied(repo)
    cli("ingest")
    cli("materialize")
    out = cli("get", "-f", "stats:rate", "-e", "driver_id=1", "-e", "driver_id=2", env={"COLUMNS": "200"}).output
    assert "0.3" in out and "0.2" in out


# -- describe, list, push --------------------------------------------------------


def test_describe_a_view_service_and_entity(repo: Path) -> None:
    applied(repo)
    cli("ingest")
    cli("materialize")
    out = cli("describe", "stats").output
    version = json.loads((repo / "data" / "registry.json").read_text())["views"]["stats"]["version"]
    for word in ("rate", "Float64", "in_range(0, 1)", "trips", "Int64", "7d", "data/stats.parquet", version):
        assert word in out, word
    assert "passed on materialize" in out and "watermark" in out and f"{version} (" in out
    assert "current" in out
    svc = cli("describe", "model").output
    assert "stats" in svc and "rate, trips" in svc
    ent = cli("describe", "driver").output
    assert "driver_id:Int64" in ent and "stats" in ent and "model" in ent and "a driver" in ent


def test_list_shows_entities_and_ttl_as_people_write_it(repo: Path) -> None:
    applied(repo)
    out = cli("list").output
    assert "entity driver: driver_id" in out and "7d" in out and "7 days" not in out


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_push_from_a_file_goes_through_the_gate(repo: Path, suffix: str) -> None:
    applied(repo)
    # One bad row in 40 is within the default quarantine budget (5%).
    n = 40
    when = NOW.isoformat().replace("+00:00", "Z")
    rows = pl.DataFrame(
        {
            "driver_id": range(7, 7 + n),
            "event_timestamp": [when] * n,
            "rate": [0.5, 9.0] + [0.1] * (n - 2),
            "trips": range(n),
        }
    )
    path = repo / f"rows{suffix}"
    {".parquet": rows.write_parquet, ".csv": rows.write_csv, ".jsonl": rows.write_ndjson}[suffix](path)
    out = cli("push", "stats", "--file", str(path)).output
    assert "quarantined" in out and "run " in out
    got = cli("get", "-f", "stats:rate", "-e", "driver_id=7,8").output
    assert "0.5" in got and "NOT_FOUND" in got  # the row failing in_range(0, 1) was set aside


def test_push_file_errors_are_one_line(repo: Path) -> None:
    applied(repo)
    assert_one_line_error(CliRunner().invoke(app, ["push", "stats", "--file", "nope.csv"]), "does not exist")
    (repo / "rows.txt").write_text("x")
    assert_one_line_error(CliRunner().invoke(app, ["push", "stats", "--file", "rows.txt"]), ".jsonl")
    (repo / "bad.csv").write_text("driver_id,event_timestamp,rate,trips\n1,tomorrow,0.5,1\n")
    result = CliRunner().invoke(app, ["push", "stats", "--file", "bad.csv"])
    assert_one_line_error(result, "'event_timestamp'", "'tomorrow' is not a timestamp", "ISO 8601")
    assert "col(" not in result.output


# -- plan-time data check ----------------------------------------------------------


def test_plan_and_apply_refuse_a_broken_view_and_no_data_check_skips(repo: Path) -> None:
    (repo / "definitions" / "views.py").write_text(VIEWS.replace('"data/stats.parquet"', '"data/missing.parquet"'))
    for command in ("plan", "apply"):
        result = CliRunner().invoke(app, [command])
        assert_one_line_error(result, "DefinitionError", "source file 'data/missing.parquet' does not exist")
        assert "--no-data-check" in result.output and "data_check=False" not in result.output
    assert not (repo / "data" / "registry.json").exists()
    cli("apply", "--no-data-check")
    assert (repo / "data" / "registry.json").exists()


def test_plan_reports_the_views_it_checked(repo: Path) -> None:
    out = cli("plan", "--sample-rows", "2").output
    assert "data check: stats ran on a sample (2 rows)" in out


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 0, 90, 3 * 3600, 7 * 86400, 86400 + 6 * 3600 + 5)] == [
        "-",
        "0s",
        "1m 30s",
        "3h",
        "7d",
        "1d 6h",
    ]


# -- output habits: progress in rows, full-width tables, frame types -------------------


def test_long_work_prints_one_summary_line_per_step_in_a_pipe(repo: Path) -> None:
    applied(repo)
    out = cli("ingest").output
    assert "ingest stats: 3 rows, 3 written in " in out and "rows/s)" in out
    assert "materialize stats: " in cli("materialize").output
    (repo / "e.csv").write_text(f"driver_id,event_timestamp\n1,{NOW.isoformat()}\n")
    out = cli("training-set", "--entities", "e.csv", "-f", "model", "-o", "t.parquet").output
    assert "training set: 1 rows in " in out


def test_the_ingest_table_explains_every_row(repo: Path) -> None:
    applied(repo)
    pl.DataFrame(
        {
            "driver_id": list(range(40)),
            "event_timestamp": [NOW] * 40,
            "rate": [9.0] + [0.5] * 39,
            "trips": list(range(40)),
        }
    ).write_parquet(repo / "data" / "stats.parquet")
    out = cli("ingest").output
    for column in ("read", "duplicates dropped", "quarantined", "written"):
        assert column in out
    assert "1 (top: rate: in_range(0, 1))" in out and "39" in out


def test_tables_are_not_cut_to_80_columns_in_a_pipe(repo: Path) -> None:
    long = "a_long_feature_name_that_with_the_rest_would_not_fit_in_80_cols"
    (repo / "definitions" / "views.py").write_text(VIEWS.replace('"trips"', f'"{long}"'))
    pl.read_parquet(repo / "data" / "stats.parquet").rename({"trips": long}).write_parquet(
        repo / "data" / "stats.parquet"
    )
    cli("apply")
    assert f"{long}:Int64" in cli("list").output


def test_online_results_convert_to_every_frame_type(repo: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    from featurestore import FeatureStore

    applied(repo)
    store = FeatureStore(repo)
    store.ingest()
    store.materialize()
    got = store.get_online_features(["stats:rate", "stats:trips"], {"driver_id": [1, 2, 3]})
    assert got.to_dict() == {"driver_id": [1, 2, 3], "rate": [0.3, 0.2, None], "trips": [3, 2, None]}
    assert got.to_polars()["rate"].to_list() == [0.3, 0.2, None]
    assert isinstance(got.to_pandas(), pd.DataFrame) and list(got.to_pandas().columns) == ["driver_id", "rate", "trips"]
    assert isinstance(got.to_arrow(), pa.Table) and got.to_arrow().num_rows == 3
