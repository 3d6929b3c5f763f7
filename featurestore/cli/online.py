"""Online commands: materialize, materialize-incremental, serve, get, new-api-key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table

from featurestore.cli.common import (
    RepoOption,
    UsageError,
    console,
    errors_to_exit,
    find_repo_root,
    open_store,
    parse_time,
    split_names,
)

__all__ = ["register"]


def _report(results: list[Any]) -> None:
    table = Table(title="Materialize")
    for col in ("view", "version", "rows read", "rows written", "expired (ttl)", "seconds", "rows/s"):
        table.add_column(col)
    for r in results:
        table.add_row(
            r.view + (" [green](new version live)[/]" if r.switched else ""),
            r.version,
            f"{r.rows_read:,}",
            f"{r.rows_written:,}",
            f"{r.rows_expired:,}",
            f"{r.seconds:.2f}",
            f"{r.rows_per_second:,.0f}",
        )
    console.print(table)
    for r in results:
        start = r.start.isoformat(timespec="seconds") if r.start else "the beginning"
        console.print(f"{r.view}: window {start} .. {r.end.isoformat(timespec='seconds')}", highlight=False)


def materialize(
    views: list[str] = typer.Argument(None, help="Views to materialize (every online view by default)."),
    start: str = typer.Option(None, "--start", help="Only rows with event time >= START (ISO, UTC)."),
    end: str = typer.Option(None, "--end", help="Only rows with event time <= END (ISO, UTC; default now)."),
    repo: Path | None = RepoOption,
) -> None:
    """Write each entity's latest offline row in the window to the online store."""
    with errors_to_exit():
        window = parse_time(start, "--start"), parse_time(end, "--end")
        _report(open_store(repo).materialize(views or None, *window, progress=True))


def materialize_incremental(
    views: list[str] = typer.Argument(None, help="Views to materialize (every online view by default)."),
    end: str = typer.Option(None, "--end", help="Window end (ISO, UTC; default now)."),
    repo: Path | None = RepoOption,
) -> None:
    """Materialize each view from where the previous run ended up to END."""
    with errors_to_exit():
        _report(open_store(repo).materialize_incremental(views or None, parse_time(end, "--end"), progress=True))


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything says "serving"."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r} cannot be resolved ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As uvicorn binds: SO_REUSEADDR, so a port in TIME_WAIT is free and only a listener is refused.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(
                f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); "
                "another process uses it, pass another --port"
            ) from None


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on."),
    port: int = typer.Option(6566, "--port", min=1, max=65535, help="TCP port."),
    workers: int = typer.Option(1, "--workers", min=1, help="uvicorn worker processes."),
    repo: Path | None = RepoOption,
) -> None:
    """Serve online features over HTTP (Feast-compatible /get-online-features, /rows, /push, /docs)."""
    with errors_to_exit():
        from featurestore.config import load_settings, redact
        from featurestore.server import serve as run

        settings = load_settings(find_repo_root(repo))  # not a FeatureStore: the server never needs polars to start
        check_port_free(host, port)
        online = redact(settings.online)
        console.print(f"serving {settings.project!r} from {online} on http://{host}:{port}/docs", highlight=False)
        run(settings, host=host, port=port, workers=workers)


def get(
    features: list[str] = typer.Option(
        ..., "--features", "-f", help="view:feature references (repeat -f or separate with commas) or a service name."
    ),
    entity: list[str] = typer.Option(
        ..., "--entity", "-e", help='key=value[,value...] (JSON values: 1, "a"); a repeated key adds values.'
    ),
    repo: Path | None = RepoOption,
) -> None:
    """Look features up in the online store (no server needed)."""
    with errors_to_exit():
        entities: dict[str, list[Any]] = {}
        for item in entity:
            key, sep, values = item.partition("=")
            if not sep:
                raise typer.BadParameter(f"--entity {item!r}: expected key=value[,value...]")
            parsed = []
            for v in values.split(","):
                try:
                    parsed.append(orjson.loads(v))
                except orjson.JSONDecodeError:
                    parsed.append(v)
            entities.setdefault(key, []).extend(parsed)  # -e k=1 -e k=2 is k=1,2
        names = split_names(features)
        if not names:
            raise typer.BadParameter("--features: give view:feature references or a service name")
        refs: list[str] | str = names if len(names) > 1 or ":" in names[0] else names[0]
        result = open_store(repo).get_online_features(refs, entities)
        table = Table()
        statuses = result.statuses()
        for name in result.feature_names:
            table.add_column(name)
        columns = result.to_dict()
        n = len(next(iter(columns.values())))
        for i in range(n):
            table.add_row(
                *[
                    f"{columns[c][i]!r}" + ("" if statuses[c][i] == "PRESENT" else f" [dim]{statuses[c][i]}[/]")
                    for c in result.feature_names
                ]
            )
        console.print(table)


def new_api_key(
    name: str = typer.Option("client", "--name", help="A name for the key (shown in logs, never the key)."),
    services: list[str] = typer.Option(None, "--services", help="Feature services the key may read (default all)."),
    push: bool = typer.Option(False, "--push/--no-push", help="Whether the key may POST /push."),
) -> None:
    """Print a fresh random API key once, and the featurestore.toml table holding only its hash."""
    from featurestore.server.auth import new_api_key as fresh
    from featurestore.server.auth import toml_snippet

    key = fresh()
    console.print("API key (shown once, give it to the client):", highlight=False)
    console.print(key, highlight=False, markup=False)
    console.print("\nAdd to featurestore.toml (or FEATURESTORE_API_KEYS as a JSON list):\n", highlight=False)
    console.print(toml_snippet(key, name, services or None, push), highlight=False, markup=False, end="")


def register(app: typer.Typer) -> None:
    """Add the online commands to ``app``."""
    app.command("new-api-key")(new_api_key)
    app.command()(materialize)
    app.command("materialize-incremental")(materialize_incremental)
    app.command()(serve)
    app.command()(get)
