"""Data-quality commands: validate, reports, report --html, profile (filled by the validation work)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the data-quality commands to ``app``."""
