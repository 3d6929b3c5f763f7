"""The push command: rows from a file, through the view's push gate, into the online store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, open_store

__all__ = ["register", "push"]


def push(
    view: str = typer.Argument(..., help="The feature view to push to."),
    file: Path = typer.Option(..., "--file", help="Rows: .parquet, .csv or .jsonl (keys, event_timestamp, features)."),
    to_offline: bool = typer.Option(False, "--to-offline", help="Also merge the rows into the offline store."),
    to_online: bool = typer.Option(
        True, "--online/--no-online", help="--no-online with --to-offline: write the offline store only."
    ),
    repo: Path | None = RepoOption,
) -> None:
    """Push rows from a file through the view's push gate (as POST /push does); exit 1 if the gate rejects them."""
    with errors_to_exit():
        result = open_store(repo).push(view, file, to_offline=to_offline, to_online=to_online)
        table = Table(title=f"Push to {result.view} v={result.version}")
        for col in ("received", "written", "older than stored", "expired (ttl)", "gate", "quarantined"):
            table.add_column(col)
        gate = result.gate
        table.add_row(
            f"{result.rows_received:,}",
            f"{result.rows_written:,}",
            f"{result.rows_stale:,}",
            f"{result.rows_expired:,}",
            gate.status if gate else "-",
            f"{gate.rows_quarantined:,} (run {gate.run_id})" if gate and gate.rows_quarantined else "0",
        )
        console.print(table)
        if result.offline_partitions:
            console.print(f"offline: {len(result.offline_partitions)} partition(s) rewritten", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``push`` to ``app``."""
    app.command()(push)
