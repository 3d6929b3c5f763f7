"""Served-feature logging: a sampled share of lookups, queued in memory and written to Parquet off the request path."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurestore.serving.lookup import LookupPlan

__all__ = ["ServedLog", "SERVED_DIR", "served_dir", "served_files", "status_column", "value_column"]

SERVED_DIR = "_served"
# Entity rows held in memory at most; past it whole lookups are dropped (and counted), never blocking a request.
MAX_QUEUED_ROWS = 200_000
FLUSH_SECONDS = 1.0

logger = logging.getLogger("featurestore.served_log")


def served_dir(offline_root: Path, target: str | None = None) -> Path:
    """``<offline_root>/_served`` or the folder of one service or view."""
    base = Path(offline_root) / SERVED_DIR
    return base if target is None else base / target


def served_files(offline_root: Path, target: str, since: str | None = None) -> list[Path]:
    """The Parquet files logged for a service or view, from the day ``since`` (YYYY-MM-DD) on."""
    base = served_dir(offline_root, target)
    files = sorted(base.glob("date=*/part-*.parquet"))
    if since:
        files = [f for f in files if f.parent.name.removeprefix("date=") >= since[:10]]
    return files


def value_column(view: str, feature: str) -> str:
    """A feature's column in the served log (always ``view__feature``, whatever the request asked)."""
    return f"{view}__{feature}"


def status_column(view: str, feature: str) -> str:
    return f"{view}__{feature}__status"


class ServedLog:
    """Queue sampled lookups and write them as Parquet under ``<offline_root>/_served/<target>/date=.../``.

    ``record`` is the only call on the request path: a sampling draw and an append under a
    lock (the response dict is referenced, not copied). A background thread turns the queue
    into columns and files every ``flush_seconds``; ``close`` (the app's shutdown) writes what
    is left. When ``max_rows`` entity rows are waiting, further lookups are dropped and counted.
    The target is the feature service, or each view of a plain feature list.
    """

    def __init__(
        self,
        offline_root: Path,
        sample_rate: float,
        *,
        max_rows: int = MAX_QUEUED_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
    ) -> None:
        self.root = served_dir(offline_root)
        self.sample_rate = sample_rate
        self.max_rows = max_rows
        self.flush_seconds = flush_seconds
        self.dropped = 0
        self.logged = 0
        self.files_written = 0
        self._items: list[tuple[int, str | None, LookupPlan, dict[str, Any]]] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seq = 0

    def record(self, service: str | None, plan: LookupPlan, result: dict[str, Any]) -> None:
        """Queue one answered lookup (if sampled); never blocks on I/O."""
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        n = len(result["results"][0]["values"]) if result["results"] else 0
        stamp = time.time_ns() // 1000
        with self._lock:
            if self._queued + n > self.max_rows:
                self.dropped += n
                return
            self._items.append((stamp, service, plan, result))
            self._queued += n

    def start(self) -> None:
        """Start the background writer."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="featurestore-served-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the writer and write everything still queued (a clean shutdown loses nothing)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:  # a full disk must not kill the writer: count, log, go on
                logger.exception("served-feature log: a flush failed")

    def flush(self) -> int:
        """Write the queued lookups now; return how many entity rows were written."""
        with self._flush_lock:
            with self._lock:
                items, self._items, self._queued = self._items, [], 0
            if not items:
                return 0
            written = 0
            for (target, day), frame in _frames(items):
                self._write(target, day, frame)
                written += frame.height
            self.logged += written
            return written

    def _write(self, target: str, day: str, frame: Any) -> None:
        folder = self.root / target / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"part-{time.time_ns()}-{os.getpid()}-{self._seq}.parquet"
        tmp = folder / f".{name}.tmp"
        frame.write_parquet(tmp)
        tmp.replace(folder / name)  # readers never see half a file
        self.files_written += 1


def _frames(items: list[tuple[int, str | None, LookupPlan, dict[str, Any]]]) -> Iterator[tuple[tuple[str, str], Any]]:
    """Group queued lookups by (target, day, columns) and build one polars frame per group.

    Each lookup becomes one JSON line of column lists (orjson, in C) that polars parses and explodes
    in Rust, without holding the GIL: converting the values as Python objects would compete with the
    request path for it.
    """
    import io

    import orjson
    import polars as pl

    groups: dict[tuple[str, str, tuple[str, ...]], list[tuple[int, dict[str, Any]]]] = {}
    for stamp, service, plan, result in items:
        day = datetime.fromtimestamp(stamp / 1e6, UTC).date().isoformat()
        for target, columns in _columns(service, plan, result):
            groups.setdefault((target, day, tuple(columns)), []).append((stamp, columns))
    for (target, day, names), lookups in groups.items():
        try:
            text = b"\n".join(
                orjson.dumps({"request_time": t, **c}, option=orjson.OPT_SERIALIZE_NUMPY) for t, c in lookups
            )
            frame = pl.read_ndjson(io.BytesIO(text), infer_schema_length=None).explode(list(names))
        except Exception:  # values of mixed types in one column: the slower, more tolerant path
            frame = _from_lists(lookups)
        frame = frame.with_columns(pl.col("request_time").cast(pl.Int64).cast(pl.Datetime("us", "UTC")))
        # An all-null column has no type: store it as text so every file of a target reads together.
        frame = frame.with_columns(pl.col(c).cast(pl.String) for c, t in frame.schema.items() if t == pl.Null)
        yield (target, day), frame.select("request_time", *names)


def _from_lists(lookups: list[tuple[int, dict[str, Any]]]) -> Any:
    import polars as pl

    data: dict[str, list[Any]] = {"request_time": []}
    for stamp, columns in lookups:
        n = len(next(iter(columns.values()))) if columns else 0
        data["request_time"].extend([stamp] * n)
        for name, values in columns.items():
            data.setdefault(name, []).extend(values)
    return pl.DataFrame(data, strict=False)


def _columns(service: str | None, plan: LookupPlan, result: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The log columns of one lookup, per target: entity keys, then each feature's value and status."""
    results = result["results"]
    # The entity columns come first: the views' join keys and any echoed request columns.
    k = len(results) - sum(len(v.features) for v in plan.views)
    names = result["metadata"]["feature_names"][:k]
    keys = {name: results[i]["values"] for i, name in enumerate(names)}
    pos = k
    per_view = []
    for view in plan.views:
        cols: dict[str, Any] = {}
        for feature in view.features:
            cols[value_column(view.name, feature)] = results[pos]["values"]
            cols[status_column(view.name, feature)] = results[pos]["statuses"]
            pos += 1
        per_view.append((view, cols))
    if service is not None:
        merged: dict[str, Any] = dict(keys)
        for _, cols in per_view:
            merged.update(cols)
        yield service, merged
        return
    for view, cols in per_view:
        yield view.name, {**{j: keys[j] for j in view.join_keys if j in keys}, **cols}
