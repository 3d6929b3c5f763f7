"""The Redis store's lookups: every concurrent MGET over one pipelined connection per event loop, parsed by hiredis."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.exceptions as rex

from featurestore.online.cluster_wire import NodeLink, pack

__all__ = ["LookupLink"]


class LookupLink:
    """One connection carrying the MGETs of every concurrent lookup, written as they come, replies matched in order.

    redis-py's asyncio client costs a lookup a pool checkout and release (each under a lock),
    a retry wrapper, timeout tasks and observability hooks, more CPU than the rest of a
    one-entity lookup. Redis answers a connection's commands in order, so concurrent lookups
    can share one: a lookup packs its MGET (hiredis, C), writes it and awaits its reply, which
    the link's ``data_received`` parses in C and hands over. A link silent for ``timeout``
    seconds is closed (every lookup waiting on it fails, the next one opens a new link); so is
    one the server drops. For ``redis://`` URLs (TCP, optional password and db); the store keeps
    redis-py's client for TLS (:meth:`supports`).
    """

    def __init__(self, url: str, timeout: float) -> None:
        from redis.connection import parse_url

        options = parse_url(url)
        self.host: str = options.get("host", "localhost")
        self.port = int(options.get("port", 6379))
        self.db = int(options.get("db", 0))
        self.username: str | None = options.get("username")
        self.password: str | None = options.get("password")
        self.timeout = timeout
        self._opening: asyncio.Future[NodeLink] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._silent: NodeLink | None = None  # the last link closed for silence

    @staticmethod
    def supports(url: str) -> bool:
        """Whether a lookup link can serve this URL (plain TCP)."""
        return url.startswith("redis://")

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        """The stored values of ``keys`` (None where absent); connection problems raise redis-py's errors."""
        link = await self._link()
        future = link.send(pack("MGET", *keys))
        # A timer, not asyncio.timeout: the same deadline for a third of the CPU.
        timer = self._loop.call_later(self.timeout, self._expire, link, future)  # type: ignore[union-attr]
        try:
            (reply,) = await future
        except rex.ConnectionError:
            if self._silent is link:
                raise rex.TimeoutError(f"Redis at {self.host}:{self.port} silent for {self.timeout} s") from None
            raise rex.ConnectionError(f"connection to Redis at {self.host}:{self.port} lost") from None
        finally:
            timer.cancel()
        if isinstance(reply, Exception):
            raise reply
        return reply  # type: ignore[no-any-return]

    def _expire(self, link: NodeLink, future: asyncio.Future[list[Any]]) -> None:
        if not future.done():
            # Its replies can no longer be matched: fail everything waiting; the next lookup opens a new link.
            self._silent = link
            link.close()

    async def _link(self) -> NodeLink:
        loop = asyncio.get_running_loop()
        opening = self._opening
        if opening is not None and self._loop is loop and opening.done():
            if not opening.cancelled() and opening.exception() is None and not opening.result().closed:
                return opening.result()  # the usual case: an open link on this loop
            opening = None
        if opening is None or self._loop is not loop:
            # One opening shared by every lookup that arrives meanwhile (a new loop, a lost link).
            self._loop = loop
            opening = self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(opening)

    async def _open(self) -> NodeLink:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            _, link = await loop.create_connection(NodeLink, self.host, self.port)
            setup: list[Any] = []
            if self.password is not None:
                setup.append(("AUTH", self.username, self.password) if self.username else ("AUTH", self.password))
            if self.db:
                setup.append(("SELECT", self.db))
            for command in setup:
                reply = await link.request(pack(*command))
                if isinstance(reply, Exception):
                    link.close()
                    raise reply
        return link

    def close(self) -> None:
        """Close the link (lookups after this open a new one)."""
        opening, self._opening = self._opening, None
        if opening is not None and opening.done() and not opening.cancelled() and opening.exception() is None:
            opening.result().close()
