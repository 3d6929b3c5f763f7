"""The UI's data-quality pages as JSON: gate history, failures per check, the paged quarantine, drift."""

from __future__ import annotations

import bisect
import os
import threading
from pathlib import Path
from typing import Any

import orjson

from featurestore.errors import InvalidRequestError

__all__ = ["ReportCache", "quality", "quarantine_page", "rebin", "SKEW_PATH"]

# Reports appended by `featurestore skew` (not gate runs: they never count as a view's last gate status).
SKEW_PATH = "skew"
_SERIES = 500
_MAX_PAGE = 200


class ReportCache:
    """The report history parsed once per change of the file (it only grows), oldest first."""

    def __init__(self, offline_root: Path) -> None:
        from featurestore.validation.reports import history_file  # validation loads polars: not at start-up

        self.path = history_file(offline_root)
        self._stamp: tuple[int, int] | None = None
        self._reports: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def all(self) -> list[dict[str, Any]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if stamp != self._stamp:
                out = []
                for line in self.path.read_bytes().splitlines():
                    if line.strip():
                        try:
                            out.append(orjson.loads(line))
                        except orjson.JSONDecodeError:  # a torn last line after a crash
                            continue
                self._reports, self._stamp = out, stamp
            return self._reports

    def last_gates(self) -> dict[str, dict[str, Any]]:
        """The newest gate run of each view (skew reports and dry runs left out)."""
        out: dict[str, dict[str, Any]] = {}
        for r in reversed(self.all()):
            view = r.get("view")
            if view in out or r.get("dry_run") or r.get("path") == SKEW_PATH:
                continue
            out[str(view)] = {k: r.get(k) for k in ("run_id", "time", "path", "status", "bad_fraction", "message")}
        return out

    def skew(self, target: str | None = None) -> list[dict[str, Any]]:
        """The newest skew report per (target, view), optionally of one service or view."""
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for r in reversed(self.all()):
            if r.get("path") != SKEW_PATH:
                continue
            key = (str(r.get("target")), str(r.get("view")))
            if target is not None and key[0] != target:
                continue
            seen.setdefault(key, r)
        return list(seen.values())


def rebin(hist: dict[str, Any], edges: list[float]) -> dict[str, Any]:
    """Spread a histogram's counts over other bins, assuming values are uniform within each bin."""
    src, counts = hist.get("edges") or [], hist.get("counts") or []
    out = [0.0] * (len(edges) - 1)
    under, over = float(hist.get("under", 0)), float(hist.get("over", 0))
    first, last = edges[0], edges[-1]
    for i, c in enumerate(counts):
        lo, hi = src[i], src[i + 1]
        if not c:
            continue
        if hi <= lo:  # a zero-width bin: its values all sit at lo
            if lo < first:
                under += c
            elif lo > last:
                over += c
            else:
                out[min(max(bisect.bisect_right(edges, lo) - 1, 0), len(out) - 1)] += c
            continue
        width = hi - lo
        under += c * max(0.0, min(hi, first) - lo) / width
        over += c * max(0.0, hi - max(lo, last)) / width
        for j in range(len(out)):
            x, y = max(lo, edges[j]), min(hi, edges[j + 1])
            if y > x:
                out[j] += c * (y - x) / width
    return {"edges": list(edges), "counts": out, "under": under, "over": over}


def _shares(h: dict[str, Any]) -> dict[str, float]:
    bins = {"under": h.get("under", 0), "over": h.get("over", 0)} | {str(i): c for i, c in enumerate(h["counts"])}
    total = sum(bins.values())
    return {k: v / total for k, v in bins.items()} if total else {}


def _drift(offline_root: Path, view: str, version: str, latest: dict[str, Any] | None) -> dict[str, Any]:
    """Per feature: the baseline's and the newest ingest's histograms, side by side, and their PSI."""
    from featurestore.validation.profile import load_baseline, psi

    baseline = load_baseline(offline_root, view, version)
    if baseline is None:
        return {"status": "no baseline", "message": f"run `featurestore profile {view}` to store one", "features": []}
    batch = (latest or {}).get("profile") or {}
    features = []
    for name, base in (baseline.get("features") or {}).items():
        bh, h = base.get("histogram"), (batch.get(name) or {}).get("histogram")
        item: dict[str, Any] = {"feature": name, "baseline": bh, "batch": h, "psi": None}
        if bh and h and bh.get("edges") and h.get("edges"):
            if h["edges"] != bh["edges"]:
                h = item["batch"] = rebin(h, bh["edges"])
            item["psi"] = round(psi(_shares(bh), _shares(h)), 6) if _shares(h) and _shares(bh) else None
        features.append(item)
    return {
        "status": "ok",
        "baseline_rows": baseline.get("rows"),
        "baseline_created": baseline.get("created"),
        "batch_run": (latest or {}).get("run_id"),
        "threshold": ((latest or {}).get("drift") or {}).get("threshold"),
        "features": features,
    }


def quality(reports: ReportCache, offline_root: Path, view: str, version: str) -> dict[str, Any]:
    """Gate history (a series per write path), failures per check, quarantined runs and drift of one view."""
    mine = [r for r in reports.all() if r.get("view") == view and not r.get("dry_run")]
    gates = [r for r in mine if r.get("path") != SKEW_PATH]
    series = [
        {
            k: r.get(k)
            for k in (
                "time",
                "run_id",
                "path",
                "status",
                "rows_checked",
                "rows_written",
                "rows_quarantined",
                "bad_fraction",
            )
        }
        for r in gates[-_SERIES:]
    ]
    checks: dict[str, dict[str, Any]] = {}
    for r in gates:
        for label, f in (r.get("failures") or {}).items():
            c = checks.setdefault(
                label, {"label": label, "check": f.get("check"), "column": f.get("column"), "rows": 0, "runs": 0}
            )
            c["rows"] += int(f.get("count") or 0)
            c["runs"] += 1
            c["last_run"] = r.get("run_id")
    for r in mine:
        if r.get("path") == SKEW_PATH:
            for label, f in (r.get("failures") or {}).items():
                c = checks.setdefault(label, {"label": label, "check": f.get("check"), "column": f.get("column")})
                c.setdefault("rows", 0)
                c["runs"] = c.get("runs", 0) + 1
                c["last_run"] = r.get("run_id")
    from featurestore.validation.quarantine import quarantine_dir

    runs_dir = quarantine_dir(offline_root, view)
    runs = sorted((p.name.removeprefix("run=") for p in runs_dir.glob("run=*")), reverse=True)
    latest = next((r for r in reversed(gates) if r.get("path") in ("ingest", "validate") and r.get("profile")), None)
    return {
        "view": view,
        "version": version,
        "series": series,
        "checks": sorted(checks.values(), key=lambda c: -int(c.get("rows") or 0)),
        "quarantine_runs": runs,
        "last": gates[-1] if gates else None,
        "drift": _drift(offline_root, view, version, latest),
        "skew": [r for r in mine if r.get("path") == SKEW_PATH][-1:],
    }


def quarantine_page(
    offline_root: Path,
    view: str,
    *,
    check: str | None = None,
    run: str | None = None,
    offset: int = 0,
    limit: int = 50,
    counts: Any = None,
) -> dict[str, Any]:
    """One page of quarantined rows (newest run first), filtered by check and run; never loads the whole set.

    The unfiltered total comes from the Parquet footers; a filter counts with a scan of one column.
    """
    import polars as pl

    from featurestore.validation.quarantine import quarantine_dir, scan_quarantine

    if offset < 0 or not 1 <= limit <= _MAX_PAGE:
        raise InvalidRequestError(f"offset must be >= 0 and limit between 1 and {_MAX_PAGE}")
    base = quarantine_dir(offline_root, view)
    if run is not None:
        if not run.replace("-", "").isalnum():
            raise InvalidRequestError(f"invalid run id {run!r}")
        files = [base / f"run={run}" / "part-0.parquet"]
        files = [f for f in files if f.is_file()]
    else:
        files = sorted(base.glob("run=*/part-0.parquet"), reverse=True)
    if not files:
        return {"total": 0, "offset": offset, "limit": limit, "columns": [], "rows": []}
    lazy = scan_quarantine(files)
    if check:
        lazy = lazy.filter(pl.col("_check") == check)
        total = int(lazy.select(pl.len()).collect().item())
    elif counts is not None:
        total = sum(counts.rows(f) for f in files)
    else:
        total = int(lazy.select(pl.len()).collect().item())
    page = lazy.slice(offset, limit).collect()
    front = ["_run_id", "_check", "_column", "_value", "_reasons"]
    columns = [c for c in front if c in page.columns] + [c for c in page.columns if c not in front]
    rows = page.select(columns).rows()
    return {"total": total, "offset": offset, "limit": limit, "columns": columns, "rows": [list(r) for r in rows]}
