"""Data-quality commands: validate, reports, report --html, profile."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, err_console, errors_to_exit, open_store, parse_time
from featurestore.errors import RegistryError, did_you_mean

__all__ = ["register", "print_result"]

_STYLE = {"passed": "green", "quarantined": "yellow", "warned": "yellow", "rejected": "bold red"}


def print_result(report: dict[str, Any]) -> None:
    """A gate report as a summary line and a table of failed checks."""
    status = report["status"]
    console.print(f"[{_STYLE.get(status, '')}]{status}[/]: {report['message']}", highlight=False)
    failures = report.get("failures") or {}
    if failures:
        table = Table(title=f"Failed checks ({report['view']} v={report['version']})")
        for col in ("column", "check", "level", "failures"):
            table.add_column(col)
        for f in failures.values():
            table.add_row(f.get("column") or "(batch)", str(f["check"]), f["level"], f"{f['count']:,}")
        console.print(table)
    sample = report.get("sample") or []
    if sample:
        table = Table(title="Sample of failing rows")
        for col in ("row", "key", "column", "check", "value"):
            table.add_column(col)
        for s in sample[:10]:
            key = ", ".join(f"{k}={v}" for k, v in (s.get("key") or {}).items())
            value = "null" if s.get("value") is None else str(s["value"])
            table.add_row(str(s["row"]), key, str(s.get("column")), str(s["check"]), value)
        console.print(table)
    drift = report.get("drift")
    if drift and drift.get("drifted"):
        console.print(f"[yellow]drift[/] (PSI > {drift['threshold']}): {', '.join(drift['drifted'])}")
    for note in report.get("notes") or []:
        console.print(f"[dim]{note}[/]")


def validate(
    view: str = typer.Argument(..., help="The feature view to validate."),
    start: str = typer.Option(None, "--start", help="Only rows with event time >= START (ISO, UTC)."),
    end: str = typer.Option(None, "--end", help="... and < END (ISO, UTC)."),
    html: Path = typer.Option(None, "--html", help="Also write the report as a self-contained HTML page."),
    repo: Path | None = RepoOption,
) -> None:
    """Run a view's gate on its source data without writing anything; exit 1 if it would reject."""
    with errors_to_exit():
        store = open_store(repo)
        result = store.validate(view, parse_time(start, "--start"), parse_time(end, "--end"))
        report = result.to_dict()
        print_result(report)
        if html is not None:
            _write_html(store, report, html)
    if result.rejected:
        raise typer.Exit(1)


def reports(
    view: str = typer.Argument(None, help="Only this view's reports."),
    limit: int = typer.Option(20, "--limit", "-n", min=1, help="How many reports (newest first)."),
    repo: Path | None = RepoOption,
) -> None:
    """List the gate report history (every ingest, materialize and push)."""
    with errors_to_exit():
        store = open_store(repo)
        rows = store.reports(view, limit)
        if not rows:
            views = store.state().views if view is not None else {}
            if view is not None and view not in views:
                # Reports outlive a removed view, so only a name with none is refused.
                hint = did_you_mean(view, views)
                raise RegistryError(f"no gate reports of {view!r}, which is not an applied feature view{hint}")
            console.print("no gate reports yet")
            return
        table = Table(title="Gate reports")
        for col in ("time", "run", "view", "version", "path", "policy", "status", "checked", "written", "quarantined"):
            table.add_column(col, overflow="fold")
        table.add_column("top failures", overflow="fold")
        for r in rows:
            top = sorted((r.get("failures") or {}).items(), key=lambda kv: -kv[1]["count"])[:3]
            table.add_row(
                str(r.get("time", ""))[:19],
                str(r.get("run_id")),
                str(r.get("view")),
                str(r.get("version")),
                str(r.get("path")),
                str(r.get("policy")),
                f"[{_STYLE.get(r.get('status', ''), '')}]{r.get('status')}[/]",
                f"{r.get('rows_checked', 0):,}",
                f"{r.get('rows_written', 0):,}",
                f"{r.get('rows_quarantined', 0):,}",
                "; ".join(f"{k} ({v['count']:,})" for k, v in top),
            )
        console.print(table)


def _write_html(store: Any, report: dict[str, Any], out: Path) -> None:
    from featurestore.validation.html import render_html
    from featurestore.validation.profile import load_baseline

    baseline = load_baseline(store.settings.offline_root, report["view"], report["version"])
    out.write_text(render_html(report, baseline), encoding="utf-8")
    console.print(f"HTML report written to {out}")


def report(
    html: Path = typer.Option(..., "--html", help="Where to write the HTML page."),
    run: str = typer.Option(None, "--run", help="Run id (or a unique prefix); the newest run by default."),
    view: str = typer.Option(None, "--view", help="The newest run of this view."),
    repo: Path | None = RepoOption,
) -> None:
    """Write one gate run as a self-contained HTML page (checks, failures, histograms vs baseline)."""
    from featurestore.validation import get_report

    with errors_to_exit():
        store = open_store(repo)
        found = get_report(store.settings.offline_root, run, view)
        if found is None:
            err_console.print("[bold red]error:[/] no such gate report; see `featurestore reports`")
            raise typer.Exit(1)
        _write_html(store, found, html)


def profile(
    view: str = typer.Argument(..., help="The feature view to profile."),
    training_set: Path = typer.Option(None, "--training-set", help="Profile a saved training set instead."),
    repo: Path | None = RepoOption,
) -> None:
    """Compute and store a view's statistics baseline (for drift checks) from the offline store."""
    from featurestore.validation.profile import profile_view

    with errors_to_exit():
        store = open_store(repo)
        spec = store.state().view(view)
        result = profile_view(
            store.settings.offline_root, spec, store.layout.files(spec.name, spec.version), training_set=training_set
        )
        table = Table(title=f"Profile of {view} v={spec.version} ({result['rows']:,} rows, {result['source']})")
        for col in ("feature", "dtype", "nulls", "min", "p50", "max", "top"):
            table.add_column(col)
        for name, s in result["features"].items():
            q = s.get("quantiles") or {}
            top = ", ".join(str(v) for v, _ in (s.get("top") or [])[:3])
            table.add_row(
                name,
                s["dtype"],
                f"{s['null_fraction']:.2%}",
                _num(s.get("min")),
                _num(q.get("0.5")),
                _num(s.get("max")),
                top,
            )
        console.print(table)
        console.print(f"baseline stored at {result.get('path')}")


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)


def register(app: typer.Typer) -> None:
    """Add the data-quality commands to ``app``."""
    app.command()(validate)
    app.command()(reports)
    app.command()(report)
    app.command()(profile)
