"""Turn served-log spool files (stored rows as JSON lines) into Parquet partitions ``_served/<target>/date=.../``."""

from __future__ import annotations

import contextlib
import enum
import fcntl
import hashlib
import io
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from featurestore.server.served_log import SPOOL_DIR, SPOOL_FORMAT, served_dir, spool_dir, status_column, value_column
from featurestore.serving.lookup import NOT_FOUND, NULL_VALUE, OUTSIDE_MAX_AGE, PRESENT, ROW_SEPARATOR

__all__ = ["SpoolPlace", "convert_spool", "place_spool", "sealed_files", "process_alive", "main"]

# Raw bytes of spool lines parsed at once: bounds the converter's memory whatever the file size.
CHUNK_BYTES = 32 * 1024 * 1024
# Rows the CSV reader looks at to type each column (a later value that does not fit: all read as text).
# polars infers at ~5 us per row of 22 values: 1,000 rows cost ~5 ms per chunk, 10,000 rows 50 ms.
INFER_ROWS = 1_000
logger = logging.getLogger("featurestore.served_log")

# Memory-backed storage for spools (tmpfs on Linux): a spool there costs no disk writeback.
SHM = Path("/dev/shm")


class SpoolPlace(enum.Enum):
    """Where the spool files live (setting ``served_spool``)."""

    MEMORY = "memory"  # /dev/shm when it exists: survives a process crash, not a machine reboot
    DISK = "disk"  # under the offline root


def _memory_folder(offline_root: Path) -> Path:
    """``/dev/shm/featurestore-<uid>/<hash of the offline root>``: one folder per offline root and user."""
    digest = hashlib.sha256(str(Path(offline_root).resolve()).encode()).hexdigest()[:16]
    return SHM / f"featurestore-{os.getuid()}" / digest


def place_spool(offline_root: Path, place: SpoolPlace) -> Path:
    """Put ``_served/.spool`` where ``place`` says and return the folder the files go to.

    In memory, ``.spool`` is a symbolic link to a folder under /dev/shm (kept by the kernel while the
    machine runs, so a crashed server's spool is converted by the next one as on disk; a reboot loses
    an unconverted memory spool). A spool that still holds files stays where it is until they are
    converted, so switching the setting never strands any; without /dev/shm the spool stays on disk.
    """
    link = spool_dir(offline_root)
    link.parent.mkdir(parents=True, exist_ok=True)
    want_memory = place is SpoolPlace.MEMORY and SHM.is_dir() and os.access(SHM, os.W_OK)
    target = _memory_folder(offline_root) if want_memory else None
    try:
        if link.is_symlink():
            current = Path(os.readlink(link))
            if current == target or _holds_files(current):
                current.mkdir(parents=True, exist_ok=True)  # gone after a reboot: made again
                return current
            link.unlink()
        elif link.is_dir():
            if target is None or _holds_files(link):
                return link
            (link / ".lock").unlink(missing_ok=True)  # an older version's converter lock
            link.rmdir()
        if target is None:
            link.mkdir(exist_ok=True)
            return link
        target.parent.mkdir(mode=0o700, exist_ok=True)
        target.mkdir(exist_ok=True)
        tmp = link.with_name(f"{SPOOL_DIR}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)  # atomic: another worker placing it at the same time makes the same link
    except OSError as exc:  # a race with another worker, or /dev/shm refused: whatever is there now is used
        logger.info("served-feature log: spool placement: %s", exc)
    return link.resolve() if link.is_symlink() else link


def _holds_files(folder: Path) -> bool:
    try:
        return any(p.name.startswith("spool-") for p in folder.iterdir())
    except OSError:
        return False


def release_spool(offline_root: Path) -> None:
    """Remove an empty memory spool folder (a clean shutdown); the link stays, placed again at the next start.

    ``rmdir`` fails on a folder another worker still writes to, so nothing is ever removed under it."""
    link = spool_dir(offline_root)
    if link.is_symlink():
        with contextlib.suppress(OSError):
            Path(os.readlink(link)).rmdir()


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
    """One converter at a time per offline root (several workers and `featurestore skew` share it); the
    lock file sits beside the spool, on disk, so removing an empty memory spool never drops a lock."""
    folder = served_dir(offline_root)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".spool.lock", "a+") as fh:
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


def _chunks(path: Path) -> Iterator[tuple[bytes, list[bytes], list[bytes]]]:
    """The file's descriptor line, then its lookups in chunks of whole lookups: their header lines and,
    per view, its rows of those lookups as one text, a row per line (no newline after the last). A torn
    tail (a crash) is left out."""
    with open(path, "rb") as fh:
        desc = fh.readline()
        views = len(orjson.loads(desc).get("v", ())) if desc.endswith(b"\n") else 0
        size = CHUNK_BYTES
        while True:
            start = fh.tell()
            block = fh.read(size)
            heads, per_view, used = _split_lookups(block, views)
            if heads:
                yield desc, heads, per_view
            if len(block) < size:  # the end of the file
                if used < len(block):
                    logger.warning("served-feature log: skipped a torn lookup at the end of %s", path.name)
                return
            # The next block starts with the lookup this one cut (read again, not copied onto it); a
            # lookup longer than a block is read again with one more block's worth.
            size = CHUNK_BYTES if used else size + CHUNK_BYTES
            fh.seek(start + used)


def _split_lookups(block: bytes, views: int) -> tuple[list[bytes], list[bytes], int]:
    """The header lines of the whole lookups in ``block``, each view's rows of them, and the bytes they take.

    A lookup is its header ``{"n":<entities>,...}`` then ``n`` stored rows (``[...]`` or ``null``) per view,
    one per line, each but a view's last ending with a comma (the text the lookup's assembly decoded).
    The lines are found by numpy (one pass over the bytes); the loop runs once per lookup, each view's
    rows of a lookup are one slice of the block, never split into rows in Python, and the commas are
    dropped with one ``replace`` per view (a stored row holds no newline: JSON escapes it in a string).
    """
    import numpy as np

    data = np.frombuffer(block, dtype=np.uint8)
    ends = np.flatnonzero(data == 10)  # each complete line's newline
    if not len(ends):
        return [], [b""] * views, 0
    starts = np.empty_like(ends)
    starts[0], starts[1:] = 0, ends[:-1] + 1
    heads_at = np.flatnonzero(data[starts] == ord("{")).tolist()  # rows start with "[" or "null"
    if not heads_at or heads_at[0] != 0:
        raise ValueError(f"a chunk does not start with a lookup header: {block[:40]!r}")
    lines = len(ends)
    starts_list, ends_list = starts.tolist(), ends.tolist()
    heads: list[bytes] = []
    parts: list[list[bytes]] = [[] for _ in range(views)]
    used = 0
    for k, at in enumerate(heads_at):
        head = block[starts_list[at] : ends_list[at]]
        if not head.startswith(b'{"n":'):
            raise ValueError(f"line {at + 1} of a chunk is not a lookup header: {head[:40]!r}")
        n = int(head[5 : head.index(b",", 5)])
        last = at + n * views  # the lookup's last line
        following = heads_at[k + 1] if k + 1 < len(heads_at) else lines
        if last >= lines:
            break  # continued in the next block
        if last + 1 != following:
            raise ValueError(f"the lookup at line {at + 1} of a chunk does not hold {n} rows per view")
        for v in range(views):
            first = at + 1 + v * n
            parts[v].append(block[starts_list[first] : ends_list[first + n - 1] + 1])
        heads.append(head)
        used = ends_list[last] + 1
    for p in parts:  # a view's rows end without a newline
        if p:
            p[-1] = p[-1][:-1]
    return heads, [b"".join(p).replace(ROW_SEPARATOR, b"\n") for p in parts], used


def _convert_file(offline_root: Path, path: Path, *, csv: bool = True) -> int:
    """Parse one spool file with polars (in Rust) and write its rows per target and day.

    ``csv=False`` parses every view's rows as JSON (the path for text and list values), for tests."""
    import polars as pl

    written = 0
    stem = path.name.rsplit(".", 1)[0]
    # Entity key values are read as text, whatever their JSON type: one schema; typed below.
    schema: dict[str, Any] = {"n": pl.Int64, "t": pl.Int64, "k": pl.List(pl.List(pl.String))}
    for c, (head, heads, per_view) in enumerate(_chunks(path)):
        desc = orjson.loads(head)
        if desc.get("format") != SPOOL_FORMAT:
            raise ValueError(f"spool format {desc.get('format')!r}, this version reads {SPOOL_FORMAT}")
        lookups = pl.read_ndjson(io.BytesIO(b"\n".join(heads)), schema=schema)
        count = int(lookups.get_column("n").sum())
        for (target, day), frame in _frames(desc, lookups, _view_rows(desc, per_view, count, csv)):
            _write(served_dir(offline_root, target) / f"date={day}", f"part-{stem}-{c}.parquet", frame)
            written += frame.height
    return written


def _view_rows(desc: dict[str, Any], per_view: list[bytes], count: int, csv: bool) -> list[Any]:
    """Per view, a frame of its ``count`` stored rows (``per_view``: its rows, one per line) in entity-row
    order: ``_row`` (a row was found), ``_ts`` (its event time) and, per feature asked, ``_f<j>`` (the
    value, typed by the CSV reader or as JSON text) and ``_h<j>`` (the row holds it)."""
    frames = []
    for data, (_, _, _, _, positions) in zip(per_view, desc["v"], strict=True):
        width = _csv_width(data, count) if csv else None
        frame = _csv_rows(data, width, positions) if width else None
        frames.append(frame if frame is not None else _json_rows(data.split(b"\n"), positions))
    return frames


def _csv_width(data: bytes, count: int) -> int | None:
    """The number of values in the first row when the rows may be read as CSV lines (brackets aside),
    else None: no backslash (a JSON escape, which CSV reads otherwise) and no string "null" (CSV reads
    it as a null). :func:`_csv_rows` checks each row's width and for nested values as it parses."""
    if not count or b"\\" in data or b'"null"' in data:
        return None
    # Lines before the first "[" are missing rows ("null"): it opens the first stored row.
    if (first := data.find(b"[")) < 0:
        return None
    end = data.find(b"\n", first)
    try:
        return len(orjson.loads(data[first : end if end >= 0 else len(data)]))
    except orjson.JSONDecodeError:
        return None


def _csv_rows(data: bytes, width: int, positions: list[int | None]) -> Any:
    """Rows parsed by polars' multi-threaded CSV reader (values kept as text, JSON strings unquoted as
    CSV strings; the first and last values hold a bracket); None when a row is longer or shorter than
    the first (a short row ends in a null where ``created`` belongs: a stored row always ends with its
    created time) or may hold a list or an object (a value starting with "[" or "{")."""
    import polars as pl

    unreadable = (pl.exceptions.ComputeError, pl.exceptions.SchemaError)
    names = [f"c{j}" for j in range(width)]
    # Each column's type (integers, floats, booleans, else text) is inferred from the first rows, with a
    # header line naming every column (the first row may be a missing one: "null", one field); the
    # first and last hold a bracket: text. Then all rows are read with those types (no copy of them
    # behind a header); a later value its column's type does not fit fails that read: all as text.
    # Missing rows ("null") before the first stored one are added back as null rows: without a header
    # line the reader takes the number of columns from the first line.
    lead = 0
    while data.startswith(b"null\n", lead):
        lead += 5
    rows = data[lead:] if lead else data
    sample = rows[: _line_end(rows, INFER_ROWS)]
    bracketed = dict.fromkeys({names[0], names[-1]}, pl.String)
    try:
        schema = pl.read_csv(
            io.BytesIO(",".join(names).encode() + b"\n" + sample),
            schema_overrides=bracketed,
            infer_schema_length=None,
            null_values="null",
        ).schema
        frame = pl.read_csv(io.BytesIO(rows), has_header=False, schema=schema, null_values="null")
    except unreadable:
        try:
            text_schema = dict.fromkeys(names, pl.String)
            frame = pl.read_csv(io.BytesIO(rows), has_header=False, schema=text_schema, null_values="null")
        except unreadable:  # more fields than the first row, or a quote inside a value
            return None
    if lead:
        frame = pl.concat([frame.clear(lead // 5), frame])
    texts = [n for n in names[1:] if frame.schema[n] == pl.String]  # typed columns hold no "[" or "{"
    inner = [pl.col(n).str.starts_with("[") | pl.col(n).str.starts_with("{") for n in texts]
    odd = (pl.col(names[0]).is_not_null() & pl.col(names[-1]).is_null()) | pl.any_horizontal(*inner, False)
    if frame.select(odd.any()).item():
        return None

    def column(j: int) -> Any:
        return pl.col(names[j]).str.strip_chars("[]") if j in (0, width - 1) else pl.col(names[j])

    columns = [pl.col(names[0]).is_not_null().alias("_row"), column(0).alias("_ts")]
    for j, pos in enumerate(positions):
        if pos is not None:
            held = pos < width
            value = column(pos) if held else pl.lit(None, pl.String)
            columns += [value.alias(f"_f{j}"), pl.lit(held).alias(f"_h{j}")]
    return frame.select(columns)


def _line_end(data: bytes, lines: int) -> int:
    """The offset just past the first ``lines`` lines of ``data`` (its length when it holds fewer)."""
    end = 0
    for _ in range(lines):
        end = data.find(b"\n", end) + 1
        if end == 0:
            return len(data)
    return end


def _json_rows(lines: list[bytes], positions: list[int | None]) -> Any:
    """Rows parsed as JSON arrays by polars, each value taken as the text it was written as (1.0 stays
    "1.0", as in the CSV path).

    One decode of each row gives every value as text, but a decoder writes the float 1.0 as "1": a
    column whose decoded texts all read as integers is taken again from the rows' own text
    (``json_path_match``, a parse per column). Rows holding lists or objects, which that decode
    refuses, are read a column at a time the same way."""
    import polars as pl

    text = pl.Series("r", lines, dtype=pl.Binary).cast(pl.String)
    try:
        decoded: Any = text.str.json_decode(pl.List(pl.String))
    except pl.exceptions.ComputeError:  # a list or an object in some row
        decoded = None
    if decoded is None:
        # Whether a row holds position p: with every null made 0, its p-th value is found.
        filled = text.str.replace_all("null", "0", literal=True)
        columns = [(text != "null").alias("_row"), text.str.json_path_match("$[0]").alias("_ts")]
        for j, pos in enumerate(positions):
            if pos is not None:
                columns += [
                    text.str.json_path_match(f"$[{pos}]").alias(f"_f{j}"),
                    filled.str.json_path_match(f"$[{pos}]").is_not_null().alias(f"_h{j}"),
                ]
        return pl.select(columns)
    width = decoded.list.len()
    columns = [decoded.is_not_null().alias("_row"), decoded.list.get(0, null_on_oob=True).alias("_ts")]
    for j, pos in enumerate(positions):
        if pos is None:
            continue
        value = decoded.list.get(pos, null_on_oob=True)
        present = value.drop_nulls()
        if present.len() and present.cast(pl.Int64, strict=False).null_count() == 0:
            value = text.str.json_path_match(f"$[{pos}]")  # integers, or whole floats re-formatted
        columns += [value.alias(f"_f{j}"), (width > pos).alias(f"_h{j}")]
    return pl.select(columns)


def _frames(desc: dict[str, Any], lookups: Any, views: list[Any]) -> Iterator[tuple[tuple[str, str], Any]]:
    """One entity row per lookup and entity, per target (the service, or each view) and request day.

    A feature's status follows the lookup's rule (:func:`featurestore.serving.lookup.assemble`): no
    row is NOT_FOUND, a row older than the view's ttl at the request time OUTSIDE_MAX_AGE, a feature
    the row does not hold NOT_FOUND, a null value NULL_VALUE, else PRESENT; only PRESENT and
    NULL_VALUE keep the value.
    """
    import polars as pl

    keys: list[str] = desc["k"]
    columns = [pl.col("t").alias("_t"), *(pl.col("k").list.get(i).alias(k) for i, k in enumerate(keys))]
    rows = lookups.select(columns).explode(keys)
    values: list[Any] = []
    per_view: list[tuple[str, list[str], list[str]]] = []
    for i, (view, features, join_keys, ttl_us, positions) in enumerate(desc["v"]):
        stored = views[i].rename(lambda c, i=i: f"{c}_{i}")
        rows = rows.hstack(stored.get_columns())
        gone = ~pl.col(f"_row_{i}")
        if ttl_us is not None:
            stamp = pl.col(f"_ts_{i}").cast(pl.Int64, strict=False)
            gone_status = pl.when(gone).then(pl.lit(NOT_FOUND)).otherwise(pl.lit(OUTSIDE_MAX_AGE))
            gone = gone | (stamp + ttl_us < pl.col("_t"))
        else:
            gone_status = pl.lit(NOT_FOUND)
        names = []
        for j, (feature, pos) in enumerate(zip(features, positions, strict=True)):
            value, status = value_column(view, feature), status_column(view, feature)
            if pos is None:  # the version read does not hold the feature
                values += [pl.lit(None, pl.String).alias(value), pl.lit(NOT_FOUND).alias(status)]
            else:
                raw, held = pl.col(f"_f{j}_{i}"), pl.col(f"_h{j}_{i}")
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
    days = rows.get_column("_day")
    # Most chunks hold one day: no copy into partitions then.
    parts = {(days[0],): rows} if days.n_unique() == 1 else rows.partition_by("_day", as_dict=True)
    for (day,), part in sorted(parts.items()):
        for target, target_keys, names in targets:
            yield (target, day), part.select("request_time", *target_keys, *names)


def _typed(text: Any) -> Any:
    """A column read as text back to its JSON type: integers, then floats, then booleans, else text."""
    import polars as pl

    present = text.drop_nulls()
    if present.len() == 0:
        # All null (a stale or missing feature for a whole chunk): Parquet's null type, which takes the
        # other files' type when a target's files are read together (polars' relaxed concat, DuckDB's
        # union_by_name); typed as text it turned the whole column into text there.
        return text.cast(pl.Null)
    if text.dtype != pl.String:
        return text  # typed by the CSV reader
    # A decimal point or exponent in the first value: not integers (saves a failed cast of the column).
    dtypes = (pl.Float64,) if any(c in present[0] for c in ".eE") else (pl.Int64, pl.Float64)
    for dtype in dtypes:
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
    idle_priority()
    reuse_blocks()
    convert_spool(Path(args[0]), wait=False)


def reuse_blocks() -> bool:
    """Let this process reuse freed blocks of CHUNK_BYTES (a file read, a chunk's rows joined) from the
    heap instead of mapping each afresh: a fresh 32 MB mapping costs ~8,000 page faults (glibc)."""
    from featurestore.server.allocator import keep_freed_memory

    return keep_freed_memory(trim=8 * CHUNK_BYTES, mmap=4 * CHUNK_BYTES)


def idle_priority() -> str:
    """Run this process (and the threads it starts after, polars' among them) only on CPU nobody else
    wants: Linux's SCHED_IDLE, else ``nice 19``. Returns which one took."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # type: ignore[attr-defined]
        return "SCHED_IDLE"
    except (AttributeError, OSError):  # not Linux, or refused
        with contextlib.suppress(OSError):
            os.nice(19)
        return "nice 19"


if __name__ == "__main__":
    main()
