"""The ``featurestore`` command: a typer app assembled from one module per area."""

from __future__ import annotations

import typer

from featurestore.cli import describe, offline, online, push, quality, registry

__all__ = ["app", "main"]

app = typer.Typer(
    name="featurestore",
    help="Define, validate, ingest and serve features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for module in (registry, offline, online, quality):
    module.register(app)
describe.register(app)
push.register(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
