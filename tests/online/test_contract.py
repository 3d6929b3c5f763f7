"""The online-store contract, run against every implementation (SQLite file, real Redis server)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from featurestore.errors import ConfigError, StoreUnavailableError
from featurestore.online import STORES, OnlineStore, open_online_store

_projects = itertools.count()


@pytest.fixture(params=["sqlite", "redis", "redis-cluster"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    project = f"contract{next(_projects)}"
    if request.param == "sqlite":
        s = open_online_store(f"sqlite:///{tmp_path}/online.db", project)
    elif request.param == "redis":
        s = open_online_store(request.getfixturevalue("redis_server").url, project)
    else:
        s = open_online_store(request.getfixturevalue("redis_cluster").url, project)
    yield s
    s.close()


def row(ts: int, *values: object, created: int = 0) -> bytes:
    return orjson.dumps([ts, *values, created])


def test_url_map_chooses_the_implementation(tmp_path: Path) -> None:
    assert set(STORES) == {"sqlite", "redis", "rediss", "redis+cluster", "rediss+cluster"}
    s = open_online_store(f"sqlite:///{tmp_path}/x.db", "p")
    assert type(s).__name__ == "SqliteOnlineStore"
    assert (tmp_path / "x.db").is_file()
    s.close()
    with pytest.raises(ConfigError, match="unknown scheme"):
        open_online_store("mongodb://x", "p")


def test_write_then_read_in_key_order(store: OnlineStore) -> None:
    assert store.write_rows("v", "ver1", ["1", "2"], [row(10, 1.5, "a"), row(20, None, "b")]) == 2
    assert store.read_rows("v", "ver1", ["2", "3", "1"]) == [row(20, None, "b"), None, row(10, 1.5, "a")]
    assert store.read_rows("v", "ver1", []) == []


def test_versions_and_views_are_separate_namespaces(store: OnlineStore) -> None:
    store.write_rows("v", "old", ["1"], [row(1, "old")])
    store.write_rows("v", "new", ["1"], [row(2, "new")])
    store.write_rows("w", "old", ["1"], [row(3, "w")])
    assert store.read_rows("v", "old", ["1"]) == [row(1, "old")]
    assert store.read_rows("v", "new", ["1"]) == [row(2, "new")]
    assert store.read_rows("w", "old", ["1"]) == [row(3, "w")]


def test_rewrite_is_idempotent_and_replaces_whole_rows(store: OnlineStore) -> None:
    store.write_rows("v", "a", ["1", "2"], [row(1, 1), row(1, 2)])
    store.write_rows("v", "a", ["1", "2"], [row(1, 1), row(1, 2)])
    assert store.read_rows("v", "a", ["1", "2"]) == [row(1, 1), row(1, 2)]
    store.write_rows("v", "a", ["1"], [row(5, 9)])
    assert store.read_rows("v", "a", ["1", "2"]) == [row(5, 9), row(1, 2)]


def test_expired_rows_are_not_served(store: OnlineStore) -> None:
    now_ms = int(time.time() * 1000)
    store.write_rows("v", "a", ["gone", "kept"], [row(1, 1), row(1, 2)], [now_ms - 1000, now_ms + 60_000])
    assert store.read_rows("v", "a", ["gone", "kept"]) == [None, row(1, 2)]


def test_version_pointer(store: OnlineStore) -> None:
    assert store.current_version("v") is None
    store.set_current_version("v", "a")
    store.set_current_version("w", "b")
    store.set_current_version("v", "c")
    assert store.current_version("v") == "c"
    assert store.current_versions() == {"v": "c", "w": "b"}
    assert asyncio.run(store.acurrent_versions()) == {"v": "c", "w": "b"}


def test_watermarks_per_version(store: OnlineStore) -> None:
    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert store.watermark("v", "a") is None
    store.set_watermark("v", "a", when)
    assert store.watermark("v", "a") == when
    assert store.watermark("v", "b") is None


def test_newest_event_keeps_the_latest_per_version(store: OnlineStore) -> None:
    early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
    assert store.newest_events() == {}
    store.set_newest_event("v", "a", late)
    store.set_newest_event("v", "a", early)  # an older batch does not move it back
    store.set_newest_event("w", "b", early)
    assert store.newest_events() == {("v", "a"): late, ("w", "b"): early}
    assert asyncio.run(store.anewest_events()) == {("v", "a"): late, ("w", "b"): early}
    store.delete("v", "a")
    assert store.newest_events() == {("w", "b"): early}


def test_delete_one_version_or_the_whole_view(store: OnlineStore) -> None:
    store.write_rows("v", "a", ["1", "2"], [row(1, 1), row(1, 2)])
    store.write_rows("v", "b", ["1"], [row(1, 3)])
    store.write_rows("w", "a", ["1"], [row(1, 4)])
    store.set_current_version("v", "b")
    assert store.delete("v", "a") == 2
    assert store.read_rows("v", "a", ["1", "2"]) == [None, None]
    assert store.read_rows("v", "b", ["1"]) == [row(1, 3)]
    assert store.delete("v") == 1
    assert store.current_version("v") is None
    assert store.read_rows("w", "a", ["1"]) == [row(1, 4)]


def test_large_batches_round_trip(store: OnlineStore) -> None:
    keys = [str(i) for i in range(12_000)]
    rows = [row(i, i * 0.5, f"s{i}") for i in range(12_000)]
    assert store.write_rows("v", "a", keys, rows) == 12_000
    sample = keys[::997]
    assert store.read_rows("v", "a", sample) == [rows[int(k)] for k in sample]
    assert asyncio.run(store.aread_rows("v", "a", sample)) == [rows[int(k)] for k in sample]


def test_rows_are_never_torn_under_concurrent_writes(store: OnlineStore) -> None:
    """A reader only ever sees one writer's complete row."""
    a, b = row(1, *(["a"] * 20)), row(2, *(["b"] * 20))
    stop = threading.Event()

    def writer(payload: bytes) -> None:
        while not stop.is_set():
            store.write_rows("v", "a", ["k"], [payload])

    threads = [threading.Thread(target=writer, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    try:
        seen = {store.read_rows("v", "a", ["k"])[0] for _ in range(300)}
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert seen <= {a, b, None}


def test_ping(store: OnlineStore) -> None:
    store.ping()
    asyncio.run(store.aping())


def test_unreachable_store_raises_store_unavailable(tmp_path: Path) -> None:
    from tests.conftest import free_port

    s = open_online_store(f"redis://127.0.0.1:{free_port()}/0", "p", timeout=0.2)
    t0 = time.monotonic()
    with pytest.raises(StoreUnavailableError):
        s.read_rows("v", "a", ["1"])
    with pytest.raises(StoreUnavailableError):
        s.ping()
    assert time.monotonic() - t0 < 2


def test_newest_row_wins_by_event_time_then_created(store: OnlineStore) -> None:
    assert store.write_rows("v", "a", ["1"], [row(10, "first", created=5)]) == 1
    assert store.write_rows("v", "a", ["1"], [row(9, "older")]) == 0
    assert store.write_rows("v", "a", ["1"], [row(10, "same stamp", created=5)]) == 0
    assert store.write_rows("v", "a", ["1"], [row(10, "earlier created", created=4)]) == 0
    assert store.read_rows("v", "a", ["1"]) == [row(10, "first", created=5)]
    assert store.write_rows("v", "a", ["1"], [row(10, "later created", created=6)]) == 1
    assert store.write_rows("v", "a", ["1", "2"], [row(11, "newer"), row(1, "new key")]) == 2
    assert store.read_rows("v", "a", ["1", "2"]) == [row(11, "newer"), row(1, "new key")]
    assert store.write_rows("v", "a", ["1"], [row(-5, [1, 2], created=-1)]) == 0  # lists and negatives parse


def test_an_expired_row_is_replaced_by_any_row(store: OnlineStore) -> None:
    now_ms = int(time.time() * 1000)
    store.write_rows("v", "a", ["1"], [row(100, "expired")], [now_ms - 1000])
    assert store.write_rows("v", "a", ["1"], [row(50, "older but live")], [now_ms + 60_000]) == 1
    assert store.read_rows("v", "a", ["1"]) == [row(50, "older but live")]


def test_concurrent_writers_leave_the_newest_row(store: OnlineStore) -> None:
    """16 threads write increasing event times for one key, in bursts; the newest always survives."""
    for burst in range(5):
        start = threading.Barrier(16)

        def write(i: int, burst: int = burst, start: threading.Barrier = start) -> None:
            start.wait()
            store.write_rows("v", "a", ["k"], [row(burst * 100 + i, i)])

        threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.read_rows("v", "a", ["k"]) == [row(burst * 100 + 15, 15)]


def test_pushed_keys_are_remembered_per_version(store: OnlineStore) -> None:
    store.write_rows("v", "a", ["1", "2"], [row(1, 1), row(1, 2)], pushed=True)
    store.write_rows("v", "a", ["3"], [row(1, 3)])
    store.write_rows("v", "a", ["2"], [row(0, 2)], pushed=True)  # not written (older), still a pushed key
    store.write_rows("v", "b", ["9"], [row(1, 9)], pushed=True)
    assert store.pushed_keys("v", "a") == ["1", "2"] and store.pushed_keys("v", "b") == ["9"]
    store.delete("v", "a")
    assert store.pushed_keys("v", "a") == [] and store.pushed_keys("v", "b") == ["9"]
    store.delete("v")
    assert store.pushed_keys("v", "b") == []


def test_pointers_pending_and_if_absent(store: OnlineStore) -> None:
    assert store.pointers("v") == (None, None)
    store.set_current_version("v", "a", if_absent=True)
    store.set_current_version("v", "b", if_absent=True)  # a pointer is already set: kept
    assert store.pointers("v") == ("a", None)
    store.set_pending_version("v", "c")
    assert store.pointers("v") == ("a", "c")
    store.set_current_version("v", "c")
    assert store.pointers("v") == ("c", None)  # the pending version went live
    store.delete("v")
    assert store.pointers("v") == (None, None)
