"""Offline commands: ingest and training-set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, open_store, parse_time, split_names

__all__ = ["register"]


def ingest(
    views: list[str] = typer.Argument(None, help="Views to ingest (all by default)."),
    start: str = typer.Option(None, "--start", help="Replace only rows with event time >= START (ISO, UTC)."),
    end: str = typer.Option(None, "--end", help="... and < END (ISO, UTC)."),
    repo: Path | None = RepoOption,
) -> None:
    """Read sources, run transforms and write the Parquet offline store."""
    with errors_to_exit():
        window = parse_time(start, "--start"), parse_time(end, "--end")
        results = open_store(repo).ingest(views or None, *window, progress=True)
        table = Table(title="Ingest")
        for col in ("view", "version", "read", "duplicates dropped", "quarantined", "written", "gate", "partitions"):
            table.add_column(col, justify="right" if col in ("read", "written", "partitions") else "left")
        for r in results:
            g = r.gate
            table.add_row(
                r.view,
                r.version,
                f"{r.rows_read:,}",
                f"{r.duplicates_dropped:,}",
                _quarantined(g),
                f"{r.rows_written:,}",
                g.status if g else "-",
                str(len(r.partitions)),
            )
        console.print(table)


def _quarantined(gate: Any) -> str:
    """Rows set aside by the gate, with the check that failed most (``3 (rate: in_range(0, 1))``)."""
    if gate is None or not gate.rows_quarantined:
        return "0" if gate is not None else "-"
    top = max(gate.failures.items(), key=lambda kv: kv[1].get("count", 0), default=None)
    return f"{gate.rows_quarantined:,}" + (f" (top: {top[0]})" if top else "")


def training_set(
    entities: Path = typer.Option(None, "--entities", help="Entity rows: a Parquet or CSV file."),
    features: list[str] = typer.Option(
        None, "--features", "-f", help="view:feature references (repeat -f or separate with commas) or a service name."
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Where to write the training set (.parquet or .csv)."),
    manifest: Path = typer.Option(None, "--manifest", help="Rebuild the training set described by this manifest."),
    timestamp_column: str = typer.Option("event_timestamp", "--timestamp-column"),
    full_feature_names: bool = typer.Option(False, "--full-feature-names"),
    repo: Path | None = RepoOption,
) -> None:
    """Build a point-in-time-correct training set (or rebuild one from its manifest)."""
    with errors_to_exit():
        store = open_store(repo)
        if manifest is not None:
            df = store.rebuild_training_set(manifest)
            if out is not None:
                df.write_csv(out) if out.suffix == ".csv" else df.write_parquet(out)
        else:
            if entities is None or not features or out is None:
                raise typer.BadParameter("--entities, --features and --out are required (or --manifest)")
            names = split_names(features)
            refs: list[str] | str = names if len(names) > 1 or ":" in names[0] else names[0]
            df = store.get_training_set(
                entities,
                refs,
                out=out,
                timestamp_column=timestamp_column,
                full_feature_names=full_feature_names,
                output="polars",
                progress=True,
            )
        console.print(df.head(5))
        console.print(f"{df.height:,} rows" + (f" written to {out}" if out else ""))


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command("training-set")(training_set)
