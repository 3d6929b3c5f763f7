"""LookupLink: concurrent MGETs over one pipelined connection, password and db, silence, loss and cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from featurestore.errors import StoreUnavailableError
from featurestore.online import open_online_store
from featurestore.online.redis import RedisOnlineStore
from tests.conftest import RedisServer, free_port


def _store(url: str, project: str, timeout: float = 0.5) -> RedisOnlineStore:
    store = open_online_store(url, project, timeout=timeout)
    assert isinstance(store, RedisOnlineStore) and store._reads is not None  # the link serves redis:// lookups
    return store


def _row(i: int) -> bytes:
    return b"[%d,%d.5,0]" % (1_700_000_000_000_000 + i, i)


def test_concurrent_lookups_share_one_connection_and_each_gets_its_own_rows(redis_server: RedisServer) -> None:
    store = _store(redis_server.url, "reads1")
    keys = [str(i) for i in range(300)]
    store.write_rows("v", "a", keys, [_row(i) for i in range(300)])
    client = redis.Redis.from_url(redis_server.url)

    async def run() -> None:
        asks = [[str((i * 7 + j) % 330) for j in range(1 + i % 40)] for i in range(200)]
        got = await asyncio.gather(*(store.aread_rows("v", "a", ask) for ask in asks))
        for ask, rows in zip(asks, got, strict=True):
            assert rows == [_row(int(k)) if int(k) < 300 else None for k in ask]
        link = await store._reads._link()  # type: ignore[union-attr]
        port = link._transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        mine = [c for c in client.client_list() if c["addr"].endswith(f":{port}")]
        assert len(mine) == 1 and mine[0]["cmd"] == "mget"  # every lookup above went through this one connection
        await store.aclose()

    asyncio.run(run())


def test_password_and_db_from_the_url(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="s3cret")
    server.start()
    try:
        url = server.url.replace("/0", "/3")
        store = _store(url, "reads2")
        store.write_rows("v", "a", ["1"], [_row(1)])
        assert redis.Redis.from_url(url).exists("fs:reads2:v:a:1")  # written in db 3
        assert asyncio.run(store.aread_rows("v", "a", ["1", "2"])) == [_row(1), None]
        wrong = _store(server.url.replace("s3cret", "nope"), "reads2")
        with pytest.raises(Exception, match="(?i)password|auth"):
            asyncio.run(wrong.aread_rows("v", "a", ["1"]))
    finally:
        server.stop()


def test_a_silent_server_answers_503_within_the_timeout_and_the_next_link_works(redis_server: RedisServer) -> None:
    async def run() -> None:
        accepted: list[asyncio.StreamWriter] = []

        async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.append(writer)  # reads nothing, answers nothing

        silent = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        store = _store(f"redis://127.0.0.1:{port}/0", "reads3", timeout=0.2)
        waits = [store.aread_rows("v", "a", [str(i)]) for i in range(5)]
        results = await asyncio.gather(*waits, return_exceptions=True)
        assert all(isinstance(r, StoreUnavailableError) and "silent" in str(r) for r in results)
        # The link was closed; pointing the same store at a live Redis (as after a failover) works.
        store._reads.port = redis_server.port  # type: ignore[union-attr]
        _store(redis_server.url, "reads3").write_rows("v", "a", ["1"], [_row(1)])
        assert await store.aread_rows("v", "a", ["1"]) == [_row(1)]
        silent.close()
        for writer in accepted:
            writer.close()

    asyncio.run(run())


def test_a_lost_connection_fails_the_waiting_lookups_and_the_next_one_reconnects(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, port=free_port())
    server.start()
    store = _store(server.url, "reads4", timeout=0.5)
    store.write_rows("v", "a", ["1"], [_row(1)])

    async def run() -> None:
        assert await store.aread_rows("v", "a", ["1"]) == [_row(1)]
        server.stop()
        with pytest.raises(StoreUnavailableError):
            await store.aread_rows("v", "a", ["1"])
        server.start()
        store.write_rows("v", "a", ["1"], [_row(1)])
        assert await store.aread_rows("v", "a", ["1"]) == [_row(1)]
        await store.aclose()

    try:
        asyncio.run(run())
    finally:
        server.stop()


def test_a_cancelled_lookup_leaves_the_replies_of_the_others_in_order(redis_server: RedisServer) -> None:
    store = _store(redis_server.url, "reads5")
    store.write_rows("v", "a", [str(i) for i in range(50)], [_row(i) for i in range(50)])

    async def run() -> None:
        tasks = [asyncio.ensure_future(store.aread_rows("v", "a", [str(i)])) for i in range(50)]
        await asyncio.sleep(0)  # every MGET written
        for t in tasks[::3]:
            t.cancel()
        for i, t in enumerate(tasks):
            if i % 3:
                assert await t == [_row(i)]
        assert await store.aread_rows("v", "a", ["7", "8"]) == [_row(7), _row(8)]
        await store.aclose()

    asyncio.run(run())


def test_tls_urls_keep_redis_py() -> None:
    assert open_online_store("rediss://127.0.0.1:1/0", "p")._reads is None  # type: ignore[attr-defined]
