"""The Redis online store: one key per (project, view, version, entity) holding a pre-encoded row."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from featurestore.dsl.names import check_identifier
from featurestore.errors import OnlineStoreError, redact
from featurestore.online.base import OnlineStore, StoreSettings, check_batch
from featurestore.online.redis_bulk import pack_put_newer, pack_set_absent, read_set_absent
from featurestore.online.redis_reads import LookupLink
from featurestore.online.redis_wire import checked_out, hiredis_connection_class, parse_newest, translate_error
from featurestore.online.scripts import (
    APPEND_EVENTS,
    APPEND_EVENTS_META,
    APPEND_LIVE,
    PUT_NEWER,
    events_only,
)
from featurestore.times import utc_datetime

__all__ = ["RedisOnlineStore"]

# Commands per network write when bulk loading: big enough to amortise round trips,
# small enough to keep memory flat and let other clients interleave.
_CHUNK = 5000
# Seconds a bulk write waits on Redis (a reply, a send) before calling the store unavailable:
# a chunk is milliseconds of work, but a loaded machine can stall Redis far past a lookup's timeout.
_BULK_TIMEOUT = 10.0
# Events per APPEND_EVENTS call: a rebuild reads every stored event of its entities, and a call
# must end well inside the socket timeout (0.5 s) on a busy server.
_EVENTS_CHUNK = 1000
# Tries of a push's guarded append when the version pointers moved under it (a version switch).
_LIVE_ATTEMPTS = 5


class RedisOnlineStore(OnlineStore):
    """Rows in Redis (``redis://``, ``rediss://`` for TLS, password and db in the URL).

    Layout, chosen so a lookup of any number of entities is one MGET:

    - ``fs:{project}:{view}:{version}:{entity key}`` -> ``[event_ts_us, v1, ..., vN, created_us]``
      (JSON bytes), with ``PXAT`` = event time + 2 x ttl, kept only if newer: a bulk write sets
      the entities without a row with pipelined ``SET NX`` and compares the others in a
      server-side script (one ``EVALSHA`` per chunk of rows); pushes all go through the script;
    - ``fs:{project}:@versions`` (hash) -> ``{view: version}``, the pointer readers follow;
    - ``fs:{project}:@pending`` (hash) -> ``{view: version}``, a version being materialized;
    - ``fs:{project}:@pushed:{view}:{version}`` (set) -> entity keys pushed to that version;
    - ``fs:{project}:@watermarks`` (hash) -> ``{view:version: ISO time}`` for incremental runs;
    - ``fs:{project}:@newest`` (hash) -> ``{view:version: ISO time}``, the newest event written (freshness);
    - aggregation views: ``fs:{project}:{view}:{version}:{entity key}`` (hash) -> ``{event identity: payload}``,
      appended by a server-side script and expiring with the newest event's longest window.
    """

    def __init__(
        self,
        url: str,
        project: str,
        *,
        timeout: float = 0.5,
        max_connections: int = 64,
    ) -> None:
        import redis

        self.url = url
        self.project = check_identifier(project, "project")
        self.timeout = timeout
        self._options: dict[str, Any] = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "max_connections": max_connections,
            "retry_on_timeout": False,
        }
        try:
            self._client: Any = redis.Redis.from_url(url, **self._options)
            # bulk writes (materialize) wait longer on a busy Redis than a lookup may
            bulk_timeout = max(timeout, _BULK_TIMEOUT)
            self._bulk: Any = redis.Redis.from_url(url, **{**self._options, "socket_timeout": bulk_timeout})
        except ValueError as exc:
            raise OnlineStoreError(redact(f"invalid Redis URL {url!r}: {exc}")) from None
        self._aclient: Any = None
        self._aloop: asyncio.AbstractEventLoop | None = None
        # Lookups (MGET) share one pipelined connection per event loop; TLS and Unix sockets use redis-py's client.
        self._reads = LookupLink(url, timeout) if LookupLink.supports(url) else None
        self._prefixes: dict[tuple[str, str], str] = {}
        self._versions_key = f"fs:{project}:@versions"
        self._pending_key = f"fs:{project}:@pending"
        self._watermarks_key = f"fs:{project}:@watermarks"
        self._newest_key = f"fs:{project}:@newest"
        self._scripts: dict[str, Any] = {}
        # the version pointers each view had at its last push here: the next push's guess (append_events_live)
        self._live: dict[str, tuple[str | None, str | None]] = {}

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisOnlineStore:
        return cls(settings.online_url, settings.project, timeout=settings.online_timeout)

    # -- keys -----------------------------------------------------------
    def prefix(self, view: str, version: str) -> str:
        """The key prefix of one view version (``fs:{project}:{view}:{version}:``)."""
        check_identifier(view, "feature view")
        if not version.isalnum():
            raise OnlineStoreError(f"invalid view version {version!r}")
        return f"fs:{self.project}:{view}:{version}:"

    def _async(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._aclient is None or self._aloop is not loop:
            import redis.asyncio as aredis

            options = dict(self._options)
            fast = hiredis_connection_class(self.url)
            if fast is not None:
                options["connection_class"] = fast
            self._aclient = aredis.Redis.from_url(self.url, **options)
            self._aloop = loop
        return self._aclient

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
        check_batch(keys, rows, expire_at_ms)
        if not keys:
            return 0
        if expire_at_ms is not None and min(expire_at_ms) <= 0:
            raise OnlineStoreError(f"write_rows {view!r}: expiry times must be positive Unix milliseconds")
        prefix = self.prefix(view, version)
        try:
            if pushed:
                pushed_set = self._pushed_key(view, version)
                return self._run_scripts(
                    [
                        pack_put_newer(
                            prefix,
                            keys[lo : lo + _CHUNK],
                            rows[lo : lo + _CHUNK],
                            None if expire_at_ms is None else expire_at_ms[lo : lo + _CHUNK],
                            pushed_set,
                        )
                        for lo in range(0, len(keys), _CHUNK)
                    ]
                )
            return self._write_absent_first([prefix + k for k in keys], rows, expire_at_ms)
        except Exception as exc:
            raise translate_error(exc) from exc

    def _write_absent_first(self, keys: list[str], rows: Sequence[bytes], expire_at_ms: Sequence[int] | None) -> int:
        """Write a bulk batch: ``SET NX`` where the entity has no row, the newest-wins script where it has one.

        Materializing a version writes mostly entities it does not hold yet; a pipelined
        ``SET key row NX PXAT t`` costs Redis half of a ``SET`` inside a script, and a
        row already there (pushed concurrently, or a rerun) is then compared by the script
        (``PUT_NEWER``). Both are atomic per row and newest wins whichever runs first, so the
        outcome is the script's alone. Chunks are sent one ahead of the replies read, so
        Python packs the next chunk while Redis executes this one; once most keys of a chunk
        exist (an incremental run, a rerun), the rest of the batch goes to the script directly.
        """
        with checked_out(self._bulk) as (conn,):
            n = len(keys)
            written, absent_first = 0, True
            existing: list[int] = []  # indices whose key held a row: compared by the script
            in_flight: list[tuple[int, int]] = []  # chunks sent, replies not read yet
            for lo in range(0, n, _CHUNK):
                if not absent_first:
                    existing.extend(range(lo, n))
                    break
                hi = min(lo + _CHUNK, n)
                conn.send_packed_command([pack_set_absent(keys, rows, expire_at_ms, lo, hi)], check_health=False)
                in_flight.append((lo, hi))
                if len(in_flight) > 1:
                    set_now, absent_first = read_set_absent(conn, *in_flight.pop(0), existing)
                    written += set_now
            for lo, hi in in_flight:
                written += read_set_absent(conn, lo, hi, existing)[0]
        if existing:
            payloads = [
                pack_put_newer(
                    "",
                    [keys[i] for i in part],
                    [rows[i] for i in part],
                    None if expire_at_ms is None else [expire_at_ms[i] for i in part],
                    None,
                )
                for part in (existing[lo : lo + _CHUNK] for lo in range(0, len(existing), _CHUNK))
            ]
            written += self._run_scripts(payloads, self._bulk)
        return written

    def _run_scripts(self, payloads: list[bytes], client: Any = None) -> int:
        """Send packed EVALSHA calls in one write, read their replies; load the script once if Redis lost it."""
        import redis.exceptions as rex

        with checked_out(client or self._client) as (conn,):
            written, missing = 0, []
            conn.send_packed_command(payloads)
            for i in range(len(payloads)):
                try:
                    reply = conn.read_response()
                except rex.NoScriptError:
                    missing.append(i)
                    continue
                except rex.ResponseError as exc:
                    raise OnlineStoreError(redact(f"Redis refused a write: {exc}")) from None
                written += int(reply)
            if missing:  # first use on this server (or after a restart): load it, send those again
                conn.send_command("SCRIPT", "LOAD", PUT_NEWER)
                conn.read_response()
                conn.send_packed_command([payloads[i] for i in missing])
                for _ in missing:
                    written += int(conn.read_response())
            return written

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
        prefix = self.prefix(view, version)
        script = self._script(APPEND_EVENTS)
        added, lo = 0, 0
        try:
            while lo < len(keys):
                # a batch of about _EVENTS_CHUNK events (whole entities: each is appended atomically)
                hi, size = lo, 0
                while hi < len(keys) and (hi == lo or size + len(events[hi]) <= _EVENTS_CHUNK):
                    size += len(events[hi])
                    hi += 1
                args: list[Any] = [hi - lo, horizon_us, 1 if replace else 0]
                for entity_events in events[lo:hi]:
                    args.append(len(entity_events))
                    for ident, payload in entity_events:
                        args.extend((ident, payload))
                added += int(script(keys=[prefix + k for k in keys[lo:hi]], args=args))
                lo = hi
        except Exception as exc:
            raise translate_error(exc) from exc
        return added

    def _script(self, source: str) -> Any:
        script = self._scripts.get(source)
        if script is None:  # EVALSHA, loading the script when the server lacks it
            script = self._scripts[source] = self._client.register_script(source)
        return script

    def append_events_live(
        self,
        view: str,
        targets: Callable[[str, str | None], Sequence[tuple[str, int]]],
        keys: Sequence[str],
        events: Sequence[Sequence[tuple[str, bytes]]],
        newest: datetime,
    ) -> tuple[str, dict[str, int]] | None:
        # One APPEND_LIVE call guarded by the pointers seen at the previous push (read once per
        # process and view): a push is one round trip; a guess gone stale costs one more.
        if len(keys) != len(events):
            raise OnlineStoreError("append_events_live: keys and events must have the same length")
        if sum(len(e) for e in events) > _EVENTS_CHUNK:
            return None  # the chunked append_events, pointers followed by the caller
        stamp = utc_datetime(newest)
        assert stamp is not None
        block: list[Any] = []
        for entity_events in events:
            block.append(len(entity_events))
            for ident, payload in entity_events:
                block.extend((ident, payload))
        live = self._live.get(view) or self.pointers(view)
        try:
            for _ in range(_LIVE_ATTEMPTS):
                current, pending = live
                if current is None:  # no version yet (or deleted): the caller sets one; read again next time
                    self._live.pop(view, None)
                    return None
                chosen = list(targets(current, pending))
                script_keys = [self._versions_key, self._pending_key, self._newest_key]
                args: list[Any] = [view, current, pending or "", stamp.isoformat(), len(chosen)]
                for version, horizon_us in chosen:
                    prefix = self.prefix(view, version)
                    script_keys.extend(prefix + k for k in keys)
                    args.extend((f"{view}:{version}", len(keys), horizon_us, *block))
                reply = self._script(APPEND_LIVE)(keys=script_keys, args=args)
                if int(reply[0]) == 1:
                    self._live[view] = live
                    return current, {v: int(n) for (v, _), n in zip(chosen, reply[1:], strict=True)}
                live = self._live[view] = (reply[1].decode() or None, reply[2].decode() or None)
        except Exception as exc:
            raise translate_error(exc) from exc
        return None

    def read_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        if not keys:
            return []
        prefix = self.prefix(view, version)
        try:
            if len(keys) == 1:  # the common lookup: one command, no pipeline object
                return [events_only(self._client.hvals(prefix + keys[0]))]
            pipe = self._client.pipeline(transaction=False)
            for k in keys:
                pipe.hvals(prefix + k)
            return [events_only(v) for v in pipe.execute()]
        except Exception as exc:
            raise translate_error(exc) from exc

    async def aread_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        if not keys:
            return []
        prefix = self.prefix(view, version)
        try:
            if len(keys) == 1:
                return [events_only(await self._async().hvals(prefix + keys[0]))]
            pipe = self._async().pipeline(transaction=False)
            for k in keys:
                pipe.hvals(prefix + k)
            return [events_only(v) for v in await pipe.execute()]
        except Exception as exc:
            raise translate_error(exc) from exc

    def scan_events(self, view: str, version: str) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        prefix = self.prefix(view, version)
        try:
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=prefix + "*", count=1000):
                batch.append(key)
                if len(batch) == 1000:
                    yield from self._event_items(prefix, batch)
                    batch = []
            yield from self._event_items(prefix, batch)
        except Exception as exc:
            raise translate_error(exc) from exc

    def _event_items(self, prefix: str, keys: list[bytes]) -> list[tuple[str, list[tuple[str, bytes]]]]:
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        out = []
        for key, fields in zip(keys, pipe.execute(), strict=True):
            items = [(f.decode(), v) for f, v in fields.items() if f.decode() != APPEND_EVENTS_META]
            if items:
                out.append((key.decode()[len(prefix) :], items))
        return out

    def _pushed_key(self, view: str, version: str) -> str:
        self.prefix(view, version)
        return f"fs:{self.project}:@pushed:{view}:{version}"

    def pushed_keys(self, view: str, version: str) -> list[str]:
        try:
            return sorted(m.decode() for m in self._client.sscan_iter(self._pushed_key(view, version), count=10_000))
        except Exception as exc:
            raise translate_error(exc) from exc

    def read_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self.prefix(view, version)
        try:
            return list(self._client.mget([prefix + k for k in keys]))
        except Exception as exc:
            raise translate_error(exc) from exc

    async def aread_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        prefix = self._prefixes.get((view, version))
        if prefix is None:  # checked once per view version, not on every lookup
            if len(self._prefixes) >= 1024:
                self._prefixes.clear()
            prefix = self._prefixes[(view, version)] = self.prefix(view, version)
        try:
            if self._reads is not None:
                return await self._reads.mget(list(map(prefix.__add__, keys)))
            return list(await self._async().mget([prefix + k for k in keys]))
        except Exception as exc:
            raise translate_error(exc) from exc

    # -- pointers and watermarks -----------------------------------------
    def pointers(self, view: str) -> tuple[str | None, str | None]:
        try:
            pipe = self._client.pipeline(transaction=True)  # MULTI/EXEC: both pointers as of one moment
            pipe.hget(self._versions_key, view)
            pipe.hget(self._pending_key, view)
            current, pending = pipe.execute()
        except Exception as exc:
            raise translate_error(exc) from exc
        cur = None if current is None else current.decode()
        pend = None if pending is None else pending.decode()
        return cur, (None if pend == cur else pend)

    def set_pending_version(self, view: str, version: str) -> None:
        self.prefix(view, version)
        try:
            self._client.hset(self._pending_key, view, version)
        except Exception as exc:
            raise translate_error(exc) from exc

    def current_version(self, view: str) -> str | None:
        try:
            value = self._client.hget(self._versions_key, view)
        except Exception as exc:
            raise translate_error(exc) from exc
        return None if value is None else value.decode()

    def current_versions(self) -> dict[str, str]:
        try:
            data = self._client.hgetall(self._versions_key)
        except Exception as exc:
            raise translate_error(exc) from exc
        return {k.decode(): v.decode() for k, v in data.items()}

    async def acurrent_versions(self) -> dict[str, str]:
        try:
            data = await self._async().hgetall(self._versions_key)
        except Exception as exc:
            raise translate_error(exc) from exc
        return {k.decode(): v.decode() for k, v in data.items()}

    def set_current_version(self, view: str, version: str, *, if_absent: bool = False) -> None:
        self.prefix(view, version)
        try:
            if if_absent:
                self._client.hsetnx(self._versions_key, view, version)
            else:
                self._client.hset(self._versions_key, view, version)
        except Exception as exc:
            raise translate_error(exc) from exc

    def watermark(self, view: str, version: str) -> datetime | None:
        try:
            value = self._client.hget(self._watermarks_key, f"{view}:{version}")
        except Exception as exc:
            raise translate_error(exc) from exc
        return None if value is None else utc_datetime(value.decode())

    def set_watermark(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        try:
            self._client.hset(self._watermarks_key, f"{view}:{version}", stamp.isoformat())
        except Exception as exc:
            raise translate_error(exc) from exc

    def newest_events(self) -> dict[tuple[str, str], datetime]:
        try:
            return parse_newest(self._client.hgetall(self._newest_key))
        except Exception as exc:
            raise translate_error(exc) from exc

    async def anewest_events(self) -> dict[tuple[str, str], datetime]:
        try:
            return parse_newest(await self._async().hgetall(self._newest_key))
        except Exception as exc:
            raise translate_error(exc) from exc

    def set_newest_event(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        field = f"{view}:{version}"
        try:
            old = self._client.hget(self._newest_key, field)
            if old is None or utc_datetime(old.decode()) < stamp:  # type: ignore[operator]
                self._client.hset(self._newest_key, field, stamp.isoformat())
        except Exception as exc:
            raise translate_error(exc) from exc

    def delete(self, view: str, version: str | None = None) -> int:
        try:
            if version is None:
                pattern = f"fs:{self.project}:{check_identifier(view, 'feature view')}:*"
                self._client.hdel(self._versions_key, view)
                self._client.hdel(self._pending_key, view)
                for pushed in self._client.scan_iter(match=f"fs:{self.project}:@pushed:{view}:*", count=10_000):
                    self._client.unlink(pushed)
                for meta in (self._watermarks_key, self._newest_key):
                    fields = [f for f in self._client.hkeys(meta) if f.decode().startswith(view + ":")]
                    if fields:
                        self._client.hdel(meta, *fields)
            else:
                pattern = self.prefix(view, version) + "*"
                self._client.unlink(self._pushed_key(view, version))
                self._client.hdel(self._watermarks_key, f"{view}:{version}")
                self._client.hdel(self._newest_key, f"{view}:{version}")
            removed = 0
            batch: list[bytes] = []
            for key in self._client.scan_iter(match=pattern, count=10_000):
                batch.append(key)
                if len(batch) >= 10_000:
                    removed += int(self._client.unlink(*batch))
                    batch = []
            if batch:
                removed += int(self._client.unlink(*batch))
            return removed
        except Exception as exc:
            raise translate_error(exc) from exc

    # -- lifecycle --------------------------------------------------------
    def ping(self) -> None:
        try:
            self._client.ping()
        except Exception as exc:
            raise translate_error(exc) from exc

    async def aping(self) -> None:
        try:
            await self._async().ping()
        except Exception as exc:
            raise translate_error(exc) from exc

    def close(self) -> None:
        self._client.close()
        self._bulk.close()

    async def aclose(self) -> None:
        if self._reads is not None:
            self._reads.close()
        if self._aclient is not None:
            await self._aclient.aclose()
            self._aclient = None
        self.close()

    def __repr__(self) -> str:
        return f"RedisOnlineStore(project={self.project!r})"
