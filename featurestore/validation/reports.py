"""Gate reports: an append-only JSON-lines history under <offline_root>/_reports/."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

import orjson

__all__ = ["REPORTS_FILE", "history_file", "append_report", "list_reports", "get_report"]

REPORTS_FILE = "_reports/history.jsonl"


def history_file(offline_root: Path) -> Path:
    return Path(offline_root) / REPORTS_FILE


def append_report(offline_root: Path, report: dict[str, Any]) -> None:
    """Append one report as a line; a lock keeps concurrent writers' lines whole."""
    path = history_file(offline_root)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = orjson.dumps(report, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n"
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            end = fh.seek(0, 2)
            if end:  # a line torn by a full disk or a crash: end it, or this report would be glued onto it
                fh.seek(end - 1)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
            fh.write(line)
            fh.flush()
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _read(offline_root: Path) -> list[dict[str, Any]]:
    path = history_file(offline_root)
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            try:
                out.append(orjson.loads(line))
            except orjson.JSONDecodeError:  # a torn last line after a crash: skip it
                continue
    return out


def list_reports(offline_root: Path, view: str | None = None, limit: int | None = 50) -> list[dict[str, Any]]:
    """Gate reports, newest first, optionally of one view; at most ``limit`` of them."""
    rows = [r for r in _read(offline_root) if view is None or r.get("view") == view]
    rows.reverse()
    return rows if limit is None else rows[:limit]


def get_report(offline_root: Path, run_id: str | None = None, view: str | None = None) -> dict[str, Any] | None:
    """One report by run id (a unique prefix is enough), or the newest one (of ``view``)."""
    for r in list_reports(offline_root, view, limit=None):
        if run_id is None or str(r.get("run_id", "")).startswith(run_id):
            return r
    return None
