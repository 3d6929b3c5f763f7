"""Turn served-log spool files (raw JSON lines) into Parquet partitions ``_served/<target>/date=.../``."""

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

from featurestore.server.served_log import served_dir, spool_dir, status_column, value_column

__all__ = ["convert_spool", "sealed_files", "main"]

# Raw bytes of spool lines parsed at once: bounds the converter's memory whatever the file size.
CHUNK_BYTES = 32 * 1024 * 1024

logger = logging.getLogger("featurestore.served_log")


def _alive(pid: int) -> bool:
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
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
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
    column = pl.Struct({"values": pl.List(pl.String), "statuses": pl.List(pl.String)})
    schema: dict[str, Any] = {
        "t": pl.Int64,
        "r": pl.Struct({"metadata": pl.Struct({"feature_names": pl.List(pl.String)}), "results": pl.List(column)}),
    }
    for c, (head, data) in enumerate(_chunks(path)):
        desc = orjson.loads(head)
        lookups = pl.read_ndjson(io.BytesIO(data), schema=schema)
        # Lookups of one plan differ only in the request columns they echo: one frame per set of them.
        n_features = sum(len(features) for _, features, _ in desc["v"])
        results = pl.col("r").struct.field("results")
        names = pl.col("r").struct.field("metadata").struct.field("feature_names")
        lookups = lookups.with_columns(keys=names.list.head(results.list.len() - n_features).list.join("\x1f"))
        for g, ((keys,), group) in enumerate(sorted(lookups.partition_by("keys", as_dict=True).items())):
            for (target, day), frame in _frames(desc, keys.split("\x1f") if keys else [], group):
                _write(served_dir(offline_root, target) / f"date={day}", f"part-{stem}-{c}-{g}.parquet", frame)
                written += frame.height
    return written


def _frames(desc: dict[str, Any], keys: list[str], lookups: Any) -> Iterator[tuple[tuple[str, str], Any]]:
    """The rows of lookups with the same columns, per target (the service, or each view) and request day."""
    import polars as pl

    results = pl.col("r").struct.field("results")
    columns = [pl.col("t").cast(pl.Datetime("us", "UTC")).alias("request_time")]
    columns += [results.list.get(i).struct.field("values").alias(name) for i, name in enumerate(keys)]
    per_view: list[tuple[str, list[str], list[str]]] = []
    pos = len(keys)
    for view, features, join_keys in desc["v"]:
        names = []
        for feature in features:
            value, status = value_column(view, feature), status_column(view, feature)
            columns += [
                results.list.get(pos).struct.field("values").alias(value),
                results.list.get(pos).struct.field("statuses").alias(status),
            ]
            names += [value, status]
            pos += 1
        per_view.append((view, [k for k in join_keys if k in keys], names))
    lists = [*keys, *(n for _, _, names in per_view for n in names)]
    rows = lookups.select(columns).explode(lists)
    rows = rows.with_columns(_typed(rows[name]) for name in lists if not name.endswith("__status"))
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
