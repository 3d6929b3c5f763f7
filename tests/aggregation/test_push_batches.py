"""A push's batch of events for many entities: one guarded Redis call, exact over version switches and retries."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import orjson
import pytest

from featurestore.online.memory import MemoryOnlineStore
from featurestore.online.redis import RedisOnlineStore
from featurestore.online.scripts import APPEND_EVENTS_META

HOUR = 3_600_000_000
NOW_US = int(time.time() * 1_000_000)  # expiry is real: the events must be recent
_projects = itertools.count()


def event(ts: int, value: float = 1.0) -> bytes:
    return orjson.dumps([ts, None, 0, value])


def at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


@pytest.fixture
def store(redis_server) -> Iterator[RedisOnlineStore]:  # type: ignore[no-untyped-def]
    s = RedisOnlineStore(redis_server.url, f"batches{next(_projects)}")
    yield s
    s.delete("agg")
    s.close()


def commands(store: RedisOnlineStore) -> dict[str, int]:
    stats = store._client.info("commandstats")
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def every_version(horizons: dict[str, int]):  # type: ignore[no-untyped-def]
    def targets(current: str, pending: str | None) -> list[tuple[str, int]]:
        return [(v, horizons[v]) for v in dict.fromkeys((current, pending)) if v is not None and v in horizons]

    return targets


def stored(store: RedisOnlineStore, version: str, key: str) -> dict[str, bytes]:
    raw = store._client.hgetall(store.prefix("agg", version) + key)
    return {f.decode(): v for f, v in raw.items() if f.decode() != APPEND_EVENTS_META}


def test_a_batch_of_several_entities_is_one_call_and_lands_per_entity(store: RedisOnlineStore) -> None:
    store.set_current_version("agg", "v1")
    keys = ["1", "2", "3"]
    batch = [
        [("n:a", event(NOW_US - 10)), ("n:b", event(NOW_US - 20, 2.0))],
        [("i:x", event(NOW_US - 5))],
        [("n:c", event(NOW_US - 30)), ("n:d", event(NOW_US - 40)), ("n:e", event(NOW_US - 2 * HOUR))],
    ]
    store.append_events_live("agg", every_version({"v1": HOUR}), keys, batch, at(NOW_US))  # reads the pointers once
    before = commands(store)
    assert store.append_events_live("agg", every_version({"v1": HOUR}), ["4"], [[("n:f", event(NOW_US))]], at(NOW_US))
    after = commands(store)
    # the second push: one script call (commandstats also counts the commands it runs), no pointer read
    delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
    assert delta["evalsha"] == 1 and not {"multi", "exec", "eval"} & set(delta)
    assert stored(store, "v1", "1") == {"n:a": event(NOW_US - 10), "n:b": event(NOW_US - 20, 2.0)}
    assert stored(store, "v1", "2") == {"i:x": event(NOW_US - 5)}
    # the event older than the entity's newest minus the horizon never entered
    assert stored(store, "v1", "3") == {"n:c": event(NOW_US - 30), "n:d": event(NOW_US - 40)}
    assert store.newest_events()[("agg", "v1")] == at(NOW_US)


def test_the_result_counts_events_added_and_a_retried_batch_adds_none(store: RedisOnlineStore) -> None:
    store.set_current_version("agg", "v1")
    batch = [[("i:1", event(NOW_US)), ("i:2", event(NOW_US - 1))], [("i:3", event(NOW_US - 2))]]
    targets = every_version({"v1": HOUR})
    assert store.append_events_live("agg", targets, ["1", "2"], batch, at(NOW_US)) == ("v1", {"v1": 3})
    assert store.append_events_live("agg", targets, ["1", "2"], batch, at(NOW_US)) == ("v1", {"v1": 0})
    assert len(stored(store, "v1", "1")) == 2 and len(stored(store, "v1", "2")) == 1


def test_a_batch_lands_on_the_current_and_the_pending_version(store: RedisOnlineStore) -> None:
    store.set_current_version("agg", "v1")
    store.set_pending_version("agg", "v2")
    targets = every_version({"v1": HOUR, "v2": 2 * HOUR})
    batch = [[("n:a", event(NOW_US))], [("n:b", event(NOW_US - 1))]]
    assert store.append_events_live("agg", targets, ["1", "2"], batch, at(NOW_US)) == ("v1", {"v1": 2, "v2": 2})
    for version in ("v1", "v2"):
        assert stored(store, version, "1") == {"n:a": event(NOW_US)}
        assert store.newest_events()[("agg", version)] == at(NOW_US)
    # the pending version's own horizon: an event 1.5 h older than the newest stays there only
    late = NOW_US - 3 * HOUR // 2
    added = store.append_events_live("agg", targets, ["1"], [[("n:c", event(late))]], at(late))
    assert added == ("v1", {"v1": 0, "v2": 1})
    # a version taking no events (other event columns) is left alone
    only_v1 = every_version({"v1": HOUR})
    assert store.append_events_live("agg", only_v1, ["9"], [[("n:z", event(NOW_US))]], at(NOW_US)) == ("v1", {"v1": 1})
    assert stored(store, "v2", "9") == {}


def test_a_stale_guess_of_the_pointers_writes_nothing_on_the_old_version(store: RedisOnlineStore, redis_server) -> None:  # type: ignore[no-untyped-def]
    store.set_current_version("agg", "v1")
    targets = every_version({"v1": HOUR, "v2": HOUR})
    assert store.append_events_live("agg", targets, ["1"], [[("n:a", event(NOW_US))]], at(NOW_US)) == ("v1", {"v1": 1})
    # another process switches the view to v2 (this store still guesses v1)
    other = RedisOnlineStore(redis_server.url, store.project)
    other.set_current_version("agg", "v2")
    other.close()
    assert store.append_events_live("agg", targets, ["1"], [[("n:b", event(NOW_US))]], at(NOW_US)) == ("v2", {"v2": 1})
    assert stored(store, "v1", "1") == {"n:a": event(NOW_US)}
    assert stored(store, "v2", "1") == {"n:b": event(NOW_US)}
    assert store.newest_events()[("agg", "v2")] == at(NOW_US)


def test_the_newest_event_time_only_moves_forward(store: RedisOnlineStore) -> None:
    store.set_current_version("agg", "v1")
    targets = every_version({"v1": HOUR})
    store.set_newest_event("agg", "v1", at(NOW_US))
    store.append_events_live("agg", targets, ["1"], [[("n:a", event(NOW_US - 10))]], at(NOW_US - 10))
    assert store.newest_events()[("agg", "v1")] == at(NOW_US)
    # whole seconds (isoformat without a fraction) against microseconds: still ordered by time
    whole = NOW_US - NOW_US % 1_000_000 + 1_000_000
    store.append_events_live("agg", targets, ["1"], [[("n:b", event(whole))]], at(whole))
    assert store.newest_events()[("agg", "v1")] == at(whole)
    store.append_events_live("agg", targets, ["1"], [[("n:c", event(whole + 1))]], at(whole + 1))
    assert store.newest_events()[("agg", "v1")] == at(whole + 1)


def test_no_pointers_or_a_large_batch_is_left_to_the_caller(store: RedisOnlineStore) -> None:
    targets = every_version({"v1": HOUR})
    assert store.append_events_live("agg", targets, ["1"], [[("n:a", event(NOW_US))]], at(NOW_US)) is None
    store.set_current_version("agg", "v1")
    big = [[(f"n:{i}", event(NOW_US - i)) for i in range(1001)]]
    assert store.append_events_live("agg", targets, ["1"], big, at(NOW_US)) is None
    assert stored(store, "v1", "1") == {}
    assert MemoryOnlineStore().append_events_live("agg", targets, ["1"], [[("n:a", event(NOW_US))]], at(NOW_US)) is None


def test_a_cluster_batch_is_one_script_call_per_entity_pipelined_per_master(redis_cluster) -> None:  # type: ignore[no-untyped-def]
    import redis

    from featurestore.online.redis_cluster import RedisClusterOnlineStore

    store = RedisClusterOnlineStore(redis_cluster.url, f"cbatch{next(_projects)}")
    masters = [redis.Redis(port=p) for p in redis_cluster.ports]
    try:
        keys = [str(k) for k in range(60)]  # spread over the three masters' slots
        batch = [[(f"i:{k}", event(NOW_US - int(k))), (f"n:{k}", event(NOW_US - 2 * HOUR))] for k in keys]

        def calls() -> dict[str, int]:
            total: dict[str, int] = {}
            for m in masters:
                for name, v in m.info("commandstats").items():
                    total[name] = total.get(name, 0) + int(v["calls"])
            return total

        # (the first call on a node may find the script missing: NOSCRIPT, load, send again)
        assert store.append_events("agg", "v1", keys, batch, HOUR) == 60  # the 2 h old events never enter
        before = calls()
        assert store.append_events("agg", "v1", keys, batch, HOUR) == 0  # a retried batch adds nothing
        after = calls()
        delta = {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
        assert delta.get("cmdstat_evalsha", 0) == 60 and "cmdstat_eval" not in delta
        stored_events = store.read_events("agg", "v1", keys)
        assert [sorted(e) for e in stored_events] == [[event(NOW_US - int(k))] for k in keys]
        # a rebuild (replace) goes the same way and supersedes by identity
        rebuilt = [[(f"i:{k}", event(NOW_US - int(k), 2.0))] for k in keys]
        assert store.append_events("agg", "v1", keys, rebuilt, HOUR, replace=True) == 60
        assert [e for e in store.read_events("agg", "v1", keys)] == [[event(NOW_US - int(k), 2.0)] for k in keys]
    finally:
        store.delete("agg")
        store.close()
        for m in masters:
            m.close()


def test_a_view_deleted_under_a_guess_is_read_again_once_it_has_a_version(store: RedisOnlineStore) -> None:
    targets = every_version({"v1": HOUR, "v2": HOUR})
    store.set_current_version("agg", "v1")
    assert store.append_events_live("agg", targets, ["1"], [[("n:a", event(NOW_US))]], at(NOW_US)) == ("v1", {"v1": 1})
    store.delete("agg")  # pointers gone: the guess (v1) is stale
    assert store.append_events_live("agg", targets, ["1"], [[("n:b", event(NOW_US))]], at(NOW_US)) is None
    store.set_current_version("agg", "v2")
    assert store.append_events_live("agg", targets, ["1"], [[("n:c", event(NOW_US))]], at(NOW_US)) == ("v2", {"v2": 1})
    assert stored(store, "v2", "1") == {"n:c": event(NOW_US)}
