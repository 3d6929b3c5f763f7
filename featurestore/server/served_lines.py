"""The served-feature log's spool lines: a queued lookup's keys as JSON, each view's stored rows as the
assembly joined them, and the append of a pass's lines to a spool file."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import orjson

from featurestore.serving.lookup import ROW_SEPARATOR

__all__ = ["serialized", "first_row_bytes", "append_lines"]


def serialized(
    entities: dict[str, list[Any]],
    texts: Sequence[bytes | None],
    rows: Sequence[Sequence[bytes | None]] | None,
) -> tuple[bytes, list[bytes]]:
    """One lookup's key values as JSON and each view's stored rows as the assembly joined them
    (TypeError: a key orjson cannot write or a row not bytes)."""
    lines = [text if text is not None else _joined(rows[v]) for v, text in enumerate(texts)]  # type: ignore[index]
    for line in lines:
        if type(line) is not bytes:
            raise TypeError(f"a stored row is {type(line).__name__}, not bytes")
    return orjson.dumps(list(entities.values())), lines


def first_row_bytes(
    entities: dict[str, list[Any]],
    texts: Sequence[bytes | None],
    rows: Sequence[Sequence[bytes | None]] | None,
    n: int,
) -> int:
    """Spool bytes per entity row of one lookup: the queue's bound before any spooling measured it."""
    try:
        keys, lines = serialized(entities, texts, rows)
    except TypeError:  # the flush drops it; a guess until a spooling measures
        return 256
    return -(-(len(keys) + len(lines) + sum(map(len, lines))) // n)


def _joined(rows: Sequence[bytes | None]) -> bytes:
    """A view's stored rows as :func:`~featurestore.serving.lookup.rows_text` joins them (C code), a
    missing row written as null."""
    try:
        return ROW_SEPARATOR.join(rows)  # type: ignore[arg-type]
    except TypeError:  # some rows are missing: the slower path
        return ROW_SEPARATOR.join([row if row is not None else b"null" for row in rows])


def append_lines(fd: int, parts: list[Any]) -> None:
    """Append ``parts`` to the file without joining them: writev copies them in the kernel, without the GIL."""
    for i in range(0, len(parts), 1024):  # IOV_MAX
        chunk = parts[i : i + 1024]
        done, want = os.writev(fd, chunk), sum(map(len, chunk))
        if done < want:  # a short write (a full disk, a signal): the rest with plain writes
            rest = b"".join(chunk)[done:]
            while rest:
                rest = rest[os.write(fd, rest) :]
