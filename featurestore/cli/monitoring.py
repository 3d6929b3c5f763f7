"""Monitoring commands: the web UI (`featurestore ui`) and training/serving skew (`featurestore skew`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from featurestore.cli.common import RepoOption, console, errors_to_exit, open_store
from featurestore.errors import RegistryError, did_you_mean

__all__ = ["register"]


def ui(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(6566, "--port", min=1, max=65535, help="TCP port."),
    repo: Path = RepoOption,
) -> None:
    """Run the read-only web UI (and the lookup API it uses) against a repository: open http://HOST:PORT/ui."""
    with errors_to_exit():
        from featurestore.cli.online import check_port_free
        from featurestore.server import serve as run

        store = open_store(repo)
        check_port_free(host, port)
        console.print(f"featurestore UI of {store.settings.project!r} on http://{host}:{port}/ui")
        run(store.settings, host=host, port=port, workers=1)


def _fmt(v: float | None, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:.2%}" if pct else f"{v:.4f}"


def skew(
    target: str = typer.Argument(None, help="A feature service or view with a served-feature log (all by default)."),
    since: str = typer.Option(None, "--since", help="Only lookups served from this day on (YYYY-MM-DD)."),
    threshold: float = typer.Option(
        None, "--threshold", help="PSI above which a feature fails (default: the view's Drift psi_threshold)."
    ),
    repo: Path = RepoOption,
) -> None:
    """Compare served values with the training set saved from the same features and with the offline profile."""
    from featurestore.skew import compute_skew

    with errors_to_exit():
        store = open_store(repo)
        state = store.state()
        if target is not None and target not in state.services and target not in state.views:
            hint = did_you_mean(target, [*state.services, *state.views])
            raise RegistryError(
                f"no served-feature log for {target!r}: no feature service or view has that name{hint}; "
                "see `featurestore list`"
            )
        reports = compute_skew(store.settings, state, target, since=since, threshold=threshold)
        if not reports:
            console.print("no served-feature log yet: set log_sample_rate > 0 on the server")
            return
        for r in reports:
            sk = r["skew"]
            style = "yellow" if r["status"] == "warned" else "green"
            table = Table(
                title=f"{r['target']} / {r['view']}: {sk['served_rows']:,} served rows, [{style}]{r['status']}[/]",
                caption=f"training set: {sk['training_set'] or 'none found'}; threshold: {sk['threshold']}",
            )
            for col in ("feature", "PSI vs training", "PSI vs profile", "null served", "null trained"):
                table.add_column(col)
            table.add_column("NOT_FOUND")
            table.add_column("OUTSIDE_MAX_AGE")
            for f in sk["features"]:
                table.add_row(
                    f["feature"],
                    _fmt(f["psi_training"]),
                    _fmt(f["psi_profile"]),
                    _fmt(f["null_served"], True),
                    _fmt(f["null_trained"], True),
                    _fmt(f["not_found"], True),
                    _fmt(f["outside_max_age"], True),
                )
            console.print(table)


def register(app: typer.Typer) -> None:
    """Add the monitoring commands to ``app``."""
    app.command()(ui)
    app.command()(skew)
