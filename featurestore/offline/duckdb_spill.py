"""The DuckDB point-in-time join under a small memory limit: join row positions, then gather features file by file."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import polars as pl

from featurestore.offline.base import OfflineFile
from featurestore.offline.pit import ROW, ViewRequest

__all__ = [
    "PitPlan",
    "choose_plan",
    "memory_limit_bytes",
    "join_bytes",
    "gather_features",
    "POSITION",
    "POSITION_BITS",
    "threads_for",
]

# The column phase one gives per view i: the matched row's position, its file's index in the
# request's file list shifted left by POSITION_BITS, or'ed with its row number in that file
# (one BIGINT, not two: a narrower join spills less); null when no row matches within ttl.
POSITION = "__fs_p{i}"
POSITION_BITS = 40

_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


class PitPlan(Enum):
    """How the DuckDB engine runs a point-in-time join.

    ``WIDE``: one ASOF JOIN carrying every feature column (fastest while it fits in memory).
    ``BY_POSITION``: an ASOF JOIN over keys, times and row positions only, then the feature
    values read file by file and gathered by position: DuckDB's working set no longer grows
    with the number of features, and what does not fit spills. ``AUTO``: ``BY_POSITION`` when
    the wide join's estimated working set exceeds the memory limit (or it ran out of memory).
    """

    AUTO = "auto"
    WIDE = "wide"
    BY_POSITION = "by_position"


def memory_limit_bytes(limit: str) -> int | None:
    """``"4GB"``, ``"300 MiB"``... in bytes; None for what is not a size (e.g. a percentage)."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", limit)
    if m is None or m.group(2).upper() not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


# Below this much memory per thread, DuckDB's per-thread buffers (a Parquet scan's pages, a
# sort's runs) alone exhaust the limit and even a narrow join fails before it can spill
# (measured with duckdb 2.0: two threads fail under 16 MiB, one finishes).
THREAD_MEMORY_FLOOR = 12 * 2**20


def threads_for(limit: str) -> int | None:
    """The thread count a small ``limit`` allows (one per 12 MiB), or None (DuckDB's default) when it is not small."""
    import os

    limit_bytes = memory_limit_bytes(limit)
    if limit_bytes is None:
        return None
    allowed = max(1, limit_bytes // THREAD_MEMORY_FLOOR)
    return allowed if allowed < (os.cpu_count() or 1) else None


def join_bytes(entity_rows: int, entity_columns: int, requests: Sequence[ViewRequest]) -> int | None:
    """The wide join's working set estimate: feature rows in, entity rows in and out, 8 bytes a value.

    None when a file's row count is not known cheaply (object storage: a request per file).
    """
    values = entity_rows * entity_columns
    for req in requests:
        if any(str(f).startswith("s3://") for f in req.files):
            return None
        width = len(req.spec.join_keys) + 1 + len(req.features)
        values += sum(_file_rows(str(f)) for f in req.files) * width
        values += entity_rows * len(req.features)
    return values * 8


def _file_rows(path: str) -> int:
    """A local Parquet file's row count, its footer read once per (path, mtime, size): offline files are
    replaced by rename, never rewritten in place, so a changed file has a new stamp."""
    import os

    if "://" in path:  # a URI (file://): read through pyarrow's filesystems, not cached
        import pyarrow.parquet as pq

        return int(pq.read_metadata(path).num_rows)
    st = os.stat(path)
    return _footer_rows(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=65_536)
def _footer_rows(path: str, mtime_ns: int, size: int) -> int:
    import pyarrow.parquet as pq

    return int(pq.read_metadata(path).num_rows)


def choose_plan(plan: PitPlan, limit: str, estimate: Callable[[], int | None]) -> PitPlan:
    """``plan`` itself unless AUTO; AUTO is BY_POSITION when the estimate exceeds the limit."""
    if plan is not PitPlan.AUTO:
        return plan
    limit_bytes = memory_limit_bytes(limit)
    if limit_bytes is None:
        return PitPlan.WIDE
    needed = estimate()
    return PitPlan.BY_POSITION if needed is not None and needed > limit_bytes else PitPlan.WIDE


def _read_columns(file: OfflineFile, columns: list[str]) -> pl.DataFrame:
    """One offline file's ``columns``, rows in file order (local, or ``s3://`` through pyarrow)."""
    if not str(file).startswith("s3://"):
        return pl.read_parquet(file, columns=columns)
    import pyarrow.parquet as pq

    from featurestore.storage import open_storage

    uri = str(file)
    storage = open_storage("s3://" + uri.removeprefix("s3://").partition("/")[0])
    table = pq.read_table(storage.fs_path(uri), columns=columns, filesystem=storage.filesystem())
    out = pl.from_arrow(table)
    assert isinstance(out, pl.DataFrame)
    return out


def gather_features(
    positions: pl.DataFrame, requests: Sequence[ViewRequest], names: list[str], schema: dict[str, Any]
) -> pl.DataFrame:
    """Phase two: each view's feature values at the matched positions, one file in memory at a time.

    ``positions`` holds ``ROW`` (0..n-1, any order) and per view i its ``POSITION`` column;
    the result has one row per entity row in ``ROW`` order, columns ``names`` typed as ``schema``.
    """
    n = positions.height
    columns: dict[str, pl.Series] = {}
    name_iter = iter(names)
    for i, req in enumerate(requests):
        p = pl.col(POSITION.format(i=i))
        renames = {feat: next(name_iter) for feat in req.features}
        matched = positions.filter(p.is_not_null()).select(
            ROW, (p // (1 << POSITION_BITS)).alias("__file"), (p % (1 << POSITION_BITS)).alias("__row_in_file")
        )
        parts = matched.partition_by("__file", as_dict=True)
        numeric = _scatter_numeric(parts, req, n)
        if numeric is not None:
            columns.update({renames[c]: v.alias(renames[c]) for c, v in numeric.items()})
            continue
        pieces: list[pl.DataFrame] = []
        for (index,), part in parts.items():
            values = _read_columns(req.files[int(index)], list(req.features))  # type: ignore[call-overload]
            taken = values.select(pl.all().gather(part["__row_in_file"])).rename(renames)
            pieces.append(taken.with_columns(part[ROW]))
        if not pieces:
            columns.update({name: pl.repeat(None, n, dtype=schema[name], eager=True) for name in renames.values()})
            continue
        # One chunk: a gather across the per-file chunks costs several times a gather from one.
        gathered = pl.concat(pieces, how="vertical_relaxed").rechunk()
        # Scatter back to entity order: output row ROW takes gathered row k; rows without a match, null.
        at = pl.repeat(None, n, dtype=pl.UInt32, eager=True)
        at = at.scatter(gathered[ROW], pl.int_range(gathered.height, dtype=pl.UInt32, eager=True))
        columns.update({c.name: c for c in gathered.drop(ROW).select(pl.all().gather(at))})
    out = pl.DataFrame(columns)
    return out.select([pl.col(n).cast(schema[n]) for n in names])


def _scatter_numeric(parts: dict[Any, pl.DataFrame], req: ViewRequest, n: int) -> dict[str, pl.Series] | None:
    """The common case, fast: integer and float features without nulls, written file by file into
    preallocated arrays at their entity rows (one pass, no concatenation); None when it does not apply."""
    import numpy as np

    arrays: dict[str, Any] = {}
    filled = np.zeros(n, dtype=bool)
    for (index,), part in parts.items():
        values = _read_columns(req.files[int(index)], list(req.features))
        dest, src = part[ROW].to_numpy(), part["__row_in_file"].to_numpy()
        for feat in req.features:
            col = values[feat]
            if not (col.dtype.is_integer() or col.dtype.is_float()) or col.null_count():
                return None
            a = col.to_numpy()
            if feat not in arrays:
                arrays[feat] = np.empty(n, dtype=a.dtype)
            elif arrays[feat].dtype != a.dtype:
                return None
            arrays[feat][dest] = a[src]
        filled[dest] = True
    if len(arrays) != len(req.features):  # no row matched: the general path types the nulls
        return None
    unmatched = pl.Series(~filled)
    return {feat: pl.Series(feat, a).set(unmatched, None) for feat, a in arrays.items()}
