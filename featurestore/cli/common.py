"""Shared CLI plumbing: the repo option, the console, and turning errors into clean exits."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from featurestore.config import redact
from featurestore.errors import FeatureStoreError

__all__ = ["console", "err_console", "RepoOption", "open_store", "errors_to_exit"]

console = Console()
err_console = Console(stderr=True)

RepoOption = typer.Option(Path("."), "--repo", "-r", help="Feature repository folder (holds featurestore.toml).")


@contextlib.contextmanager
def errors_to_exit() -> Iterator[None]:
    """Print a FeatureStoreError as one clear line and exit 1, instead of a traceback."""
    try:
        yield
    except FeatureStoreError as exc:
        # The message is escaped (a path or name may hold "[...]") and not wrapped, so it stays one line.
        text = f"[bold red]error:[/] {type(exc).__name__}: {escape(redact(str(exc)))}"
        err_console.print(text, highlight=False, markup=True, soft_wrap=True)
        raise typer.Exit(1) from None


def open_store(repo: Path):  # type: ignore[no-untyped-def]
    from featurestore.store import FeatureStore

    return FeatureStore(repo)
