"""The standalone Redis store's bulk row writes on the wire: ``SET NX`` chunks and newest-wins script calls,
packed by hiredis, and the replies of a chunk read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from featurestore.errors import OnlineStoreError, redact
from featurestore.online.scripts import PUT_NEWER_SHA

__all__ = ["pack_set_absent", "read_set_absent", "pack_put_newer"]


def pack_set_absent(
    keys: Sequence[str], rows: Sequence[bytes], expire_at_ms: Sequence[int] | None, lo: int, hi: int
) -> bytes:
    """RESP for ``SET key row NX [PXAT t]`` over rows ``lo:hi``, one write (hiredis packs each command in C)."""
    import hiredis

    pack: Any = hiredis.pack_command  # its stub types the argument as a 1-tuple
    if expire_at_ms is None:
        return b"".join([pack(("SET", keys[i], rows[i], "NX")) for i in range(lo, hi)])
    return b"".join([pack(("SET", keys[i], rows[i], "NX", "PXAT", expire_at_ms[i])) for i in range(lo, hi)])


def read_set_absent(conn: Any, lo: int, hi: int, existing: list[int]) -> tuple[int, bool]:
    """Read the replies of one ``SET NX`` chunk: rows set, and whether most keys were absent.

    The indices whose key already held a row go to ``existing`` (to be compared by the script).
    """
    import redis.exceptions as rex

    before = len(existing)
    read = conn.read_response
    for i in range(lo, hi):
        try:
            reply = read()
        except rex.ResponseError as exc:
            raise OnlineStoreError(redact(f"Redis refused a write: {exc}")) from None
        if reply is None:
            existing.append(i)
    found = len(existing) - before
    return (hi - lo) - found, 2 * found <= hi - lo


def pack_put_newer(
    prefix: str,
    keys: Sequence[str],
    rows: Sequence[bytes],
    expire_at_ms: Sequence[int] | None,
    pushed_set: str | None,
) -> bytes:
    """RESP for one ``EVALSHA`` of the newest-wins script over a batch, packed by hiredis (C)."""
    import hiredis

    n = len(keys)
    args: list[Any] = ["EVALSHA", PUT_NEWER_SHA, n + (pushed_set is not None)]
    args.extend([prefix + k for k in keys])
    if pushed_set is not None:
        args.append(pushed_set)
    args.extend((n, 0 if expire_at_ms is None else 1, len(prefix) if pushed_set is not None else 0))
    args.extend(rows)
    if expire_at_ms is not None:
        args.extend(expire_at_ms)
    return bytes(hiredis.pack_command(tuple(args)))
