"""The ``featurestore`` command: a typer app assembled from one module per area."""

from __future__ import annotations

import typer

from featurestore._version import __version__
from featurestore.cli import describe, init, monitoring, offline, online, push, quality, registry

__all__ = ["app", "main"]

app = typer.Typer(
    name="featurestore",
    help="Define, validate, ingest and serve features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (registry, offline, online, quality, monitoring, init):
    module.register(app)
describe.register(app)
push.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"featurestore {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Define, validate, ingest and serve features."""


def main() -> None:
    app(prog_name="featurestore")


if __name__ == "__main__":
    main()
