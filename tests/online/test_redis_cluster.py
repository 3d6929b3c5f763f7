"""The Redis Cluster store against a real local cluster: URLs, spreading, redirections, resharding and failover."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from featurestore import FeatureStore
from featurestore.errors import OnlineStoreError, StoreUnavailableError
from featurestore.online import open_online_store
from featurestore.online.redis_cluster import RedisClusterOnlineStore, parse_cluster_url
from tests.conftest import RedisClusterServers, cluster_port
from tests.server.test_routes import post, running
from tests.test_materialize import NOW, build, point_in_time, source_frame

_projects = itertools.count()


@pytest.fixture
def store(redis_cluster: RedisClusterServers) -> Iterator[RedisClusterOnlineStore]:
    s = open_online_store(redis_cluster.url, f"cluster{next(_projects)}")
    assert isinstance(s, RedisClusterOnlineStore)
    yield s
    s.close()


def row(ts: int, *values: object) -> bytes:
    return orjson.dumps([ts, *values, 0])


def test_url_names_seeds_credentials_and_tls_options() -> None:
    url = parse_cluster_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2:7001/0?ssl_ca_certs=/ca.pem")
    assert url.seeds == [("10.0.0.1", 7000), ("10.0.0.2", 7001)]
    assert (url.username, url.password, url.tls) == ("app", "p@ss", True)
    assert url.options == {"ssl_ca_certs": "/ca.pem"}
    assert parse_cluster_url("redis+cluster://:pw@h:1").password == "pw"
    for bad, message in [
        ("redis+cluster://:pw@h:1/3", "only database 0"),
        ("redis+cluster://:pw@h", "not host:port"),
        ("redis+cluster://:pw@h:1?timeout=3", "unknown option"),
        ("redis://h:1", "redis\\+cluster://"),
    ]:
        with pytest.raises(OnlineStoreError, match=message) as err:
            parse_cluster_url(bad)
        assert "pw" not in str(err.value)


def test_unreachable_cluster_is_unavailable_and_hides_the_password() -> None:
    s = open_online_store(f"redis+cluster://:s3cret@127.0.0.1:{cluster_port()}", "p", timeout=0.2)
    for call in (lambda: s.read_rows("v", "a", ["1", "2"]), s.ping, lambda: asyncio.run(s.aping())):
        with pytest.raises(StoreUnavailableError) as err:
            call()
        assert "s3cret" not in str(err.value)
    s.close()


def _commandstats(cluster: RedisClusterServers, port: str) -> dict[str, int]:
    out = cluster.cli("-p", port, "info", "commandstats", timeout=5)
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line.partition(":")
            stats[name[8:]] = int(rest.split(",")[0].split("=")[1])
    return stats


def test_a_lookup_of_100_entities_is_one_round_trip_per_master(
    store: RedisClusterOnlineStore, redis_cluster: RedisClusterServers
) -> None:
    keys = [str(i) for i in range(100)]
    rows = [row(i, f"value {i}") for i in range(100)]
    assert store.write_rows("v", "a", keys, rows) == 100
    masters = redis_cluster.masters()
    per_master = {m["port"]: int(redis_cluster.cli("-p", m["port"], "dbsize", timeout=5)) for m in masters}
    assert len(masters) == 3 and all(n > 0 for n in per_master.values())  # spread over every master
    asked = [*keys[::-1], "missing"]
    for read in (lambda: asyncio.run(store.aread_rows("v", "a", asked)), lambda: store.read_rows("v", "a", asked)):
        for m in masters:
            redis_cluster.cli("-p", m["port"], "config", "resetstat", timeout=5)
        assert read() == [*rows[::-1], None]
        stats = [_commandstats(redis_cluster, m["port"]) for m in masters]
        assert sum(st.get("get", 0) for st in stats) == 101  # one pipelined GET per key, no redirection
        # Besides our GETs a master only sees its replica's REPLCONF ACK (sent every second).
        extra = [set(st) - {"get", "hello", "config|resetstat", "replconf"} for st in stats]
        assert extra == [set()] * len(stats), f"commands other than GET reached the masters: {extra}"


def test_a_stale_slot_map_is_corrected_by_redirections(store: RedisClusterOnlineStore) -> None:
    """Every slot pointed at the wrong master: reads and writes still land on the right keys (MOVED)."""
    keys = [f"k{i}" for i in range(300)]
    store.write_rows("v", "a", keys, [row(1, k) for k in keys])
    store.read_rows("v", "a", keys[:2])  # the map is loaded
    masters = store._cluster.masters
    rotate = {m: masters[(i + 1) % len(masters)] for i, m in enumerate(masters)}
    store._cluster.slots = [None if a is None else rotate[a] for a in store._cluster.slots]
    assert store.write_rows("v", "a", keys, [row(2, k) for k in keys]) == 300
    assert store.read_rows("v", "a", keys) == [row(2, k) for k in keys]
    store._cluster.slots = [None if a is None else rotate[a] for a in store._cluster.slots]
    assert asyncio.run(store.aread_rows("v", "a", keys)) == [row(2, k) for k in keys]


def test_a_bulk_write_sets_absent_keys_and_compares_stored_ones(
    store: RedisClusterOnlineStore, redis_cluster: RedisClusterServers
) -> None:
    """Materialize's path: ``SET NX`` per absent key on its master, the newest-wins script where a row is stored."""
    keys = [str(i) for i in range(12_000)]
    expiry = [int(time.time() * 1000) + 600_000] * len(keys)
    masters = redis_cluster.masters()
    for m in masters:
        redis_cluster.cli("-p", m["port"], "config", "resetstat", timeout=5)
    assert store.write_rows("v", "a", keys, [row(5, k) for k in keys], expiry) == 12_000
    stats = [_commandstats(redis_cluster, m["port"]) for m in masters]
    assert sum(st.get("set", 0) for st in stats) == 12_000  # one SET NX per key, no redirection
    assert all(st.get("evalsha", 0) == 0 for st in stats)  # no key held a row: no script ran
    ttl = int(redis_cluster.cli("-c", "-p", masters[0]["port"], "pttl", store.prefix("v", "a") + "7", timeout=5))
    assert 500_000 < ttl <= 600_000  # PXAT set with the row
    # a rerun over the same keys: newer rows for half of them, older for the rest
    again = [row(6 if i % 2 else 4, k, "again") for i, k in enumerate(keys)]
    assert store.write_rows("v", "a", keys, again, expiry) == 6_000
    got = store.read_rows("v", "a", keys)
    assert got == [again[i] if i % 2 else row(5, k) for i, k in enumerate(keys)]
    assert sum(_commandstats(redis_cluster, m["port"]).get("evalsha", 0) for m in masters) > 0


def test_a_bulk_write_follows_moved_slots_for_absent_keys(store: RedisClusterOnlineStore) -> None:
    """Every slot pointed at the wrong master before a first write: each ``SET NX`` answered MOVED is re-sent."""
    store.read_rows("v", "a", ["0"])  # the map is loaded
    masters = store._cluster.masters
    rotate = {m: masters[(i + 1) % len(masters)] for i, m in enumerate(masters)}
    store._cluster.slots = [None if a is None else rotate[a] for a in store._cluster.slots]
    keys = [f"m{i}" for i in range(300)]
    assert store.write_rows("v", "a", keys, [row(1, k) for k in keys]) == 300
    assert store.read_rows("v", "a", keys) == [row(1, k) for k in keys]


def test_a_bulk_write_outlasts_a_stalled_master(redis_cluster: RedisClusterServers) -> None:
    """A master frozen for longer than the lookup timeout: lookups answer 503, a bulk write waits it out."""
    s = open_online_store(redis_cluster.url, f"cluster{next(_projects)}", timeout=0.2)
    keys = [str(i) for i in range(20_000)]
    rows = [row(i, "bulk") for i in range(20_000)]
    expiry = [int(time.time() * 1000) + 60_000] * len(keys)
    s.write_rows("v", "a", keys[:7_000], rows[:7_000], expiry[:7_000])  # some keys stored: the script runs too
    s.ping()
    redis_cluster.pause(int(redis_cluster.masters()[0]["port"]), 1.0)
    with pytest.raises(StoreUnavailableError):  # a lookup keeps its own short timeout
        s.read_rows("v", "a", keys[:300])
    assert s.write_rows("v", "a", keys, rows, expiry) == 13_000
    assert s.read_rows("v", "a", keys[::999]) == rows[::999]
    s.close()


def test_resharding_under_lookups_and_pushes_loses_nothing(
    store: RedisClusterOnlineStore, redis_cluster: RedisClusterServers
) -> None:
    """1,000 slots move between masters while a thread pushes newer rows and another looks them up."""
    keys = [f"e{i}" for i in range(4000)]
    store.write_rows("v", "a", keys, [row(0, k) for k in keys])
    stop, errors, unavailable, rounds = threading.Event(), [], [0], [0]

    def push() -> None:
        r = 0
        while not stop.is_set() or r < 3:
            r += 1
            for lo in range(0, len(keys), 500):
                batch = keys[lo : lo + 500]
                while True:  # a client retries a 503
                    try:
                        store.write_rows("v", "a", batch, [row(r, k) for k in batch], pushed=True)
                        break
                    except StoreUnavailableError:
                        unavailable[0] += 1
                        time.sleep(0.05)
                    except Exception as exc:  # noqa: BLE001 - the test reports it
                        errors.append(exc)
                        return
        rounds[0] = r

    def look() -> None:
        async def loop() -> None:
            while not stop.is_set():
                for lo in range(0, len(keys), 100):
                    batch = keys[lo : lo + 100]
                    try:
                        got = await store.aread_rows("v", "a", batch)
                    except StoreUnavailableError:
                        unavailable[0] += 1
                        continue
                    for k, value in zip(batch, got, strict=True):
                        if value is None or orjson.loads(value)[1] != k:
                            errors.append(AssertionError(f"{k}: {value!r}"))

        try:
            asyncio.run(loop())
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=push), threading.Thread(target=look)]
    for t in threads:
        t.start()
    try:
        source, target = redis_cluster.masters()[:2]
        redis_cluster.reshard(source["id"], target["id"], 1000)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    final = rounds[0]
    print(f"resharding: {final} push rounds, {unavailable[0]} transient 503s")
    assert store.read_rows("v", "a", keys) == [row(final, k) for k in keys]  # the last round everywhere
    assert store.pushed_keys("v", "a") == sorted(keys)
    moved = {m["id"]: m["slots"] for m in redis_cluster.masters()}
    assert moved[source["id"]] != source["slots"]  # the slots did move


def test_a_silent_master_answers_503_within_the_timeout(redis_cluster: RedisClusterServers) -> None:
    """A frozen master (SIGSTOP, shorter than the node timeout): its lookups fail in time, then work again."""
    s = open_online_store(redis_cluster.url, f"cluster{next(_projects)}", timeout=0.3)
    keys = [f"s{i}" for i in range(60)]
    s.write_rows("v", "a", keys, [row(1, k) for k in keys])

    async def scenario() -> None:
        assert await s.aread_rows("v", "a", keys) == [row(1, k) for k in keys]  # links open
        redis_cluster.pause(int(redis_cluster.masters()[0]["port"]), 1.0)
        t0 = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await s.aread_rows("v", "a", keys)
        assert time.monotonic() - t0 < 1.0
        await asyncio.sleep(1.2)
        assert await s.aread_rows("v", "a", keys) == [row(1, k) for k in keys]  # a new link, same answers

    asyncio.run(scenario())
    s.close()


def test_end_to_end_through_the_product_and_the_http_server(make_repo: Any, redis_cluster: RedisClusterServers) -> None:
    """A repository with ``online = "redis+cluster://..."``: apply, ingest, materialize, lookups, a push, HTTP."""
    df = source_frame()
    store = FeatureStore(build(make_repo, redis_cluster.url, df=df))
    (result,) = store.materialize()
    expected = point_in_time(df, result.end)
    ids = sorted(expected)
    got = store.get_online_features("svc", {"driver_id": [*ids, 999]})
    assert got["b"] == [*(expected[i]["b"] for i in ids), None]
    assert got["s"] == [*(expected[i]["s"] for i in ids), None]
    pushed = {"driver_id": 500, "event_timestamp": NOW.isoformat(), "a": 0.5, "b": 7, "s": "pushed"}
    assert store.push("stats", [pushed]).rows_written == 1
    online = store.online_store()
    assert isinstance(online, RedisClusterOnlineStore)
    version = online.current_version("stats")
    assert version is not None and "500" in "".join(online.pushed_keys("stats", version))
    with running(store.repo) as url:
        assert httpx.get(url + "/ready").status_code == 200
        body = {"features": ["stats:b", "stats:s"], "entities": {"driver_id": [*ids, 500]}}
        resp = post(url, "/get-online-features", body)
        assert resp.status_code == 200
        _, b, s = resp.json()["results"]
        assert b["values"] == [*(expected[i]["b"] for i in ids), 7]
        assert s["values"] == [*(expected[i]["s"] for i in ids), "pushed"]
        row_ = {"driver_id": 501, "event_timestamp": NOW.isoformat(), "a": 0.1, "b": 8, "s": "over http"}
        assert post(url, "/push", {"view": "stats", "rows": [row_]}).json()["rows_written"] == 1
        one = post(url, "/get-online-features", {"features": ["stats:s"], "entities": {"driver_id": [501]}})
        assert one.json()["results"][1]["values"] == ["over http"]


def test_failover_answers_503_then_the_promoted_replica(
    store: RedisClusterOnlineStore, redis_cluster: RedisClusterServers
) -> None:
    """kill -9 a master during lookups: only correct rows or 503s, then every key answers again.

    Runs last in this module: the killed node comes back as a replica and the cluster is healthy again.
    """
    keys = [f"f{i}" for i in range(600)]
    rows = {k: row(7, k) for k in keys}
    store.write_rows("v", "a", keys, list(rows.values()))
    redis_cluster.wait_replicated()
    meta_slot = int(redis_cluster.cli("-p", str(redis_cluster.ports[0]), "cluster", "keyslot", store._versions_key))
    victim = next(m for m in redis_cluster.masters() if not _serves(m["slots"], meta_slot))
    stop, errors, outcomes = threading.Event(), [], []

    def look() -> None:
        async def loop() -> None:
            while not stop.is_set():
                t = time.monotonic()
                try:
                    got = await store.aread_rows("v", "a", keys)
                except StoreUnavailableError:
                    outcomes.append((t, False))
                    await asyncio.sleep(0.01)
                    continue
                wrong = [k for k, value in zip(keys, got, strict=True) if value != rows[k]]
                if wrong:
                    errors.append(AssertionError(f"wrong rows for {wrong[:5]}"))
                outcomes.append((t, True))

        try:
            asyncio.run(loop())
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=look)
    thread.start()
    try:
        time.sleep(0.3)
        killed_at = time.monotonic()
        redis_cluster.kill(int(victim["port"]))
        deadline = killed_at + 60
        while time.monotonic() < deadline:  # until five lookups in a row, started after the kill, succeed
            last = outcomes[-5:]
            if len(last) == 5 and all(ok and t > killed_at for t, ok in last) and any(not ok for _, ok in outcomes):
                break
            time.sleep(0.05)
        recovered = next((t for t, ok in reversed(outcomes) if ok and t > killed_at), None)
    finally:
        stop.set()
        thread.join()
        redis_cluster.restart(int(victim["port"]))
        redis_cluster.wait_healthy()
    assert errors == []
    assert any(not ok for _, ok in outcomes), "the lost master's keys should have answered 503 for a while"
    assert recovered is not None, "the keys never answered again after the failover"
    settled = [t for t, ok in outcomes if ok and t > killed_at and all(o for u, o in outcomes if u >= t)]
    if settled:
        print(f"failover: every key answered again {min(settled) - killed_at:.2f} s after kill -9 of a master")
    assert store.read_rows("v", "a", keys) == list(rows.values())


def _serves(slots: str, slot: int) -> bool:
    for part in slots.split():
        lo, _, hi = part.partition("-")
        if not part.startswith("[") and int(lo) <= slot <= int(hi or lo):
            return True
    return False
