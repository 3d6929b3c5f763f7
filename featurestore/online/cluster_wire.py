"""The Redis Cluster wire: URLs, slots, the per-node script, command packing, error translation, node links."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

import hiredis
import redis.exceptions as rex
from redis._parsers.base import BaseParser
from redis.crc import key_slot

from featurestore.errors import OnlineStoreError, StoreUnavailableError, redact
from featurestore.online.redis_wire import translate_error
from featurestore.online.scripts import PUT_NEWER

__all__ = [
    "Addr",
    "SLOTS",
    "CHUNK",
    "BULK_TIMEOUT",
    "REFRESH_EVERY",
    "MAX_REDIRECTS",
    "PUT_LOCAL",
    "PUT_LOCAL_SHA",
    "POINTERS",
    "SCRIPTS",
    "ClusterURL",
    "parse_cluster_url",
    "slot_of",
    "parse_slots",
    "pack",
    "pack_put_local",
    "pack_set_absent",
    "read_set_absent",
    "reply_or_error",
    "refused",
    "translate_cluster_error",
    "NodeLink",
    "ssl_context",
]

Addr = tuple[str, int]

SLOTS = 16384
CHUNK = 5000  # rows per script call, as in the single store
# Seconds a bulk write (materialize) waits on a node, as in the single store: a chunk is
# milliseconds of work, but a loaded machine can stall Redis far past a lookup's timeout.
BULK_TIMEOUT = 10.0
REFRESH_EVERY = 0.1  # seconds between two slot-map refreshes after errors
MAX_REDIRECTS = 5

# Scripts run on one node over keys of many slots: the keys travel in ARGV (declared KEYS must
# share one slot), `allow-cross-slot-keys` (Redis >= 7.0) lets the script touch them, and Redis
# still refuses any key this node does not serve (slot moved, or migrating and absent here).
# `pcall` turns that refusal into an index the client re-sends through the slot's owner, which
# answers MOVED/ASK like any single-slot command.

# ARGV: n, has_expiry (1/0), the n keys, the n rows, the n expiry times (Unix ms) when has_expiry.
# Returns {rows written, indices of keys not served here}. The comparison is scripts.PUT_NEWER's.
PUT_LOCAL = """#!lua flags=allow-cross-slot-keys
local n = tonumber(ARGV[1])
local has_exp = ARGV[2] == '1'
local written, moved = 0, {}
for i = 1, n do
  local key, new = ARGV[2 + i], ARGV[2 + n + i]
  local old = redis.pcall('GET', key)
  if type(old) == 'table' and old.err then
    moved[#moved + 1] = i
  else
    local put = true
    if old then
      local ots = tonumber(string.match(old, '^%[(%-?%d+)'))
      local nts = tonumber(string.match(new, '^%[(%-?%d+)'))
      if ots == nil or nts > ots then
        put = true
      elseif nts < ots then
        put = false
      else
        local oc = tonumber(string.match(old, ',(%-?%d+)%]$')) or 0
        local nc = tonumber(string.match(new, ',(%-?%d+)%]$')) or 0
        put = nc > oc
      end
    end
    if put then
      if has_exp then
        redis.call('SET', key, new, 'PXAT', ARGV[2 + 2 * n + i])
      else
        redis.call('SET', key, new)
      end
      written = written + 1
    end
  end
end
return {written, moved}
"""

# Both pointers of a view as of one moment (the two hashes share the metadata slot).
POINTERS = "return {redis.call('HGET', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}"

SCRIPTS = {hashlib.sha1(s.encode()).hexdigest(): s for s in (PUT_LOCAL, PUT_NEWER)}
PUT_LOCAL_SHA = hashlib.sha1(PUT_LOCAL.encode()).hexdigest()
URL_OPTIONS = {"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs", "ssl_check_hostname"}


@dataclass(frozen=True, repr=False)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL: seed nodes, credentials and TLS options."""

    seeds: list[Addr]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    options: dict[str, Any] = field(default_factory=dict)


def parse_cluster_url(url: str) -> ClusterURL:
    """``redis+cluster://[user:password@]host:port[,host:port...][?ssl_ca_certs=...]`` (``rediss+cluster`` for TLS)."""
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    where = f"Redis Cluster URL {redact(url)!r}"
    if not sep or scheme not in ("redis+cluster", "rediss+cluster"):
        raise OnlineStoreError(f"{where}: use redis+cluster://host:port[,host:port...] (rediss+cluster:// for TLS)")
    rest, _, query = rest.partition("?")
    userinfo, _, hosts = rest.rpartition("@")
    hosts, _, db = hosts.partition("/")
    if db not in ("", "0"):
        raise OnlineStoreError(f"{where}: a Redis Cluster has only database 0; remove /{db}")
    user, _, password = userinfo.partition(":")
    seeds = []
    for part in hosts.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise OnlineStoreError(f"{where}: seed node {part!r} is not host:port")
        seeds.append((host.strip("[]"), int(port)))
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in URL_OPTIONS:
            raise OnlineStoreError(f"{where}: unknown option {key!r}; use one of {sorted(URL_OPTIONS)}")
        options[key] = value.lower() in ("1", "true", "yes") if key == "ssl_check_hostname" else value
    return ClusterURL(
        seeds=seeds,
        username=unquote(user) or None,
        password=unquote(password) or None,
        tls=scheme == "rediss+cluster",
        options=options,
    )


def slot_of(key: str) -> int:
    return int(key_slot(key.encode()))


def parse_slots(source: Addr, reply: Any) -> tuple[list[Addr | None], list[Addr], list[Addr]]:
    """``CLUSTER SLOTS`` -> (slot -> master, the masters, every node); an empty host means ``source``'s."""
    slots: list[Addr | None] = [None] * SLOTS
    masters: dict[Addr, None] = {}
    known: dict[Addr, None] = {}
    for entry in reply:
        start, end, *nodes = entry
        addrs = []
        for node in nodes:
            host = node[0].decode() if isinstance(node[0], bytes) else str(node[0])
            addrs.append((source[0] if host in ("", "?") else host, int(node[1])))
        if not addrs:
            continue
        master = addrs[0]
        masters[master] = None
        known.update(dict.fromkeys(addrs))
        slots[int(start) : int(end) + 1] = [master] * (int(end) - int(start) + 1)
    return slots, list(masters), list(known)


def pack(*args: Any) -> bytes:
    """RESP for one command, packed by hiredis (C)."""
    return bytes(hiredis.pack_command(args))


def pack_put_local(chunk: list[int], keys: list[str], rows: Sequence[bytes], expire: Sequence[int] | None) -> bytes:
    args: list[Any] = ["EVALSHA", PUT_LOCAL_SHA, 0, len(chunk), 0 if expire is None else 1]
    args.extend(keys[i] for i in chunk)
    args.extend(rows[i] for i in chunk)
    if expire is not None:
        args.extend(expire[i] for i in chunk)
    return bytes(hiredis.pack_command(tuple(args)))


def reply_or_error(conn: Any) -> Any:
    """The next reply on ``conn``; an error reply (MOVED, ASK...) is returned rather than raised."""
    try:
        return conn.read_response()
    except rex.ResponseError as exc:
        return exc


def refused(exc: Exception) -> Exception:
    """A whole script call refused: the cluster is down or the node is loading (503), else a store error."""
    if isinstance(exc, rex.ClusterDownError | rex.TryAgainError | rex.BusyLoadingError) or "READONLY" in str(exc):
        return StoreUnavailableError(redact(f"Redis Cluster unavailable: {exc}"))
    return OnlineStoreError(redact(f"Redis Cluster refused a request: {exc}"))


def pack_set_absent(chunk: list[int], keys: list[str], rows: Sequence[bytes], expire: Sequence[int] | None) -> bytes:
    """RESP for ``SET key row NX [PXAT t]`` over the rows at ``chunk``, one write (hiredis packs in C)."""
    pack_command: Any = hiredis.pack_command  # its stub types the argument as a 1-tuple
    if expire is None:
        return b"".join([pack_command(("SET", keys[i], rows[i], "NX")) for i in chunk])
    return b"".join([pack_command(("SET", keys[i], rows[i], "NX", "PXAT", expire[i])) for i in chunk])


def read_set_absent(conn: Any, chunk: list[int], existing: list[int], moved: list[int]) -> tuple[int, bool]:
    """Read the replies of one ``SET NX`` chunk: (rows set, whether most keys were absent).

    An index whose key held a row goes to ``existing`` (for the newest-wins script), one whose
    slot this node does not serve (MOVED/ASK/TRYAGAIN) to ``moved``; any other refusal is raised.
    """
    held, written = len(existing), 0
    for i in chunk:
        reply = reply_or_error(conn)
        if reply is None:
            existing.append(i)
        elif isinstance(reply, rex.AskError | rex.TryAgainError):  # MovedError is an AskError
            moved.append(i)
        elif isinstance(reply, Exception):
            raise refused(reply)
        else:
            written += 1
    return written, 2 * (len(existing) - held) <= len(chunk)


def translate_cluster_error(exc: Exception) -> Exception:
    if isinstance(exc, OnlineStoreError):
        return exc
    if isinstance(exc, rex.ClusterDownError | rex.TryAgainError | rex.AskError):
        return StoreUnavailableError(redact(f"Redis Cluster unavailable: {exc}"))
    if isinstance(exc, rex.ResponseError) and "cluster is down" in str(exc).lower():
        return StoreUnavailableError(redact(f"Redis Cluster unavailable: {exc}"))
    return translate_error(exc)


class NodeLink(asyncio.Protocol):
    """One pipelined connection to a node: requests written as they come, replies matched in order."""

    def __init__(self) -> None:
        self._reader = hiredis.Reader()
        self._waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any]]] = collections.deque()
        self._transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            future, expected, replies = self._waiting[0]
            if isinstance(reply, hiredis.ReplyError):
                reply = BaseParser.parse_error(str(reply))
            replies.append(reply)
            if len(replies) == expected:
                self._waiting.popleft()
                if not future.done():  # a cancelled lookup's replies are dropped, the order kept
                    future.set_result(replies)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        while self._waiting:
            future, _, _ = self._waiting.popleft()
            if not future.done():
                future.set_exception(rex.ConnectionError(f"connection to a Redis Cluster node lost: {exc}"))

    def send(self, payload: bytes, commands: int = 1) -> asyncio.Future[list[Any]]:
        """Write packed commands; the future gets their ``commands`` replies (error replies as exceptions)."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        if self.closed or self._transport is None:
            future.set_exception(rex.ConnectionError("connection to a Redis Cluster node closed"))
            return future
        self._waiting.append((future, commands, []))
        self._transport.write(payload)
        return future

    async def request(self, payload: bytes) -> Any:
        return (await self.send(payload))[0]

    def close(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.abort()  # connection_lost fails whatever still waits


def ssl_context(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context of ``rediss+cluster://`` links, from the URL's ``ssl_*`` options."""
    context = ssl.create_default_context(cafile=options.get("ssl_ca_certs"))
    if options.get("ssl_certfile"):
        context.load_cert_chain(options["ssl_certfile"], options.get("ssl_keyfile"))
    context.check_hostname = bool(options.get("ssl_check_hostname", False))
    reqs = str(options.get("ssl_cert_reqs", "required")).lower()
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(reqs, ssl.CERT_REQUIRED)
    return context
