"""Report history, PSI drift against a stored baseline, and the HTML report."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import featurestore as fs
from featurestore.cli.main import app
from featurestore.errors import GateRejectedError
from featurestore.validation import gate_for, get_report, list_reports
from featurestore.validation.html import render_html
from featurestore.validation.profile import profile_frame, save_baseline
from featurestore.validation.reports import history_file
from tests.validation.helpers import make_frame, make_spec, source_frame


def test_report_history_after_several_runs(settings: SimpleNamespace) -> None:
    spec = make_spec({"v": ("Float64", [fs.in_range(0, 1)])}, fs.Gate(max_bad_fraction=0.4), name="a")
    other = make_spec({"v": ("Float64", [])}, name="b")
    gate_for(settings, spec, "ingest")(make_frame(v=[0.5, 0.5]))
    gate_for(settings, spec, "materialize")(make_frame(v=[0.5, 3.0, 0.1]))
    with pytest.raises(GateRejectedError):
        gate_for(settings, spec, "push")(make_frame(v=[2.0, 3.0]))
    gate_for(settings, other, "ingest")(make_frame(v=[1.0]))
    history = list_reports(settings.offline_root)
    assert [(r["view"], r["path"], r["status"]) for r in history] == [
        ("b", "ingest", "passed"),
        ("a", "push", "rejected"),
        ("a", "materialize", "quarantined"),
        ("a", "ingest", "passed"),
    ]
    assert [r["rows_written"] for r in list_reports(settings.offline_root, "a")] == [0, 2, 2]
    assert len(list_reports(settings.offline_root, limit=2)) == 2
    assert len({r["run_id"] for r in history}) == 4
    run = history[2]["run_id"]
    found = get_report(settings.offline_root, run[:22])
    assert found is not None and found["run_id"] == run


def _drift_spec(fail: bool) -> object:
    return make_spec(
        {"v": ("Float64", []), "c": ("String", [])},
        fs.Gate(drift=fs.Drift(psi_threshold=0.2, fail=fail), max_future=None),
        name="drifty",
    )


def _batch(shift: float, n: int = 5000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    cats = rng.choice(["a", "b", "c"], n, p=[0.6, 0.3, 0.1]).tolist()
    return make_frame(v=(rng.normal(0, 1, n) + shift).tolist(), c=cats)


def test_a_report_after_a_torn_line_is_kept(settings: SimpleNamespace) -> None:
    """A line cut short (the disk filled up, the process was killed) must not swallow the next report."""
    spec = make_spec({"v": ("Float64", [])}, name="a")
    gate_for(settings, spec, "ingest")(make_frame(v=[0.5]))
    history = history_file(Path(settings.offline_root))
    history.write_bytes(history.read_bytes() + b'{"run_id": "torn", "view": "a", "rows_che')
    gate_for(settings, spec, "push")(make_frame(v=[0.25]))
    assert [(r["view"], r["path"]) for r in list_reports(settings.offline_root)] == [("a", "push"), ("a", "ingest")]
    assert history.read_bytes().endswith(b"}\n")


def test_drift_on_a_shifted_batch(settings: SimpleNamespace) -> None:
    spec = _drift_spec(fail=True)
    baseline = _batch(0.0, seed=1)
    save_baseline(
        settings.offline_root,
        "drifty",
        "test0001",
        {"rows": baseline.height, "features": profile_frame(baseline, ["v", "c"])},
    )
    rows, same = gate_for(settings, spec, "ingest")(_batch(0.0, seed=2))
    assert same.drift is not None and same.drift["drifted"] == [] and rows.height == 5000
    assert same.drift["psi"]["v"] < 0.05
    with pytest.raises(GateRejectedError, match="drift") as info:
        gate_for(settings, spec, "ingest")(_batch(1.5, seed=3))
    drift = info.value.result.drift  # type: ignore[attr-defined]
    assert drift["drifted"] == ["v"] and drift["psi"]["v"] > 0.2 and drift["psi"]["c"] < 0.05
    # Reported only, when the view does not make drift fail the gate.
    rows, warned = gate_for(settings, _drift_spec(fail=False), "ingest")(_batch(1.5, seed=3))
    assert rows.height == 5000 and warned.drift is not None and warned.drift["drifted"] == ["v"]


def test_drift_without_a_baseline_says_how_to_make_one(settings: SimpleNamespace) -> None:
    _, result = gate_for(settings, _drift_spec(fail=True), "ingest")(_batch(0.0))
    assert result.drift is not None and "featurestore profile drifty" in result.drift["message"]


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for k, v in attrs:
            if k in ("src", "href") and v and "://" in v:
                self.external.append(v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_report_parses_and_names_every_failed_check(settings: SimpleNamespace) -> None:
    spec = make_spec(
        {"x": ("Float64", [fs.in_range(0, 100), fs.not_null()]), "s": ("String", [fs.isin(["a", "b"])])},
        fs.Gate("warn", checks=[fs.min_rows(100)]),
        name="h",
    )
    _, result = gate_for(settings, spec, "ingest")(make_frame(x=[1.0, 1048.0, None, 3.0], s=["a", "b", "a", "q"]))
    page = render_html(result.to_dict(), {"features": profile_frame(make_frame(x=[1.0, 2.0]), ["x"])})
    parser = _Text()
    parser.feed(page)
    parser.close()
    text = " ".join(parser.text)
    for check in ["in_range(0, 100)", "not_null()", "isin(['a', 'b'])", "min_rows(100)"]:
        assert check in text
    assert "svg" in parser.tags and "rect" in parser.tags
    assert parser.external == [] and "script" not in parser.tags


def test_cli_validate_reports_report_and_profile(gated_repo: Callable[..., Path], tmp_path: Path) -> None:
    runner = CliRunner()
    repo = gated_repo("max_bad_fraction=0.1, drift=Drift(0.2)")
    r = runner.invoke(app, ["validate", "items", "--repo", str(repo)])
    assert r.exit_code == 1, r.output
    assert "rejected" in r.output and "in_range(0, 100)" in r.output
    clean = gated_repo("max_bad_fraction=0.1, drift=Drift(0.2)", frame=source_frame(), name="clean")
    r = runner.invoke(app, ["validate", "items", "--repo", str(clean)])
    assert r.exit_code == 0, r.output
    assert runner.invoke(app, ["apply", "--repo", str(clean)]).exit_code == 0
    assert runner.invoke(app, ["ingest", "--repo", str(clean)]).exit_code == 0
    r = runner.invoke(app, ["profile", "items", "--repo", str(clean)])
    assert r.exit_code == 0, r.output
    assert "baseline stored" in r.output
    assert runner.invoke(app, ["ingest", "--repo", str(clean)]).exit_code == 0
    r = runner.invoke(app, ["reports", "items", "--repo", str(clean)], env={"COLUMNS": "250"})
    assert r.exit_code == 0 and r.output.count("passed") == 2, r.output
    out = tmp_path / "report.html"
    r = runner.invoke(app, ["report", "--html", str(out), "--repo", str(clean)])
    assert r.exit_code == 0, r.output
    page = out.read_text()
    assert "Drift (population stability index)" in page and "<svg" in page
