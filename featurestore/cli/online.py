"""Online commands: materialize, materialize-incremental, serve, get (filled by the online store work)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the online commands to ``app``."""
