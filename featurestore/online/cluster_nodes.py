"""The slot map of a Redis Cluster and its node connections: discovery, refresh, redirections."""

from __future__ import annotations

import asyncio
import binascii
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis.exceptions as rex

from featurestore.errors import StoreUnavailableError, redact
from featurestore.online.cluster_wire import (
    BULK_TIMEOUT,
    MAX_REDIRECTS,
    REFRESH_EVERY,
    SCRIPTS,
    SLOTS,
    Addr,
    ClusterURL,
    NodeLink,
    pack,
    parse_slots,
    refused,
    reply_or_error,
    slot_of,
    ssl_context,
    translate_cluster_error,
)
from featurestore.online.redis_wire import checked_out, hiredis_connection_class

__all__ = ["ClusterNodes"]


class ClusterNodes:
    """Which master serves each slot, and one client per node (sync, asyncio, pipelined lookup links).

    The map comes from ``CLUSTER SLOTS`` of the first node that answers (the URL's seeds, then
    every node seen). A failure marks it stale (``lost``); the next request reads it again, at
    most every ``REFRESH_EVERY`` seconds, so a promoted replica or moved slots are found without
    a restart. ``call`` follows MOVED/ASK/TRYAGAIN answers for one slot.
    """

    def __init__(self, config: ClusterURL, *, timeout: float, max_connections: int) -> None:
        self.config = config
        self.timeout = timeout
        self._max_connections = max_connections
        self.slots: list[Addr | None] = [None] * SLOTS
        self.masters: list[Addr] = []
        self._known: list[Addr] = list(config.seeds)
        self._stale, self._loaded = True, False
        self._refreshed_at = 0.0
        self._lock, self._nodes_lock = threading.Lock(), threading.Lock()
        self._nodes: dict[Addr, Any] = {}
        self._bulk: dict[Addr, Any] = {}
        self._anodes: dict[Addr, Any] = {}
        self._aloop: asyncio.AbstractEventLoop | None = None
        self._arefreshing = False
        self._links: dict[Addr, asyncio.Task[NodeLink]] = {}

    def _options(self, addr: Addr, timeout: float | None = None) -> dict[str, Any]:
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        options: dict[str, Any] = {
            "host": addr[0],
            "port": addr[1],
            "username": self.config.username,
            "password": self.config.password,
            "socket_timeout": timeout or self.timeout,
            "socket_connect_timeout": self.timeout,
            "retry": Retry(NoBackoff(), 0),  # one attempt: a lost node must answer 503 within the timeout
            "max_connections": self._max_connections,
        }
        if self.config.tls:
            options.update(self.config.options)
        return options

    def node(self, addr: Addr) -> Any:
        client = self._nodes.get(addr)
        if client is None:
            import redis

            with self._nodes_lock:  # one client per node: a replaced one would close connections in use
                client = self._nodes.get(addr)
                if client is None:
                    client = self._nodes[addr] = redis.Redis(ssl=self.config.tls, **self._options(addr))
        return client

    def bulk_node(self, addr: Addr) -> Any:
        """The node's client for bulk writes: it waits up to ``BULK_TIMEOUT`` for a reply (connects as fast)."""
        client = self._bulk.get(addr)
        if client is None:
            import redis

            with self._nodes_lock:
                client = self._bulk.get(addr)
                if client is None:
                    options = self._options(addr, max(self.timeout, BULK_TIMEOUT))
                    client = self._bulk[addr] = redis.Redis(ssl=self.config.tls, **options)
        return client

    def anode(self, addr: Addr) -> Any:
        loop = asyncio.get_running_loop()
        if self._aloop is not loop:  # clients belong to one event loop
            self._anodes, self._links, self._aloop = {}, {}, loop
        client = self._anodes.get(addr)
        if client is None:
            import redis.asyncio as aredis

            options = self._options(addr)
            fast = hiredis_connection_class("rediss://" if self.config.tls else "redis://")
            if fast is not None:
                options["connection_class"] = fast
            elif self.config.tls:
                options["connection_class"] = aredis.SSLConnection
            pool = aredis.ConnectionPool(**options)
            client = self._anodes[addr] = aredis.Redis(connection_pool=pool)
        return client

    async def link(self, addr: Addr) -> NodeLink:
        """The node's pipelined connection for lookups (opened once per event loop, again after a failure)."""
        self.anode(addr)  # resets the per-loop state when the loop changed
        task = self._links.get(addr)
        if task is None or (task.done() and (task.cancelled() or task.exception() or task.result().closed)):
            task = self._links[addr] = asyncio.ensure_future(self._open_link(addr))
        return await asyncio.shield(task)

    async def _open_link(self, addr: Addr) -> NodeLink:
        loop = asyncio.get_running_loop()
        context = ssl_context(self.config.options) if self.config.tls else None
        async with asyncio.timeout(self.timeout):
            _, link = await loop.create_connection(NodeLink, addr[0], addr[1], ssl=context)
            if self.config.password is not None:
                auth = [self.config.username, self.config.password] if self.config.username else [self.config.password]
                reply = await link.request(pack("AUTH", *auth))
                if isinstance(reply, Exception):
                    link.close()
                    raise reply
        return link

    def refresh_due(self) -> bool:
        return self._stale and (not self._loaded or time.monotonic() - self._refreshed_at >= REFRESH_EVERY)

    def _candidates(self) -> list[Addr]:
        return list(dict.fromkeys([*self.masters, *self._known, *self.config.seeds]))

    def _install(self, source: Addr, reply: Any) -> None:
        slots, masters, known = parse_slots(source, reply)
        self.slots, self.masters = slots, masters
        self._known = list(dict.fromkeys([*known, *self.config.seeds]))
        self._stale, self._loaded = False, True

    def refresh(self) -> None:
        """Read the slot map from the first node that answers (rate-limited; only when stale)."""
        with self._lock:
            if not self.refresh_due():
                return
            self._refreshed_at = time.monotonic()
            errors = []
            for addr in self._candidates():
                try:
                    self._install(addr, self.node(addr).execute_command("CLUSTER", "SLOTS"))
                    return
                except Exception as exc:  # try the next node
                    errors.append(f"{addr[0]}:{addr[1]}: {exc}")
        self._no_map(errors)

    async def arefresh(self) -> None:
        while self._arefreshing and not self._loaded:  # the first map: wait for it rather than fail
            await asyncio.sleep(0.005)
        if self._arefreshing or not self.refresh_due():
            return
        self._arefreshing, self._refreshed_at = True, time.monotonic()
        try:
            errors = []
            for addr in self._candidates():
                try:
                    self._install(addr, await self.anode(addr).execute_command("CLUSTER", "SLOTS"))
                    return
                except Exception as exc:
                    errors.append(f"{addr[0]}:{addr[1]}: {exc}")
        finally:
            self._arefreshing = False
        self._no_map(errors)

    def _no_map(self, errors: list[str]) -> None:
        if not self._loaded:  # never had a map: nothing can be served
            raise StoreUnavailableError(redact("no Redis Cluster node answered: " + "; ".join(errors)))

    def lost(self, exc: Exception) -> Exception:
        """Mark the map stale after a failure (the next request reads it again) and translate ``exc``."""
        self._stale = True
        return translate_cluster_error(exc)

    def owner(self, slot: int) -> Addr:
        addr = self.slots[slot]
        if addr is None:
            self._stale = True
            raise StoreUnavailableError(f"Redis Cluster slot {slot} has no master (cluster incomplete or failing over)")
        return addr

    def group(self, prefix: str, keys: Sequence[str]) -> dict[Addr, list[int]]:
        """Indices of ``keys`` per node serving the slot of ``prefix + key``.

        The slot is CRC16(key) mod 16384 and the CRC runs on from the prefix's, so the prefix is
        hashed once per request (a hash tag only arises from a ``{`` in an entity key).
        """
        groups: dict[Addr, list[int]] = {}
        slots, base = self.slots, binascii.crc_hqx(prefix.encode(), 0)
        for i, key in enumerate(keys):
            slot = slot_of(prefix + key) if "{" in key else binascii.crc_hqx(key.encode(), base) & 0x3FFF
            addr = slots[slot] or self.owner(slot)
            group = groups.get(addr)
            if group is None:
                groups[addr] = [i]
            else:
                group.append(i)
        return groups

    # -- one read command per key, pipelined to every master at once ---------
    def read_each(self, prefix: str, keys: Sequence[str], command: str) -> list[Any]:
        """``command <prefix+key>`` for every key, in key order: each master gets its keys' commands in
        one write before any reply is read (the masters work at the same time); a key whose slot moved
        (MOVED/ASK) is asked again of its new owner."""
        full = [prefix + k for k in keys]
        self.refresh_if_due()
        groups = list(self.group(prefix, keys).items())
        replies: list[list[Any]] = []
        with checked_out(*(self.node(addr) for addr, _ in groups)) as conns:
            for conn, (_, idx) in zip(conns, groups, strict=True):
                conn.send_packed_command([b"".join([pack(command, full[i]) for i in idx])])
            for conn, (_, idx) in zip(conns, groups, strict=True):
                replies.append([reply_or_error(conn) for _ in idx])
        out: list[Any] = [None] * len(full)
        for (_, idx), values in zip(groups, replies, strict=True):
            for i, value in zip(idx, values, strict=True):
                if isinstance(value, rex.AskError):  # the slot moved (MOVED) or is moving (ASK)
                    value = self.call(slot_of(full[i]), command, full[i])
                elif isinstance(value, Exception):
                    raise refused(value)
                out[i] = value
        return out

    # -- one command to the owner of a slot, following redirections --------
    def call(self, slot: int, *args: Any) -> Any:
        if self.refresh_due():
            self.refresh()
        addr, asking = self.owner(slot), False
        for _ in range(MAX_REDIRECTS):
            client = self.node(addr)
            try:
                if not asking:
                    return client.execute_command(*args)
                pipe = client.pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.execute_command(*args)
                return pipe.execute()[1]
            except rex.MovedError as exc:
                addr, asking, self._stale = (exc.host, int(exc.port)), False, True
                self.slots[int(exc.slot_id)] = addr
            except rex.AskError as exc:
                addr, asking = (exc.host, int(exc.port)), True
            except rex.TryAgainError:
                time.sleep(0.02)
            except rex.NoScriptError:
                self.load_scripts(client)
        raise StoreUnavailableError(f"Redis Cluster slot {slot} kept moving (resharding); retry")

    async def acall(self, slot: int, *args: Any) -> Any:
        if self.refresh_due():
            await self.arefresh()
        addr, asking = self.owner(slot), False
        for _ in range(MAX_REDIRECTS):
            client = self.anode(addr)
            try:
                if not asking:
                    return await client.execute_command(*args)
                pipe = client.pipeline(transaction=False)
                pipe.execute_command("ASKING")
                pipe.execute_command(*args)
                return (await pipe.execute())[1]
            except rex.MovedError as exc:
                addr, asking, self._stale = (exc.host, int(exc.port)), False, True
                self.slots[int(exc.slot_id)] = addr
            except rex.AskError as exc:
                addr, asking = (exc.host, int(exc.port)), True
            except rex.TryAgainError:
                await asyncio.sleep(0.02)
            except rex.NoScriptError:
                for script in SCRIPTS.values():
                    await client.execute_command("SCRIPT", "LOAD", script)
        raise StoreUnavailableError(f"Redis Cluster slot {slot} kept moving (resharding); retry")

    @staticmethod
    def load_scripts(client: Any) -> None:
        for script in SCRIPTS.values():
            client.execute_command("SCRIPT", "LOAD", script)

    def refresh_if_due(self) -> None:
        """Read the slot map again when it is stale (or was never read)."""
        if self.refresh_due():
            self.refresh()

    async def arefresh_if_due(self) -> None:
        if self.refresh_due():
            await self.arefresh()

    def close(self) -> None:
        for client in [*self._nodes.values(), *self._bulk.values()]:
            client.close()
        self._nodes, self._bulk = {}, {}

    async def aclose(self) -> None:
        if self._aloop is asyncio.get_running_loop():
            for task in self._links.values():
                if task.done() and not task.cancelled() and task.exception() is None:
                    task.result().close()
            for client in self._anodes.values():
                await client.aclose()
        self._anodes, self._links, self._aloop = {}, {}, None
