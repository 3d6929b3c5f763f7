"""Validation gates: definitions -> pandera schemas, policies, quarantine, reports, profiles and drift."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from featurestore.validation.compile import CompiledGate, compile_gate
from featurestore.validation.gate import GateResult, run_gate
from featurestore.validation.quarantine import read_quarantine
from featurestore.validation.reports import get_report, list_reports

__all__ = [
    "GateFn",
    "gate_for",
    "validate_frame",
    "GateResult",
    "CompiledGate",
    "compile_gate",
    "list_reports",
    "get_report",
    "read_quarantine",
]

# A gate takes typed rows (join keys, ``event_timestamp``, features) and returns
# (rows that may be written, a GateResult); it raises GateRejectedError when the
# policy rejects the whole batch (then nothing may be written). Keyword arguments
# (``known``, ``source``, ``duplicates_dropped``) are those of ``run_gate``.
GateFn = Callable[..., tuple[pl.DataFrame, GateResult]]


def gate_for(settings: Any, spec: Any, path: str) -> GateFn:
    """The gate of view version ``spec`` (a ViewSpec) on write path ``path``.

    ``path`` is "ingest", "materialize" or "push"; ``settings.offline_root`` is where
    quarantined rows (``_quarantine/<view>/run=<id>/``) and the report history go.
    The pandera schema is compiled once per view version and checks, and cached::

        rows, result = gate_for(settings, spec, "ingest")(df)
        result.to_dict()["rows_quarantined"]
    """

    def gate(df: pl.DataFrame, **batch: Any) -> tuple[pl.DataFrame, GateResult]:
        return run_gate(settings, spec, path, df, **batch)

    return gate


def validate_frame(settings: Any, spec: Any, df: pl.DataFrame, **batch: Any) -> GateResult:
    """Run the gate on ``df`` without writing anything (no store, no quarantine, no report).

    Returns the result even when the policy would reject the batch (``result.rejected``).
    """
    from featurestore.errors import GateRejectedError

    try:
        return run_gate(settings, spec, "validate", df, dry_run=True, **batch)[1]
    except GateRejectedError as exc:
        assert isinstance(exc.result, GateResult)
        return exc.result
