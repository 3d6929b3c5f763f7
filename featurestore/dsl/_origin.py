"""Where a definition object was created, so errors can name its module."""

from __future__ import annotations

import sys

__all__ = ["defined_in"]


def defined_in() -> str:
    """The name of the first calling module outside the featurestore package."""
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not (name == "featurestore" or name.startswith("featurestore.")):
            return str(name)
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>"
