"""Registry commands: plan, apply, list."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, format_duration, open_store

__all__ = ["register"]


def _print_plan(plan, title: str) -> None:  # type: ignore[no-untyped-def]
    if plan.empty:
        console.print("No changes: the registry matches the definitions.")
        return
    table = Table(title=title)
    for col in ("action", "kind", "name", "details"):
        table.add_column(col)
    colors = {"add": "green", "remove": "red", "change": "yellow"}
    for c in plan.changes:
        details = "\n".join(c.details) + ("\n[bold red]BREAKING[/]" if c.breaking else "")
        table.add_row(f"[{colors[c.action]}]{c.action}[/]", c.kind, c.name, details)
    console.print(table)


NoDataCheckOption = typer.Option(
    False, "--no-data-check", help="Skip running changed views on a sample (for sources not reachable from here)."
)
SampleRowsOption = typer.Option(
    None,
    "--sample-rows",
    min=0,
    help="Source rows each changed view is checked on (default: setting plan_sample_rows).",
)


def _print_checked(plan) -> None:  # type: ignore[no-untyped-def]
    for name, rows in plan.data_checked.items():
        console.print(f"data check: {name} ran on a sample ({rows:,} rows) and matches its definition", highlight=False)


def plan(
    repo: Path | None = RepoOption, no_data_check: bool = NoDataCheckOption, sample_rows: int = SampleRowsOption
) -> None:
    """Show what apply would add, remove or change (after running changed views on a sample)."""
    with errors_to_exit():
        result = open_store(repo).plan(data_check=not no_data_check, sample_rows=sample_rows)
        _print_plan(result, "Plan")
        _print_checked(result)


def apply(
    repo: Path | None = RepoOption,
    allow_breaking: bool = typer.Option(False, "--allow-breaking", help="Accept removed features or changed dtypes."),
    no_data_check: bool = NoDataCheckOption,
    sample_rows: int = SampleRowsOption,
) -> None:
    """Register the definitions (a new version for each changed view), refusing ones their data contradicts."""
    with errors_to_exit():
        store = open_store(repo)
        result = store.apply(allow_breaking=allow_breaking, data_check=not no_data_check, sample_rows=sample_rows)
        _print_plan(result, "Applied")
        _print_checked(result)
        state = store.state()
        console.print(f"Registry {store.registry.location} at serial {state.serial}.")


def list_views(repo: Path | None = RepoOption) -> None:
    """List registered feature views (versions, keys, features), services and entities."""
    with errors_to_exit():
        state = open_store(repo).state()
        table = Table(title=f"Feature views (registry serial {state.serial})")
        for col in ("view", "version", "keys", "features", "ttl", "online"):
            table.add_column(col)
        for name, spec in sorted(state.views.items()):
            table.add_row(
                name,
                spec.version,
                ", ".join(spec.join_keys),
                ", ".join(f"{f}:{t}" for f, t in spec.features.items()),
                format_duration(spec.raw.get("ttl_seconds")),
                "yes" if spec.online else "no",
            )
        console.print(table)
        for name, svc in sorted(state.services.items()):
            console.print(f"service [bold]{name}[/]: {', '.join(svc['features'])}")
        for name, ent in sorted(state.entities.items()):
            keys = ", ".join(f"{k}:{t}" if t else k for k, t in ent["join_keys"].items())
            console.print(f"entity [bold]{name}[/]: {keys}")


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(apply)
    app.command("list")(list_views)
