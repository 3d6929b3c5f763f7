"""The Redis Cluster online store: rows spread over every slot by entity key, metadata on one slot."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import redis.exceptions as rex

from featurestore.dsl.names import check_identifier
from featurestore.errors import OnlineStoreError
from featurestore.online.base import OnlineStore
from featurestore.online.cluster_events import append_pipelined, read_pipelined
from featurestore.online.cluster_nodes import ClusterNodes
from featurestore.online.cluster_wire import (
    CHUNK,
    POINTERS,
    SCRIPTS,
    Addr,
    ClusterURL,
    pack,
    pack_put_local,
    pack_set_absent,
    parse_cluster_url,
    read_set_absent,
    refused,
    slot_of,
    translate_cluster_error,
)
from featurestore.online.redis_wire import checked_out, parse_newest
from featurestore.online.scripts import APPEND_EVENTS_META, PUT_NEWER_SHA, events_only
from featurestore.times import utc_datetime

__all__ = ["RedisClusterOnlineStore", "ClusterURL", "parse_cluster_url"]


class RedisClusterOnlineStore(OnlineStore):
    """Rows in a Redis Cluster (``redis+cluster://host:port[,host:port...]``; the seeds reveal the rest).

    Layout: the single store's keys, with the metadata pinned to one slot by a hash tag:

    - ``fs:{project}:{view}:{version}:{entity key}`` -> the row, no hash tag, so the rows of a
      view spread over all 16384 slots (and every master) by entity key;
    - ``fs:{<project>:@meta}:versions`` / ``:pending`` (hashes, the pointers), ``:watermarks``,
      ``:newest`` and ``:pushed:{view}:{version}`` (sets) share the slot of the tag ``<project>:@meta``.

    A request groups its keys by the node serving their slot (from ``CLUSTER SLOTS``) and sends
    each node its part at once, to all nodes before reading: pipelined GETs for reads (on one
    shared connection per node in the event loop); for bulk writes pipelined ``SET NX PXAT``
    where no row is stored and one newest-wins script call per node and chunk for the others
    (pushes: the script only), on a client that waits up to ``BULK_TIMEOUT`` (10 s) for a busy
    node while lookups keep ``timeout``. Connection failures become
    ``StoreUnavailableError`` after one attempt bounded by ``timeout`` (no retries: the caller
    gets a 503 in time) and mark the slot map stale; the next request reads it again, so a
    promoted replica or moved slots are found without a restart. MOVED/ASK/TRYAGAIN answers
    are followed per slot.
    """

    def __init__(self, url: str, project: str, *, timeout: float = 0.5, max_connections: int = 64) -> None:
        self.url = url
        self.project = check_identifier(project, "project")
        self.timeout = timeout
        self.config = parse_cluster_url(url)
        meta = f"fs:{{{project}:@meta}}"
        self._versions_key, self._pending_key = f"{meta}:versions", f"{meta}:pending"
        self._watermarks_key, self._newest_key = f"{meta}:watermarks", f"{meta}:newest"
        self._pushed_prefix = f"{meta}:pushed:"
        self._meta_slot = slot_of(self._versions_key)
        self._cluster = ClusterNodes(self.config, timeout=timeout, max_connections=max_connections)
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> RedisClusterOnlineStore:
        """The store configured by ``settings.online`` and ``settings.online_timeout``."""
        return cls(settings.online_url, settings.project, timeout=settings.online_timeout)

    # -- keys -----------------------------------------------------------
    def prefix(self, view: str, version: str) -> str:
        """The key prefix of one view version (``fs:{project}:{view}:{version}:``)."""
        check_identifier(view, "feature view")
        if not version.isalnum():
            raise OnlineStoreError(f"invalid view version {version!r}")
        return f"fs:{self.project}:{view}:{version}:"

    def _pushed_key(self, view: str, version: str) -> str:
        self.prefix(view, version)
        return f"{self._pushed_prefix}{view}:{version}"

    # -- rows -----------------------------------------------------------
    def write_rows(
        self,
        view: str,
        version: str,
        keys: Sequence[str],
        rows: Sequence[bytes],
        expire_at_ms: Sequence[int] | None = None,
        *,
        pushed: bool = False,
    ) -> int:
        if len(keys) != len(rows) or (expire_at_ms is not None and len(expire_at_ms) != len(keys)):
            raise OnlineStoreError("write_rows: keys, rows and expire_at_ms must have the same length")
        if not keys:
            return 0
        prefix = self.prefix(view, version)
        full = [prefix + k for k in keys]
        try:
            if pushed:
                # Before the rows: a key marked pushed whose row then fails to land is harmless (it
                # carries nothing forward), a row written but never marked would be lost at the next
                # version switch. The push retries the whole batch on error anyway.
                pushed_set = self._pushed_key(view, version)
                for lo in range(0, len(keys), 10_000):
                    self._cluster.call(self._meta_slot, "SADD", pushed_set, *keys[lo : lo + 10_000])
            self._cluster.refresh_if_due()
            jobs = list(self._cluster.group(prefix, keys).items())
            if len(jobs) == 1:
                results = [self._write_node(jobs[0][0], jobs[0][1], full, rows, expire_at_ms, not pushed)]
            else:
                pool = self._pool or ThreadPoolExecutor(8, thread_name_prefix="fs-cluster")
                self._pool = pool
                futures = [
                    pool.submit(self._write_node, a, idx, full, rows, expire_at_ms, not pushed) for a, idx in jobs
                ]
                results = [f.result() for f in futures]
            written = sum(r[0] for r in results)
            for i in (i for r in results for i in r[1]):  # keys whose slot was not where the map said
                written += self._write_redirected(full[i], rows[i], None if expire_at_ms is None else expire_at_ms[i])
            return written
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    def _write_node(
        self,
        addr: Addr,
        idx: list[int],
        keys: list[str],
        rows: Sequence[bytes],
        expire_at_ms: Sequence[int] | None,
        absent_first: bool,
    ) -> tuple[int, list[int]]:
        """Write one node's keys: ``SET NX`` where no row is stored, the newest-wins script elsewhere.

        As in the single store: a pipelined ``SET key row NX PXAT t`` costs Redis half of a
        ``SET`` in a script; a key that already holds a row (a push, a rerun) is compared by
        ``PUT_LOCAL``, so newest wins whichever lands first. Chunks are sent one ahead of the
        replies read; once most keys of a chunk exist, the rest goes to the script directly.
        Pushes (``absent_first`` false) use the script only. Returns (written, moved indices):
        keys this node does not serve (MOVED/ASK), re-sent through their slot's owner.
        """
        written, moved, existing = 0, list[int](), list[int]()
        # bulk writes wait longer on a busy node than a push (an HTTP request) may
        client = self._cluster.bulk_node(addr) if absent_first else self._cluster.node(addr)
        if absent_first:
            with checked_out(client) as (conn,):
                in_flight: list[list[int]] = []  # chunks sent, replies not read yet
                for lo in range(0, len(idx), CHUNK):
                    if not absent_first:
                        existing.extend(idx[lo:])
                        break
                    chunk = idx[lo : lo + CHUNK]
                    conn.send_packed_command([pack_set_absent(chunk, keys, rows, expire_at_ms)], check_health=False)
                    in_flight.append(chunk)
                    if len(in_flight) > 1:
                        set_now, absent_first = read_set_absent(conn, in_flight.pop(0), existing, moved)
                        written += set_now
                for chunk in in_flight:
                    written += read_set_absent(conn, chunk, existing, moved)[0]
        else:
            existing = idx
        if existing:
            chunks = [existing[lo : lo + CHUNK] for lo in range(0, len(existing), CHUNK)]
            payloads = [pack_put_local(chunk, keys, rows, expire_at_ms) for chunk in chunks]
            for chunk, (count, not_here) in zip(chunks, self._exchange(client, payloads), strict=True):
                written += int(count)
                moved.extend(chunk[int(j) - 1] for j in not_here)
        return written, moved

    def _write_redirected(self, key: str, row: bytes, expire_at_ms: int | None) -> int:
        """One row through its slot's owner (following MOVED/ASK) with the declared-keys script."""
        args: list[Any] = ["EVALSHA", PUT_NEWER_SHA, 1, key, 1, 0 if expire_at_ms is None else 1, 0, row]
        if expire_at_ms is not None:
            args.append(expire_at_ms)
        return int(self._cluster.call(slot_of(key), *args))

    def _exchange(self, client: Any, payloads: list[bytes]) -> list[Any]:
        """Send packed commands to one node's client in one write and read their replies (loading scripts once)."""
        pool = client.connection_pool
        conn = pool.get_connection()
        try:
            conn.send_packed_command(payloads)
            replies: list[Any] = []
            missing = []
            for i in range(len(payloads)):
                try:
                    replies.append(conn.read_response())
                except rex.NoScriptError:
                    replies.append(None)
                    missing.append(i)
            if missing:  # first use on this node (or after a restart or failover): load, send again
                for script in SCRIPTS.values():
                    conn.send_command("SCRIPT", "LOAD", script)
                    conn.read_response()
                conn.send_packed_command([payloads[i] for i in missing])
                for i in missing:
                    replies[i] = conn.read_response()
            return replies
        except rex.ResponseError as exc:
            raise refused(exc) from None
        except BaseException:
            conn.disconnect()
            raise
        finally:
            pool.release(conn)

    def read_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return self._cluster.read_each(self.prefix(view, version), keys, "GET")
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    async def aread_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self.prefix(view, version)
        full = [prefix + k for k in keys]
        try:
            await self._cluster.arefresh_if_due()
            groups = list(self._cluster.group(prefix, keys).items())
            replies = await self._aexchange_reads(groups, full)
            out: list[bytes | None] = [None] * len(full)
            for (_, idx), values in zip(groups, replies, strict=True):
                for i, value in zip(idx, values, strict=True):
                    if isinstance(value, rex.AskError):  # the slot moved (MOVED) or is moving (ASK)
                        out[i] = await self._cluster.acall(slot_of(full[i]), "GET", full[i])
                    elif isinstance(value, Exception):
                        raise refused(value)
                    else:
                        out[i] = value
            return out
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    async def _aexchange_reads(self, groups: list[tuple[Addr, list[int]]], keys: list[str]) -> list[Any]:
        """Pipelined GETs per node on its link, all nodes written first, then all awaited: one round trip.

        Concurrent lookups share one connection per node (Redis answers in order), which costs
        no pool, lock or task per request; replies are parsed by hiredis in C, so plain GETs cost
        the server less than a script. An error reply (MOVED, ASK...) comes back as a value; a
        node silent for ``timeout`` loses its link and the lookup answers 503.
        """
        links = [await self._cluster.link(addr) for addr, _ in groups]
        futures = [
            link.send(b"".join([pack("GET", keys[i]) for i in idx]), len(idx))
            for link, (_, idx) in zip(links, groups, strict=True)
        ]
        try:
            async with asyncio.timeout(self.timeout):
                return [await f for f in futures]
        except TimeoutError:
            for link in links:
                link.close()
            raise rex.TimeoutError(f"Redis Cluster node silent for {self.timeout} s") from None

    # -- aggregation state: one hash per entity, appended by scripts.APPEND_EVENTS ----
    def append_events(
        self,
        view: str,
        version: str,
        keys: Sequence[str],
        events: Sequence[Sequence[tuple[str, bytes]]],
        horizon_us: int,
        *,
        replace: bool = False,
    ) -> int:
        if len(keys) != len(events):
            raise OnlineStoreError("append_events: keys and events must have the same length")
        if not keys:
            return 0
        prefix = self.prefix(view, version)
        try:
            return append_pipelined(self._cluster, prefix, keys, events, horizon_us, replace)
        except Exception as exc:
            raise translate_cluster_error(exc) from exc

    def read_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        prefix = self.prefix(view, version)
        try:
            if len(keys) <= 1:
                return [events_only(self._cluster.call(slot_of(prefix + k), "HVALS", prefix + k)) for k in keys]
            return read_pipelined(self._cluster, prefix, keys)
        except Exception as exc:
            raise translate_cluster_error(exc) from exc

    async def aread_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        prefix = self.prefix(view, version)
        try:
            found = await asyncio.gather(*[self._cluster.acall(slot_of(prefix + k), "HVALS", prefix + k) for k in keys])
        except Exception as exc:
            raise translate_cluster_error(exc) from exc
        return [events_only(v) for v in found]

    def scan_events(self, view: str, version: str) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        prefix = self.prefix(view, version)
        try:
            self._cluster.refresh_if_due()
            for addr in list(self._cluster.masters):
                for raw in self._cluster.node(addr).scan_iter(match=prefix + "*", count=1000):
                    key = raw.decode()
                    reply = self._cluster.call(slot_of(key), "HGETALL", key)  # follows a key moved meanwhile
                    pairs = zip(reply[::2], reply[1::2], strict=True) if isinstance(reply, list) else reply.items()
                    items = [(f.decode(), v) for f, v in pairs if f.decode() != APPEND_EVENTS_META]
                    if items:
                        yield key[len(prefix) :], items
        except Exception as exc:
            raise translate_cluster_error(exc) from exc

    def pushed_keys(self, view: str, version: str) -> list[str]:
        key, cursor, members = self._pushed_key(view, version), b"0", set[str]()
        try:
            while True:
                cursor, batch = self._cluster.call(self._meta_slot, "SSCAN", key, cursor, "COUNT", 10_000)
                members.update(m.decode() for m in batch)
                if int(cursor) == 0:
                    return sorted(members)
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    # -- pointers and watermarks -----------------------------------------
    def _meta(self, *args: Any) -> Any:
        try:
            return self._cluster.call(self._meta_slot, *args)
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    async def _ameta(self, *args: Any) -> Any:
        try:
            return await self._cluster.acall(self._meta_slot, *args)
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    def pointers(self, view: str) -> tuple[str | None, str | None]:
        current, pending = self._meta("EVAL", POINTERS, 2, self._versions_key, self._pending_key, view)
        cur = None if current is None else current.decode()
        pend = None if pending is None else pending.decode()
        return cur, (None if pend == cur else pend)

    def set_pending_version(self, view: str, version: str) -> None:
        self.prefix(view, version)
        self._meta("HSET", self._pending_key, view, version)

    def current_version(self, view: str) -> str | None:
        value = self._meta("HGET", self._versions_key, view)
        return None if value is None else value.decode()

    def current_versions(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in self._meta("HGETALL", self._versions_key).items()}

    async def acurrent_versions(self) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in (await self._ameta("HGETALL", self._versions_key)).items()}

    def set_current_version(self, view: str, version: str, *, if_absent: bool = False) -> None:
        self.prefix(view, version)
        self._meta("HSETNX" if if_absent else "HSET", self._versions_key, view, version)

    def watermark(self, view: str, version: str) -> datetime | None:
        value = self._meta("HGET", self._watermarks_key, f"{view}:{version}")
        return None if value is None else utc_datetime(value.decode())

    def set_watermark(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        self._meta("HSET", self._watermarks_key, f"{view}:{version}", stamp.isoformat())

    def newest_events(self) -> dict[tuple[str, str], datetime]:
        return parse_newest(self._meta("HGETALL", self._newest_key))

    async def anewest_events(self) -> dict[tuple[str, str], datetime]:
        return parse_newest(await self._ameta("HGETALL", self._newest_key))

    def set_newest_event(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        field_ = f"{view}:{version}"
        old = self._meta("HGET", self._newest_key, field_)
        if old is None or utc_datetime(old.decode()) < stamp:  # type: ignore[operator]
            self._meta("HSET", self._newest_key, field_, stamp.isoformat())

    def delete(self, view: str, version: str | None = None) -> int:
        if version is None:
            pattern = f"fs:{self.project}:{check_identifier(view, 'feature view')}:*"
            self._meta("HDEL", self._versions_key, view)
            self._meta("HDEL", self._pending_key, view)
            for key in self._meta_scan(f"{self._pushed_prefix}{view}:*"):
                self._meta("UNLINK", key)
            for meta in (self._watermarks_key, self._newest_key):
                fields = [f for f in self._meta("HKEYS", meta) if f.decode().startswith(view + ":")]
                if fields:
                    self._meta("HDEL", meta, *fields)
        else:
            pattern = self.prefix(view, version) + "*"
            self._meta("UNLINK", self._pushed_key(view, version))
            self._meta("HDEL", self._watermarks_key, f"{view}:{version}")
            self._meta("HDEL", self._newest_key, f"{view}:{version}")
        try:
            self._cluster.refresh_if_due()
            return sum(self._delete_on(addr, pattern) for addr in self._cluster.masters)
        except Exception as exc:
            raise self._cluster.lost(exc) from exc

    def _meta_scan(self, pattern: str) -> list[bytes]:
        """Keys matching ``pattern`` on the metadata slot's node."""
        found, cursor = [], b"0"
        while True:
            cursor, batch = self._meta("SCAN", cursor, "MATCH", pattern, "COUNT", 10_000)
            found.extend(batch)
            if int(cursor) == 0:
                return found

    def _delete_on(self, addr: Addr, pattern: str) -> int:
        """Unlink one master's keys matching ``pattern`` (a key moved away meanwhile is left to its new owner)."""
        client, removed = self._cluster.node(addr), 0
        batch: list[bytes] = []

        def flush() -> int:
            pipe = client.pipeline(transaction=False)
            for key in batch:
                pipe.unlink(key)
            done = pipe.execute(raise_on_error=False)
            batch.clear()
            return sum(r for r in done if isinstance(r, int))

        for key in client.scan_iter(match=pattern, count=10_000):
            batch.append(key)
            if len(batch) >= 10_000:
                removed += flush()
        if batch:
            removed += flush()
        return removed

    # -- lifecycle --------------------------------------------------------
    def ping(self) -> None:
        """The metadata slot's master answers (without it no pointer, hence nothing, can be served)."""
        self._meta("PING")

    async def aping(self) -> None:
        await self._ameta("PING")

    def close(self) -> None:
        self._cluster.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def aclose(self) -> None:
        await self._cluster.aclose()
        self.close()

    def __repr__(self) -> str:
        return f"RedisClusterOnlineStore(project={self.project!r}, seeds={len(self.config.seeds)})"
