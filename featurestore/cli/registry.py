"""Registry commands: plan, apply, list."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, open_store

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


def plan(repo: Path = RepoOption) -> None:
    """Show what apply would add, remove or change."""
    with errors_to_exit():
        _print_plan(open_store(repo).plan(), "Plan")


def apply(
    repo: Path = RepoOption,
    allow_breaking: bool = typer.Option(False, "--allow-breaking", help="Accept removed features or changed dtypes."),
) -> None:
    """Register the definitions (a new version for each changed view)."""
    with errors_to_exit():
        store = open_store(repo)
        result = store.apply(allow_breaking=allow_breaking)
        _print_plan(result, "Applied")
        state = store.state()
        console.print(f"Registry {store.registry.path} at serial {state.serial}.")


def list_views(repo: Path = RepoOption) -> None:
    """List registered feature views, their versions and features."""
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
                str(spec.ttl or "-"),
                "yes" if spec.online else "no",
            )
        console.print(table)
        for name, svc in sorted(state.services.items()):
            console.print(f"service [bold]{name}[/]: {', '.join(svc['features'])}")


def register(app: typer.Typer) -> None:
    app.command()(plan)
    app.command()(apply)
    app.command("list")(list_views)
