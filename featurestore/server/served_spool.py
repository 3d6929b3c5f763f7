"""Turn served-log spool files (stored rows as JSON lines) into Parquet partitions ``_served/<target>/date=.../``."""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from featurestore.server.served_log import SPOOL_FORMAT, served_dir, spool_dir, status_column, value_column
from featurestore.serving.lookup import NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE, PRESENT

__all__ = ["convert_spool", "sealed_files", "process_alive", "main"]

# Raw bytes of spool lines parsed at once: bounds the converter's memory whatever the file size.
CHUNK_BYTES = 32 * 1024 * 1024

logger = logging.getLogger("featurestore.served_log")


def process_alive(pid: int) -> bool:
    """Whether a process of this id runs (a spool's or a metrics file's writer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sealed_files(offline_root: Path) -> list[Path]:
    """Spool files ready to convert: sealed ones, and open ones whose server process is gone (a crash)."""
    folder = spool_dir(offline_root)
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".jsonl":
            out.append(path)
        elif path.suffix == ".open":
            pid = path.name.split("-")[1]
            if pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid)):
                out.append(path)
    return out


@contextlib.contextmanager
def _converter_lock(offline_root: Path, wait: bool) -> Iterator[bool]:
    """One converter at a time per offline root (several workers and `featurestore skew` share it)."""
    folder = spool_dir(offline_root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def convert_spool(offline_root: Path, *, wait: bool = False) -> int:
    """Convert every sealed spool file to Parquet and delete it; return the entity rows written.

    Without ``wait``, return 0 at once when another converter holds the lock. A file is converted in
    chunks of whole lines; each chunk's Parquet files are named after the spool file and chunk, so a
    conversion interrupted before the spool file is deleted is redone into the same names (no duplicates).
    """
    if not spool_dir(offline_root).is_dir():
        return 0  # nothing was ever logged here
    with _converter_lock(offline_root, wait) as mine:
        if not mine:
            return 0
        written = 0
        while files := sealed_files(offline_root):  # again until none: files sealed meanwhile are taken too
            for path in files:
                try:
                    written += _convert_file(offline_root, path)
                except Exception:  # kept for inspection, never retried in a loop
                    logger.exception("served-feature log: could not convert %s; renamed to .failed", path.name)
                    path.replace(path.with_suffix(".failed"))
                    continue
                path.unlink()
        return written


def _chunks(path: Path) -> Iterator[tuple[bytes, bytes]]:
    """The file's descriptor line, and its lookup lines in chunks of whole lines (a torn last line is left out)."""
    with open(path, "rb") as fh:
        desc = fh.readline()
        while lines := fh.readlines(CHUNK_BYTES):
            if not lines[-1].endswith(b"\n"):  # the torn last line of a crashed server: nothing to keep
                logger.warning("served-feature log: skipped a torn line in %s", path.name)
                lines.pop()
            if lines:
                yield desc, b"".join(lines)


def _convert_file(offline_root: Path, path: Path) -> int:
    """Parse one spool file with polars (in Rust) and write its rows per target and day."""
    import orjson
    import polars as pl

    written = 0
    stem = path.name.rsplit(".", 1)[0]
    # Every value is read as text, whatever its JSON type: one schema for every column; typed below.
    schema: dict[str, Any] = {
        "t": pl.Int64,
        "k": pl.List(pl.List(pl.String)),
        "r": pl.List(pl.List(pl.List(pl.String))),
    }
    for c, (head, data) in enumerate(_chunks(path)):
        desc = orjson.loads(head)
        if desc.get("format") != SPOOL_FORMAT:
            raise ValueError(f"spool format {desc.get('format')!r}, this version reads {SPOOL_FORMAT}")
        lookups = pl.read_ndjson(io.BytesIO(data), schema=schema)
        for (target, day), frame in _frames(desc, lookups):
            _write(served_dir(offline_root, target) / f"date={day}", f"part-{stem}-{c}.parquet", frame)
            written += frame.height
    return written


def _frames(desc: dict[str, Any], lookups: Any) -> Iterator[tuple[tuple[str, str], Any]]:
    """One entity row per line and entity, per target (the service, or each view) and request day.

    A feature's status follows the lookup's rule (:func:`featurestore.serving.lookup.assemble`): no
    row is NOT_FOUND, a row older than the view's ttl at the request time OUTSIDE_MAX_AGE, a feature
    the row does not hold NOT_FOUND, a null value NULL_VALUE, else PRESENT; only PRESENT and
    NULL_VALUE keep the value.
    """
    import polars as pl

    keys: list[str] = desc["k"]
    columns = [pl.col("t").alias("_t"), *(pl.col("k").list.get(i).alias(k) for i, k in enumerate(keys))]
    columns += [pl.col("r").list.get(i).alias(f"_row{i}") for i in range(len(desc["v"]))]
    rows = lookups.select(columns).explode([*keys, *(f"_row{i}" for i in range(len(desc["v"])))])
    values: list[Any] = []
    per_view: list[tuple[str, list[str], list[str]]] = []
    for i, (view, features, join_keys, ttl_us, positions) in enumerate(desc["v"]):
        row = pl.col(f"_row{i}")
        gone = row.is_null()
        if ttl_us is not None:
            stamp = row.list.get(0, null_on_oob=True).cast(pl.Int64, strict=False)
            gone_status = pl.when(gone).then(pl.lit(NOT_FOUND)).otherwise(pl.lit(OUTSIDE_MAX_AGE))
            gone = gone | (stamp + ttl_us < pl.col("_t"))
        else:
            gone_status = pl.lit(NOT_FOUND)
        names = []
        for feature, pos in zip(features, positions, strict=True):
            value, status = value_column(view, feature), status_column(view, feature)
            if pos is None:  # the version read does not hold the feature
                values += [pl.lit(None, pl.String).alias(value), pl.lit(NOT_FOUND).alias(status)]
            else:
                raw = row.list.get(pos, null_on_oob=True)
                held = row.list.len() > pos
                values += [
                    pl.when(~gone & held).then(raw).alias(value),
                    pl.when(gone)
                    .then(gone_status)
                    .when(~held)
                    .then(pl.lit(NOT_FOUND))
                    .when(raw.is_null())
                    .then(pl.lit(NULL_VALUE))
                    .otherwise(pl.lit(PRESENT))
                    .alias(status),
                ]
            names += [value, status]
        per_view.append((view, [k for k in join_keys if k in keys], names))
    rows = rows.select(
        pl.col("_t").cast(pl.Datetime("us", "UTC")).alias("request_time"),
        *keys,
        *values,
    )
    typed = [*keys, *(n for _, _, names in per_view for n in names if not n.endswith("__status"))]
    rows = rows.with_columns(_typed(rows[name]) for name in typed)
    rows = rows.with_columns(pl.col("request_time").dt.date().cast(pl.String).alias("_day"))
    if desc["s"] is not None:
        targets = [(desc["s"], keys, [n for _, _, names in per_view for n in names])]
    else:
        targets = per_view
    for (day,), part in sorted(rows.partition_by("_day", as_dict=True).items()):
        for target, target_keys, names in targets:
            yield (target, day), part.select("request_time", *target_keys, *names)


def _typed(text: Any) -> Any:
    """A column read as text back to its JSON type: integers, then floats, then booleans, else text."""
    import polars as pl

    present = text.drop_nulls()
    if present.len() == 0:
        return text  # all null: text, so every file of a target reads together
    for dtype in (pl.Int64, pl.Float64):
        try:
            return text.cast(dtype, strict=True)
        except pl.exceptions.InvalidOperationError:
            continue
    if present.is_in(["true", "false"]).all():
        return text == "true"
    return text


def _write(folder: Path, name: str, frame: Any) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    frame.write_parquet(tmp)
    tmp.replace(folder / name)  # readers never see half a file


def main(argv: list[str] | None = None) -> None:
    """``python -m featurestore.server.served_spool OFFLINE_ROOT``: the server's idle-priority converter."""
    args = sys.argv[1:] if argv is None else argv
    with contextlib.suppress(OSError):
        os.nice(19)  # leave the cores to the server: the spool waits on disk, not in memory
    convert_spool(Path(args[0]), wait=False)


if __name__ == "__main__":
    main()
