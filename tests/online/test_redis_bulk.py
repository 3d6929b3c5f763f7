"""The Redis store's bulk write path (SET NX first, the newest-wins script for stored keys) under a stalled server."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from featurestore.errors import StoreUnavailableError
from featurestore.online.redis import RedisOnlineStore
from tests.conftest import RedisServer


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: it gets frozen, which the session's server must not be."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _freeze(server: RedisServer, seconds: float) -> None:
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    threading.Timer(seconds, server.proc.send_signal, args=(signal.SIGCONT,)).start()


def test_a_bulk_write_outlasts_a_stall_longer_than_the_lookup_timeout(own_redis: RedisServer) -> None:
    store = RedisOnlineStore(own_redis.url, "bulk", timeout=0.2)
    keys = [str(i) for i in range(20_000)]
    rows = [orjson.dumps([i, i * 0.5, 0]) for i in range(20_000)]
    expiry = [int(time.time() * 1000) + 60_000] * len(keys)
    store.write_rows("v", "a", keys[:7_000], rows[:7_000], expiry[:7_000])  # some keys stored: the script runs too
    store.ping()  # the lookup client is connected before the stall
    _freeze(own_redis, 1.0)
    with pytest.raises(StoreUnavailableError):  # a lookup keeps its own short timeout
        store.read_rows("v", "a", ["1"])
    time.sleep(0.1)
    assert store.write_rows("v", "a", keys, rows, expiry) == 13_000  # waits out the rest of the stall
    assert store.read_rows("v", "a", keys[::999]) == rows[::999]
    store.close()
