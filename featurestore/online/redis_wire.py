"""What the Redis stores share on the wire: errors translated for callers, hiredis packing, newest-event records."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from featurestore.errors import OnlineStoreError, StoreUnavailableError, redact
from featurestore.times import utc_datetime

__all__ = ["translate_error", "hiredis_connection_class", "parse_newest", "checked_out"]


@contextlib.contextmanager
def checked_out(*clients: Any) -> Iterator[list[Any]]:
    """One connection from each redis-py client's pool, to write to all before reading any reply.

    On any error every connection is disconnected (replies still unread would answer the next
    command); all are released at the end.
    """
    pools = [c.connection_pool for c in clients]
    conns: list[Any] = []
    try:
        for pool in pools:
            conns.append(pool.get_connection())
        yield conns
    except BaseException:
        for conn in conns:
            conn.disconnect()
        raise
    finally:
        for pool, conn in zip(pools, conns, strict=False):
            pool.release(conn)


def _unavailable(exc: Exception) -> StoreUnavailableError:
    return StoreUnavailableError(redact(f"Redis online store unreachable: {exc}"))


def parse_newest(data: dict[bytes, bytes]) -> dict[tuple[str, str], datetime]:
    out = {}
    for field, value in data.items():
        view, _, version = field.decode().rpartition(":")
        stamp = utc_datetime(value.decode())
        if stamp is not None:
            out[(view, version)] = stamp
    return out


def _is_redis_connection_error(exc: BaseException) -> bool:
    import redis.exceptions as rex

    return isinstance(exc, rex.ConnectionError | rex.TimeoutError | rex.BusyLoadingError)


def translate_error(exc: Exception) -> Exception:
    """Connection problems become StoreUnavailableError (503); anything else an OnlineStoreError."""
    if isinstance(exc, OnlineStoreError):
        return exc
    if _is_redis_connection_error(exc) or isinstance(exc, OSError | asyncio.TimeoutError):
        return _unavailable(exc)
    return OnlineStoreError(redact(f"Redis online store error: {exc}"))


def hiredis_connection_class(url: str) -> Any:
    """An asyncio connection class packing commands with hiredis (C) instead of Python.

    redis-py's asyncio connections pack every argument in Python (about 55 us for an MGET
    of 100 keys against 5 us in hiredis); the lookup hot path is mostly that packing.
    None when hiredis is not installed.
    """
    try:
        import hiredis
    except ImportError:
        return None
    import redis.asyncio.connection as aconn

    base = aconn.SSLConnection if url.startswith("rediss://") else aconn.Connection

    class HiredisPackingConnection(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            first = args[0]
            if isinstance(first, str) and " " in first:  # "CONFIG GET" -> two arguments, as redis-py does
                args = (*first.split(), *args[1:])
            elif isinstance(first, bytes) and b" " in first:
                args = (*first.split(), *args[1:])
            return [hiredis.pack_command(args)]

    return HiredisPackingConnection
