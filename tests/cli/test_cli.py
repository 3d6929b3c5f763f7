"""The command line over a small repository: plan, apply, list, ingest, training-set; errors exit 1 in one line."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from featurestore.cli.main import app

VIEWS = """
from featurestore import Entity, Feature, FeatureService, FeatureView, Float64, Int64, ParquetSource

driver = Entity("driver", join_keys=["driver_id"])
stats = FeatureView("stats", entities=[driver], source=ParquetSource("data/stats.parquet"),
    features=[{features}])
model = FeatureService("model", features=[stats])
"""
FEATURES = 'Feature("rate", Float64), Feature("trips", Int64)'


@pytest.fixture
def repo(make_repo) -> Path:
    root = make_repo({"views.py": VIEWS.format(features=FEATURES)})
    (root / "data").mkdir()
    pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "event_timestamp": [datetime(2024, 1, 1), datetime(2024, 1, 1), datetime(2024, 1, 2)],
            "rate": [0.1, 0.2, 0.3],
            "trips": [1, 2, 3],
        }
    ).write_parquet(root / "data" / "stats.parquet")
    pl.DataFrame(
        {
            "driver_id": [1, 2, 1],
            "event_timestamp": [datetime(2024, 1, 1, 12), datetime(2024, 1, 3), datetime(2023, 1, 1)],
        }
    ).write_parquet(root / "entities.parquet")
    return root


def run(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, f"exit {result.exit_code}: {result.output}\n{result.exception!r}"
    return result


def set_features(repo: Path, features: str) -> None:
    (repo / "definitions" / "views.py").write_text(VIEWS.format(features=features))
    shutil.rmtree(repo / "definitions" / "__pycache__", ignore_errors=True)


def registry(repo: Path) -> dict:
    return json.loads((repo / "data" / "registry.json").read_text())


def assert_one_line_error(result, *words: str, single: bool = True) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error:"), result.output
    if single:
        assert len(lines) == 1, result.output
    for word in words:
        assert word in result.output


def test_plan_then_apply_then_list(repo: Path) -> None:
    out = run("plan", "--repo", str(repo)).output
    assert "add" in out and "stats" in out and "driver" in out and "model" in out
    assert not (repo / "data" / "registry.json").exists()

    out = run("apply", "--repo", str(repo)).output
    assert "serial 1" in out
    assert registry(repo)["serial"] == 1

    assert "No changes" in run("plan", "--repo", str(repo)).output
    out = run("list", "--repo", str(repo)).output
    version = registry(repo)["views"]["stats"]["version"]
    assert "stats" in out and version in out and "rate:Float64" in out
    assert "service model" in out


def test_apply_refuses_breaking_changes_unless_allowed(repo: Path) -> None:
    run("apply", "-r", str(repo))
    before = (repo / "data" / "registry.json").read_bytes()
    set_features(repo, 'Feature("rate", Float64)')
    assert "BREAKING" in run("plan", "-r", str(repo)).output
    result = run("apply", "-r", str(repo), code=1)
    # The first line says what happened; the breaking changes are listed below it.
    assert_one_line_error(result, "BreakingChangeError", "feature trips removed", "[BREAKING]", single=False)
    assert (repo / "data" / "registry.json").read_bytes() == before
    out = run("apply", "-r", str(repo), "--allow-breaking").output
    assert "serial 2" in out
    data = registry(repo)
    assert [f["name"] for f in data["views"]["stats"]["features"]] == ["rate"]
    assert len(data["versions"]["stats"]) == 2


def test_ingest_and_training_set_and_manifest(repo: Path, tmp_path: Path) -> None:
    run("apply", "-r", str(repo))
    out = run("ingest", "-r", str(repo)).output
    assert "stats" in out
    version = registry(repo)["views"]["stats"]["version"]
    assert sorted(
        p.parent.name for p in (repo / "data" / "offline" / "stats" / f"v={version}").glob("*/*.parquet")
    ) == [
        "date=2024-01-01",
        "date=2024-01-02",
    ]
    out_file = tmp_path / "train.parquet"
    result = run(
        "training-set",
        "-r",
        str(repo),
        "--entities",
        str(repo / "entities.parquet"),
        "--features",
        "stats:rate",
        "--features",
        "stats:trips",
        "--out",
        str(out_file),
    )
    assert "3 rows" in result.output
    df = pl.read_parquet(out_file)
    assert df["rate"].to_list() == [0.1, 0.2, None]
    assert df["trips"].to_list() == [1, 2, None]
    manifest = tmp_path / "train.parquet.manifest.json"
    assert json.loads(manifest.read_text())["views"]["stats"]["version"] == version

    rebuilt = tmp_path / "rebuilt.parquet"
    run("training-set", "-r", str(repo), "--manifest", str(manifest), "--out", str(rebuilt))
    assert_frame_equal(pl.read_parquet(rebuilt), df)

    # A service name works as the feature reference.
    out_svc = tmp_path / "svc.parquet"
    run(
        "training-set", "-r", str(repo), "--entities", str(repo / "entities.parquet"), "-f", "model", "-o", str(out_svc)
    )
    assert_frame_equal(pl.read_parquet(out_svc), df)


def test_ranged_ingest_of_one_view(repo: Path) -> None:
    run("apply", "-r", str(repo))
    run("ingest", "stats", "-r", str(repo), "--start", "2024-01-02", "--end", "2024-01-03")
    version = registry(repo)["views"]["stats"]["version"]
    dates = sorted(p.parent.name for p in (repo / "data" / "offline" / "stats" / f"v={version}").glob("*/*.parquet"))
    assert dates == ["date=2024-01-02"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["ingest"], ["RegistryError", "apply"]),
        (["ingest", "nope"], ["RegistryError", "nope"]),
        (["ingest", "--start", "2024-01-03", "--end", "2024-01-01"], ["IngestError", "--start"]),
        (["training-set", "--entities", "entities.parquet", "-f", "stats:nope", "-o", "x.parquet"], ["nope"]),
        (["training-set", "--manifest", "missing.manifest.json"], ["TrainingSetError", "does not exist"]),
    ],
)
def test_errors_print_one_clear_line_and_exit_1(repo: Path, args: list[str], words: list[str]) -> None:
    if args[0] == "training-set" or args[1:2] == ["nope"]:
        run("apply", "-r", str(repo))
    if args[0] == "ingest" and args[1:2] == ["--start"]:
        run("apply", "-r", str(repo))
    args = [a if not a.endswith((".parquet", ".json")) else str(repo / a) for a in args]
    assert_one_line_error(CliRunner().invoke(app, [*args, "-r", str(repo)]), *words)


@pytest.mark.parametrize(
    ("name", "content", "words"),
    [
        ("empty.csv", b"", ["empty.csv", "cannot be read"]),
        ("torn.csv", b'driver_id,event_timestamp\n"1,2024-01-01\n', ["torn.csv", "cannot be read"]),
        ("junk.parquet", b"not parquet", ["junk.parquet", "cannot be read"]),
        ("letters.csv", b"driver_id,event_timestamp\n1,2024-01-02\nabc,2024-01-02\n", ["driver_id", "abc"]),
    ],
)
def test_an_unreadable_entity_file_is_one_line_naming_it(
    repo: Path, tmp_path: Path, name: str, content: bytes, words: list[str]
) -> None:
    run("apply", "-r", str(repo))
    run("ingest", "-r", str(repo))
    work = tmp_path / "work"
    work.mkdir()
    (work / name).write_bytes(content)
    out = work / "train.parquet"
    result = CliRunner().invoke(
        app, ["training-set", "--entities", str(work / name), "-f", "model", "-o", str(out), "-r", str(repo)]
    )
    assert_one_line_error(result, "TrainingSetError", *words)
    assert sorted(p.name for p in work.iterdir()) == [name]  # nothing written


def test_training_set_out_on_a_folder_is_one_line_and_writes_nothing(repo: Path, tmp_path: Path) -> None:
    run("apply", "-r", str(repo))
    run("ingest", "-r", str(repo))
    folder = tmp_path / "work" / "sets"
    folder.mkdir(parents=True)
    entities = str(repo / "entities.parquet")
    result = CliRunner().invoke(
        app, ["training-set", "--entities", entities, "-f", "model", "-o", str(folder), "-r", str(repo)]
    )
    assert_one_line_error(result, "TrainingSetError", str(folder), "folder")
    assert sorted(p.name for p in folder.parent.iterdir()) == ["sets"] and not any(folder.iterdir())


def test_definition_error_is_one_line(repo: Path) -> None:
    (repo / "definitions" / "broken.py").write_text("import no_such_module_abc\n")
    result = CliRunner().invoke(app, ["plan", "-r", str(repo)])
    assert_one_line_error(result, "DefinitionError", "definitions.broken", "no_such_module_abc")


def test_invalid_config_is_one_line(repo: Path) -> None:
    (repo / "featurestore.toml").write_text("project = \n")
    result = CliRunner().invoke(app, ["list", "-r", str(repo)])
    assert_one_line_error(result, "ConfigError", "featurestore.toml")


def test_error_message_with_brackets_is_printed_verbatim(make_repo) -> None:
    root = make_repo({"views.py": "raise RuntimeError('bad [/oops] [red]value[/red]')\n"})
    result = CliRunner().invoke(app, ["plan", "-r", str(root)])
    assert_one_line_error(result, "DefinitionError", "bad [/oops] [red]value[/red]")
