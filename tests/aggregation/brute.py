"""A brute-force evaluation of the window definition, written from the issue's text (independent of the package)."""

from __future__ import annotations

import math
from typing import Any

US = 1_000_000
MINUTE = 60 * US

# (name, column, function, window in minutes); the same list is declared in the test repository.
AGGREGATIONS = [
    ("n_10m", "amount", "count", 10),
    ("n_1h", "amount", "count", 60),
    ("sum_10m", "amount", "sum", 10),
    ("sum_1h", "amount", "sum", 60),
    ("qty_1h", "qty", "sum", 60),
    ("mean_1h", "amount", "mean", 60),
    ("min_1h", "amount", "min", 60),
    ("max_10m", "qty", "max", 10),
    ("sd_1h", "amount", "stddev", 60),
    ("last_1h", "amount", "last", 60),
    ("last_m_10m", "merchant", "last", 10),
    ("merchants_1h", "merchant", "count_distinct", 60),
]
EXACT = {"count", "min", "max", "last", "count_distinct"}


def dedupe(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with an ``eid`` already seen for the same card are the same event (retries are identical copies)."""
    seen: set[tuple[int, str]] = set()
    out = []
    for e in events:
        if e["eid"] is not None:
            if (e["card_id"], e["eid"]) in seen:
                continue
            seen.add((e["card_id"], e["eid"]))
        out.append(e)
    return out


def brute(events: list[dict[str, Any]], card: int, t: int, granularity: int | None) -> dict[str, Any]:
    """Each aggregation for ``card`` at ``t`` (µs); ``events`` in source order (``ts``/``created`` in µs)."""
    out: dict[str, Any] = {}
    for name, column, function, minutes in AGGREGATIONS:
        w = minutes * MINUTE
        lo = (t // granularity * granularity if granularity else t) - w
        rows = [(i, e) for i, e in enumerate(events) if e["card_id"] == card and lo < e["ts"] <= t]
        if function == "count":
            out[name] = len(rows)
            continue
        vals = [e[column] for _, e in rows if e[column] is not None]
        if function == "sum":
            out[name] = sum(vals) if vals else 0
        elif function == "count_distinct":
            out[name] = len(set(vals))
        elif not vals:
            out[name] = None
        elif function == "mean":
            out[name] = sum(vals) / len(vals)
        elif function == "min":
            out[name] = min(vals)
        elif function == "max":
            out[name] = max(vals)
        elif function == "stddev":
            if len(vals) < 2:
                out[name] = None
            else:
                m = sum(vals) / len(vals)
                out[name] = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
        elif function == "last":
            present = [(i, e) for i, e in rows if e[column] is not None]
            # the greatest event time, then the greatest created (none is least), then the later row
            best = max(
                present,
                key=lambda ie: (ie[1]["ts"], -math.inf if ie[1]["created"] is None else ie[1]["created"], ie[0]),
            )
            out[name] = best[1][column]
    return out


def same(function: str, got: Any, want: Any) -> bool:
    if function in EXACT or want is None or got is None:
        return got == want
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-9)
