"""Validation gates: definitions -> pandera schemas, policies, quarantine, reports.

STUB (to be replaced by the validation-gate work): ``gate_for`` returns a gate that
passes every row. The signature is the contract every write path relies on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

__all__ = ["gate_for", "Gate"]

# A gate takes typed rows (join keys, ``event_timestamp``, features) and returns
# (rows that may be written, a result object); it raises GateRejectedError when the
# policy rejects the whole batch (then nothing may be written).
Gate = Callable[[pl.DataFrame], tuple[pl.DataFrame, Any]]


def gate_for(settings: Any, spec: Any, path: str) -> Gate:
    """The gate of view version ``spec`` (a ViewSpec) on write path ``path``.

    ``path`` is "ingest", "materialize" or "push"; ``settings`` gives the offline
    root where quarantine files and reports go.
    """

    def gate(df: pl.DataFrame) -> tuple[pl.DataFrame, Any]:
        return df, None

    return gate
