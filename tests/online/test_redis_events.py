"""Redis aggregation state: the per-entity META field (newest, oldest) that spares a push reading the state."""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Iterator

import orjson
import pytest

from featurestore.online.redis import RedisOnlineStore
from featurestore.online.scripts import APPEND_EVENTS_META

HOUR = 3_600_000_000
NOW_US = int(time.time() * 1_000_000)  # expiry is real: the events must be recent
_projects = itertools.count()


def event(ts: int, value: float = 1.0) -> bytes:
    return orjson.dumps([ts, None, 0, value])


@pytest.fixture
def store(redis_server) -> Iterator[RedisOnlineStore]:  # type: ignore[no-untyped-def]
    s = RedisOnlineStore(redis_server.url, f"events{next(_projects)}")
    yield s
    s.delete("agg")
    s.close()


def meta(store: RedisOnlineStore, key: str) -> tuple[int, int] | None:
    raw = store._client.hget(store.prefix("agg", "v1") + key, APPEND_EVENTS_META)
    if raw is None:
        return None
    newest, oldest = raw.decode().split(",")
    return int(newest), int(oldest)


def test_meta_holds_the_newest_and_oldest_stored_event(store: RedisOnlineStore) -> None:
    store.append_events("agg", "v1", ["1"], [[("n:a", event(NOW_US - 10)), ("n:b", event(NOW_US - 20))]], HOUR)
    assert meta(store, "1") == (NOW_US - 10, NOW_US - 20)
    store.append_events("agg", "v1", ["1"], [[("n:c", event(NOW_US))]], HOUR)
    assert meta(store, "1") == (NOW_US, NOW_US - 20)
    # the oldest leaves the window: the state is scanned, pruned, and META recomputed
    store.append_events("agg", "v1", ["1"], [[("n:d", event(NOW_US - 15 + HOUR))]], HOUR)
    assert meta(store, "1") == (NOW_US - 15 + HOUR, NOW_US - 10)
    assert sorted(store.read_events("agg", "v1", ["1"])[0]) == sorted(
        [event(NOW_US - 10), event(NOW_US), event(NOW_US - 15 + HOUR)]
    )


def test_a_repeated_identity_does_not_move_the_stored_newest(store: RedisOnlineStore) -> None:
    store.append_events("agg", "v1", ["1"], [[("i:x", event(NOW_US))]], HOUR)
    assert store.append_events("agg", "v1", ["1"], [[("i:x", event(NOW_US + 5))]], HOUR) == 0
    assert meta(store, "1") == (NOW_US, NOW_US)


def test_state_without_meta_is_scanned_once_and_gets_it(store: RedisOnlineStore) -> None:
    key = store.prefix("agg", "v1") + "1"
    store._client.hset(key, mapping={"n:a": event(NOW_US - 2 * HOUR), "n:b": event(NOW_US - 5)})  # an older layout
    assert store.append_events("agg", "v1", ["1"], [[("n:c", event(NOW_US))]], HOUR) == 1
    assert meta(store, "1") == (NOW_US, NOW_US - 5)
    assert sorted(store.read_events("agg", "v1", ["1"])[0]) == sorted([event(NOW_US - 5), event(NOW_US)])


def test_a_replace_with_no_events_leaves_no_key(store: RedisOnlineStore) -> None:
    store.append_events("agg", "v1", ["1"], [[("n:a", event(NOW_US))]], HOUR)
    store.append_events("agg", "v1", ["1"], [[]], HOUR, replace=True)
    assert store._client.exists(store.prefix("agg", "v1") + "1") == 0


def test_random_appends_keep_meta_exact_and_the_window_bounded(store: RedisOnlineStore) -> None:
    rng = random.Random(7)
    kept: dict[str, int] = {}
    for i in range(300):
        ts = NOW_US + rng.randrange(-HOUR, 3 * HOUR)
        kept[f"n:{i}"] = ts
        store.append_events("agg", "v1", ["1"], [[(f"n:{i}", event(ts))]], HOUR)
        newest = max(kept.values())
        kept = {k: t for k, t in kept.items() if t > newest - HOUR}
        assert meta(store, "1") == (max(kept.values()), min(kept.values()))
    stored = sorted(orjson.loads(p)[0] for p in store.read_events("agg", "v1", ["1"])[0])
    assert stored == sorted(kept.values())
