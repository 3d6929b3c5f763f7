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


def _url(scheme: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL of each kind the contract runs over (one entry per store class)."""
    if scheme == "sqlite":
        return f"sqlite:///{tmp_path}/online.db"
    if scheme == "redis":
        return str(request.getfixturevalue("redis_server").url)
    if scheme == "memory":
        return f"memory://{tmp_path.name}"
    if scheme == "redis+cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    raise AssertionError(f"no test URL for {scheme!r}: add the store to the contract suite")


# One scheme per store class in the registry (rediss is the Redis class over TLS: tests/online/test_redis_tls.py).
SUITE = sorted({target: scheme for scheme, target in sorted(STORES.items(), reverse=True)}.values())


@pytest.fixture(params=SUITE)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    project = f"contract{next(_projects)}"
    s = open_online_store(_url(request.param, request, tmp_path), project)
    yield s
    s.close()


def test_every_registered_store_class_runs_the_suite() -> None:
    assert {STORES[s] for s in SUITE} == set(STORES.values())
    assert {"sqlite", "redis", "memory"} <= set(SUITE)


def row(ts: int, *values: object, created: int = 0) -> bytes:
    return orjson.dumps([ts, *values, created])


def test_url_map_chooses_the_implementation(tmp_path: Path) -> None:
    assert {"sqlite", "redis", "rediss", "memory", "redis+cluster", "rediss+cluster"} <= set(STORES)
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


def test_large_batches_over_stored_rows_keep_the_newest(store: OnlineStore) -> None:
    """A bulk batch over a mix of absent keys and stored rows (newer, older, identical): newest wins per key.

    The first half of the keys all hold a row and the rest one in ten, so a store that picks a
    write strategy per chunk of the batch (Redis: SET NX first) goes through each of them.
    """
    now_ms = int(time.time() * 1000)
    n = 12_000
    stored = [i for i in range(n) if i < n // 2 or i % 10 == 0]
    # i % 3 == 0: a newer row is stored; 1: an older one; 2: the very row written again
    before = {i: row(i + 1 if i % 3 == 0 else i - 1 if i % 3 == 1 else i, f"s{i}") for i in stored}
    store.write_rows("v", "a", [str(i) for i in stored], [before[i] for i in stored])
    batch = [row(i, f"s{i}") for i in range(n)]
    written = store.write_rows("v", "a", [str(i) for i in range(n)], batch, [now_ms + 60_000] * n)
    assert written == (n - len(stored)) + sum(1 for i in stored if i % 3 == 1)
    expected = [before[i] if i in before and i % 3 == 0 else batch[i] for i in range(n)]
    assert store.read_rows("v", "a", [str(i) for i in range(n)]) == expected
    assert store.write_rows("v", "a", [str(i) for i in range(n)], batch, [now_ms + 60_000] * n) == 0


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


# -- event state (aggregation views) ----------------------------------------------------------
NOW_US = int(time.time()) * 1_000_000
HOUR = 3_600_000_000


# Stores that cannot hold aggregation state yet, with the exception they raise (as ibis marks a
# backend's gaps): the tests below expect exactly that exception there, and pass everywhere else.
NO_EVENTS: dict[str, type[Exception]] = {}


@pytest.fixture
def needs_events(store: OnlineStore, request: pytest.FixtureRequest) -> None:
    scheme = request.node.callspec.params["store"]
    if scheme in NO_EVENTS:
        with pytest.raises(NO_EVENTS[scheme]):
            store.read_events("agg", "v1", ["1"])
        pytest.xfail(f"{scheme} does not hold aggregation state yet (raises {NO_EVENTS[scheme].__name__})")


def event(ts: int, value: object = 1.0, created: int | None = None, seq: int = 0) -> bytes:
    return orjson.dumps([ts, created, seq, value])


@pytest.mark.usefixtures("needs_events")
def test_events_append_read_and_dedupe_by_identity(store: OnlineStore) -> None:
    e1, e2 = event(NOW_US, 1.0), event(NOW_US, 2.0)  # two events at one time both count
    assert store.append_events("agg", "v1", ["1", "2"], [[("n:a", e1), ("n:b", e2)], [("i:x", e1)]], HOUR) == 3
    assert store.append_events("agg", "v1", ["2"], [[("i:x", e2)]], HOUR) == 0  # a retried event id counts once
    one, two, none = store.read_events("agg", "v1", ["1", "2", "3"])
    assert sorted(one) == sorted([e1, e2]) and two == [e1] and none == []
    assert store.read_events("agg", "other", ["1"]) == [[]]
    assert store.read_events("agg", "v1", []) == []


@pytest.mark.usefixtures("needs_events")
def test_events_older_than_the_horizon_of_the_newest_are_dropped(store: OnlineStore) -> None:
    old, mid, new = event(NOW_US - 2 * HOUR), event(NOW_US - HOUR // 2), event(NOW_US)
    assert store.append_events("agg", "v1", ["1"], [[("n:old", old)]], HOUR) == 1
    assert store.append_events("agg", "v1", ["1"], [[("n:new", new)]], HOUR) == 1  # pushes `old` out
    assert store.read_events("agg", "v1", ["1"]) == [[new]]
    # a late event inside the window still counts; one older than it never enters
    assert store.append_events("agg", "v1", ["1"], [[("n:mid", mid), ("n:old2", old)]], HOUR) == 1
    assert sorted(store.read_events("agg", "v1", ["1"])[0]) == sorted([mid, new])


@pytest.mark.usefixtures("needs_events")
def test_events_replace_and_expire(store: OnlineStore) -> None:
    def held() -> list[bytes]:
        return sorted(store.read_events("agg", "v1", ["1"])[0])

    pushed, late = event(NOW_US, 1.0, seq=7), event(NOW_US - 1)
    store.append_events("agg", "v1", ["1"], [[("n:a", pushed), ("n:b", late)]], HOUR)
    # a rebuild from the offline events replaces the stored copies of its events (equal but for
    # the seq); a pushed event the offline store lacks stays, even when older than its newest
    offline = [("n:r", event(NOW_US, 1.0, seq=0)), ("n:c", event(NOW_US, 5.0, seq=1))]
    assert store.append_events("agg", "v1", ["1"], [offline], HOUR, replace=True) == 2
    assert held() == sorted([event(NOW_US, 1.0, seq=0), event(NOW_US, 5.0, seq=1), late])
    # events after the newest rebuilt one stay; a rebuilt event id replaces the stored event of that id
    store.append_events(
        "agg", "v1", ["1"], [[("n:pushed", event(NOW_US + 10, 7.0)), ("i:x", event(NOW_US + 20))]], HOUR
    )
    again = [*offline, ("n:d", event(NOW_US + 5, 6.0, seq=2)), ("i:x", event(NOW_US + 3, 9.0, seq=3))]
    assert store.append_events("agg", "v1", ["1"], [again], HOUR, replace=True) == 4
    assert held() == sorted([p for _, p in again] + [late, event(NOW_US + 10, 7.0)])
    # two equal events count twice; one offline copy replaces one of them
    store.append_events("agg", "v1", ["3"], [[("n:p1", event(NOW_US, 2.0)), ("n:p2", event(NOW_US, 2.0))]], HOUR)
    store.append_events("agg", "v1", ["3"], [[("n:o1", event(NOW_US, 2.0, seq=4))]], HOUR, replace=True)
    assert sorted(store.read_events("agg", "v1", ["3"])[0]) == sorted([event(NOW_US, 2.0), event(NOW_US, 2.0, seq=4)])
    # the whole state of an entity whose newest event left the longest window is gone
    store.append_events("agg", "v1", ["2"], [[("n:x", event(NOW_US - 2 * HOUR))]], HOUR)
    assert store.read_events("agg", "v1", ["2"]) == [[]]
    store.delete("agg", "v1")
    assert store.read_events("agg", "v1", ["1"]) == [[]]


@pytest.mark.usefixtures("needs_events")
def test_scan_events_lists_every_entity_with_its_identities(store: OnlineStore) -> None:
    one = [("n:a", event(NOW_US)), ("i:x", event(NOW_US - 1))]
    store.append_events("agg", "v1", ["1", "2"], [one, [("n:b", event(NOW_US))]], HOUR)
    store.append_events("agg", "v2", ["3"], [[("n:c", event(NOW_US))]], HOUR)
    found = {key: sorted(items) for key, items in store.scan_events("agg", "v1")}
    assert found == {"1": sorted(one), "2": [("n:b", event(NOW_US))]}
    assert list(store.scan_events("agg", "v3")) == []


@pytest.mark.usefixtures("needs_events")
def test_concurrent_event_appends_lose_nothing(store: OnlineStore) -> None:
    def worker(w: int) -> None:
        for i in range(20):
            store.append_events("agg", "v1", ["1"], [[(f"n:{w}-{i}", event(NOW_US - i, float(w)))]], HOUR)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.read_events("agg", "v1", ["1"])[0]) == 80


@pytest.mark.usefixtures("needs_events")
def test_async_event_reads_match(store: OnlineStore) -> None:
    store.append_events("agg", "v1", ["1"], [[("n:a", event(NOW_US))]], HOUR)

    async def read() -> list[list[bytes]]:
        try:
            return await store.aread_events("agg", "v1", ["1", "2"])
        finally:
            await store.aclose()

    assert asyncio.run(read()) == [[event(NOW_US)], []]
