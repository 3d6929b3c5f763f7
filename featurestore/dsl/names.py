"""The one pattern every name that can reach SQL, a file path or a Redis key must match, and the
character no key value may hold."""

from __future__ import annotations

import re

__all__ = ["IDENTIFIER", "KEY_SEPARATOR", "check_identifier", "quote"]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# Composite keys are joined with the ASCII unit separator (online rows, window states), which no key
# value may contain: a push refuses it, ingest quarantines the row.
KEY_SEPARATOR = "\x1f"


def check_identifier(name: object, what: str) -> str:
    """Return ``name`` if it is a plain identifier, else raise ``ValueError`` naming ``what``."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise ValueError(
            f"{what} name {name!r} is not a valid identifier "
            "(letters, digits and '_', starting with a letter or '_', at most 63 characters)"
        )
    return name


def quote(name: str) -> str:
    """Quote a validated identifier for DuckDB/SQLite SQL."""
    check_identifier(name, "column")
    return '"' + name + '"'
