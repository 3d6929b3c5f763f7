"""Served-feature logging: a sampled share of lookups, kept as the stored rows read and spooled off the request path."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import operator
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from featurestore.server.served_lines import append_lines, first_row_bytes, serialized
from featurestore.serving.lookup import LookupPlan

__all__ = [
    "ServedLog",
    "SERVED_DIR",
    "SPOOL_DIR",
    "served_dir",
    "served_files",
    "spool_dir",
    "status_column",
    "value_column",
]

SERVED_DIR = "_served"
# JSON-lines files waiting to become Parquet; a dot name so it is never taken for a service or view.
SPOOL_DIR = ".spool"
# Spool format written by this version (the descriptor line's "format"); the converter refuses others.
SPOOL_FORMAT = 4
# Row bytes held in memory at most; past it lookups are dropped and counted, never delayed.
MAX_QUEUED_BYTES = 64 * 1024 * 1024
# Spool bytes (sealed and open files of every worker) at most, the setting served_spool_max_bytes:
# while the spool holds more (lookups logged faster than the converter turns them into Parquet, as
# on a server saturated for long) lookups are dropped and counted, never delayed.
MAX_SPOOL_BYTES = 4 * 1024**3
# On a server, the event loop appends the queue to the spool this long after the first lookup queued
# (the responses have gone out by then), with one writev per spool file. From the writer thread the
# same spooling cost 30-50 us per 100-entity lookup of that thread's CPU, and as much again in the
# loop's thread (taking the GIL back, cache misses); on the loop it costs 18-30 us in all. A file
# append has a fixed cost (~30 us on ext4, its journal): 10 ms of lookups share one.
LOOP_FLUSH_SECONDS = 0.01
# A disk throttling its writers moves the spooling from the loop to the writer thread for
# THREAD_SECONDS: one spool write on the loop blocked past STALL_SECONDS, or SLOW_WRITES of them
# past SLOW_WRITE_SECONDS within SLOW_WINDOW_SECONDS. Blocked: the write's wall time less the time
# its thread ran or waited for a core (Linux's per-thread schedstat), so a write preempted on a
# busy machine (0.1 % of writes took 6-8 ms on 2 loaded cores, the median 0.13 ms; on a core
# shared by three loaded servers, 5-9 ms several times a minute) is not taken for a slow disk.
# Where schedstat is missing, the wall time is used.
STALL_SECONDS = 0.05
SLOW_WRITE_SECONDS = 0.005
SLOW_WRITES = 3
SLOW_WINDOW_SECONDS = 10.0
THREAD_SECONDS = 60.0
# The writer thread spools what the loop left (and everything when no loop runs the log) this often.
FLUSH_SECONDS = 0.05
# The writer thread lists the spool folder against max_spool_bytes at most this often.
SIZE_CHECK_SECONDS = 0.5
# Spool files are sealed this often; the converter starts once no lookup was logged for QUIET_SECONDS
# (parsing costs nearly as much CPU as the lookups did, and even at idle priority it competes with
# them for caches and memory: it waits for a lull), or when the sealed spool passes convert_bytes
# whatever the load: by default half of max_spool_bytes, which leaves the other half for the lookups
# logged while it converts.
SEAL_SECONDS = 30.0
QUIET_SECONDS = 10.0

logger = logging.getLogger("featurestore.served_log")

# One queued lookup as the request left it: request time (us), service, plan, entities, each view's
# rows as one text (rows_text; None: not made), the stored rows (None: every text made, the rows not
# kept), each view's layout, entity rows. Held by reference: serialized in the flush.
_Item = tuple[
    int,
    str | None,
    LookupPlan,
    dict[str, list[Any]],
    Sequence[bytes | None],
    Sequence[Sequence[bytes | None]] | None,
    Sequence[dict[str, int]],
    int,
]


def served_dir(offline_root: Path, target: str | None = None) -> Path:
    """``<offline_root>/_served`` or the folder of one service or view."""
    base = Path(offline_root) / SERVED_DIR
    return base if target is None else base / target


def spool_dir(offline_root: Path) -> Path:
    """``<offline_root>/_served/.spool``: the JSON-lines files of logged lookups the converter turns into Parquet."""
    return served_dir(offline_root) / SPOOL_DIR


def served_files(offline_root: Path, target: str, since: str | None = None) -> list[Path]:
    """The Parquet files logged for a service or view, from the day ``since`` (YYYY-MM-DD) on."""
    base = served_dir(offline_root, target)
    files = sorted(base.glob("date=*/part-*.parquet"))
    if since:
        files = [f for f in files if f.parent.name.removeprefix("date=") >= since[:10]]
    return files


def value_column(view: str, feature: str) -> str:
    """A feature's column in the served log (always ``view__feature``, whatever the request asked)."""
    return f"{view}__{feature}"


def status_column(view: str, feature: str) -> str:
    return f"{view}__{feature}__status"


class ServedLog:
    """Log sampled lookups under ``<offline_root>/_served/<target>/date=.../`` without slowing them down.

    ``record`` is the only call on the request path: a sampling draw and an append of references (the
    request's entities, the stored rows the lookup read) under an uncontended lock, the same few Python
    steps whatever the number of entities. The flush serializes them, lookup after lookup while its
    code and data are in the caches: the entity values as JSON and one ``bytes.join`` per view of the
    stored rows (C code, no decoding). The response is not logged: it repeats each view's event times
    and statuses per feature (~108 KB for 100 entities x 20 features against ~27 KB of stored rows);
    the converter recomputes the statuses from the rows, the lookup's request time and the view's ttl,
    as the lookup did. The queue is appended to spool files under
    ``_served/.spool`` (a header line per lookup, then its stored rows one per line) with one ``writev``
    per file: one file per kind of lookup, whose first line describes it (views, features and their
    positions in the stored rows, ttls, entity key names). On a server (``start`` called on an event
    loop) the loop does it ``loop_flush_seconds`` after the first lookup queued, once the responses
    have gone out; slow writes (a throttling disk, see ``STALL_SECONDS``) or a failing one hand the
    spooling to a writer thread for ``THREAD_SECONDS``. The writer thread also spools, every
    ``flush_seconds``, whatever the loop has not (all of it without a loop). Files are sealed every
    ``seal_seconds``; a converter process at idle priority (:mod:`featurestore.server.served_spool`)
    turns sealed files into Parquet with polars once no lookup was logged for ``quiet_seconds``, or
    when the sealed spool passes ``convert_bytes``. ``close`` (the app's shutdown) spools and converts
    everything left: a clean shutdown loses nothing. Past ``max_bytes`` of queued rows (estimated from
    the bytes per entity row the last spooling wrote) further lookups are dropped and counted
    (``dropped``, on /metrics), never delayed. The target is the feature
    service, or each view of a plain feature list.
    """

    def __init__(
        self,
        offline_root: Path,
        sample_rate: float,
        *,
        max_bytes: int = MAX_QUEUED_BYTES,
        max_spool_bytes: int = MAX_SPOOL_BYTES,
        flush_seconds: float = FLUSH_SECONDS,
        loop_flush_seconds: float = LOOP_FLUSH_SECONDS,
        seal_seconds: float = SEAL_SECONDS,
        quiet_seconds: float = QUIET_SECONDS,
        convert_bytes: int | None = None,
        spool_place: Any = None,
    ) -> None:
        self.offline_root = Path(offline_root)
        self.root = served_dir(offline_root)
        self.spool = spool_dir(offline_root)
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.max_spool_bytes = max_spool_bytes
        self.flush_seconds = flush_seconds
        self.loop_flush_seconds = loop_flush_seconds
        self.seal_seconds = seal_seconds
        self.quiet_seconds = quiet_seconds
        self.convert_bytes = max_spool_bytes // 2 if convert_bytes is None else convert_bytes
        self.spool_place = spool_place  # a SpoolPlace; None: on disk, not placed (tests, tools)
        self.dropped = 0  # entity rows not logged: the queue was full, or a spool write failed
        self.spooled = 0  # entity rows appended to the spool
        self.logged = 0  # entity rows converted to Parquet by this process (shutdown and explicit flushes)
        self._items: list[_Item] = []
        self._held = 0  # entity rows queued
        self._row_bytes = 0  # spool bytes per entity row, as the last spooling found (0: none yet)
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._descriptors: dict[tuple[Any, ...], tuple[LookupPlan, tuple[Any, ...], bytes]] = {}
        self._open: dict[bytes, tuple[Path, int]] = {}  # descriptor line -> its open spool file and fd
        self._sealed_bytes = 0
        self._seq = 0
        self._converter: subprocess.Popen[bytes] | None = None
        self._exported: tuple[Any, Any, Any] | None = None
        self._reported = [0, 0]  # dropped and spooled rows already added to the exported counters
        self._peak_bytes = 0  # the most bytes a spooling found queued since the last report
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop that spools (start on a loop)
        self._flush_due = False  # a loop flush is scheduled (touched on the loop's thread only)
        self._thread_until = 0.0  # monotonic time until which the writer thread spools instead of the loop
        self._last_spooled = 0.0  # monotonic time of the last lookup spooled, by the loop or the thread
        self._slow_writes: collections.deque[float] = collections.deque(maxlen=SLOW_WRITES)
        self._spool_full = False  # the spool holds max_spool_bytes: lookups are dropped (checked each pass)
        self._schedstat: int | None = None  # the loop thread's /proc schedstat, opened at its first flush
        self._schedstat_failed = False

    def record(
        self,
        service: str | None,
        plan: LookupPlan,
        entities: dict[str, list[Any]],
        rows: Sequence[Sequence[bytes | None]],
        layouts: Sequence[dict[str, int]],
        t_us: int | None = None,
        texts: Sequence[bytes | None] | None = None,
    ) -> None:
        """Queue one answered lookup (if sampled): its checked ``entities``, per view of ``plan`` the stored
        rows it read (None: not found) and the layout they were read with (feature -> position), and the
        request time the lookup judged the rows' age by (``t_us``, microseconds; default now). ``texts``:
        each view's rows as the assembly joined them (:func:`~featurestore.serving.lookup.rows_text`);
        where every view has one, only they are kept and the rows are freed with the request. What is
        kept is held by reference until the flush: it may not change after the call.

        Example (what ``/get-online-features`` does after answering)::

            rows, layouts = await aread_views(store, state, plan, entities, n, versions, layout, t_us)
            texts = [rows_text(r) for r in rows]
            body, tally = assemble_json(plan, entities, n, rows, layouts, t_us, texts)
            log.record(service, plan, entities, rows, layouts, t_us, texts)
        """
        if self.sample_rate < 1.0 and random.random() >= self.sample_rate:
            return
        n = len(rows[0]) if rows else 0
        if not n:
            return
        if t_us is None:
            t_us = time.time_ns() // 1000
        kept: Sequence[Sequence[bytes | None]] | None = rows  # the rows, for the views without a text
        if texts is None:
            texts = [None] * len(rows)
        elif None not in texts:
            kept = None
        with self._lock:
            if not self._row_bytes:  # nothing spooled yet: this lookup's own size
                self._row_bytes = first_row_bytes(entities, texts, rows, n)
            if self._spool_full or (self._held + n) * self._row_bytes > self.max_bytes:
                self.dropped += n
                return
            self._items.append((t_us, service, plan, entities, texts, kept, layouts, n))
            self._held += n
        if self._loop is not None and not self._flush_due:
            self._flush_due = True
            self._loop.call_later(self.loop_flush_seconds, self._flush_on_loop)

    def _flush_on_loop(self) -> None:
        """Spool the queue from the event loop, unless the writer thread has it (busy, or a slow disk)."""
        self._flush_due = False
        if time.monotonic() < self._thread_until or not self._io_lock.acquire(blocking=False):
            return  # the writer thread takes the queue on its next pass
        sched = self._sched_clock()
        start = time.perf_counter()
        try:
            self._spool_queue()
        except Exception:  # a full disk: counted as dropped (in _spool); the thread takes over
            logger.exception("served-feature log: writing the spool failed")
            took, sched = float("inf"), None
        else:
            took = time.perf_counter() - start
        finally:
            self._io_lock.release()
        if took > SLOW_WRITE_SECONDS and sched is not None:
            took -= (self._sched_clock() or sched) - sched  # blocked: not running, nor waiting for a core
        if took <= SLOW_WRITE_SECONDS:
            return
        now = time.monotonic()
        self._slow_writes.append(now)
        slow = self._slow_writes
        if took > STALL_SECONDS or (len(slow) == SLOW_WRITES and now - slow[0] <= SLOW_WINDOW_SECONDS):
            self._thread_until = now + THREAD_SECONDS
            slow.clear()
            logger.warning(
                "served-feature log: spool writes are slow (the last took %.0f ms); "
                "the writer thread spools for the next %.0f s",
                1000 * took,
                THREAD_SECONDS,
            )

    def _sched_clock(self) -> float | None:
        """Seconds this thread has run or waited for a core (Linux's /proc schedstat), or None where unknown."""
        fd = self._schedstat
        if fd is None:
            if self._schedstat_failed:
                return None
            try:  # the loop's thread, opened once by it and read with pread at each flush
                fd = self._schedstat = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
            except (OSError, AttributeError):
                self._schedstat_failed = True
                return None
        try:
            running, waiting, *_ = os.pread(fd, 128, 0).split()
            return (int(running) + int(waiting)) / 1e9
        except (OSError, ValueError):
            self._schedstat_failed = True
            return None

    @property
    def queued_bytes(self) -> int:
        """The queued lookups' spool bytes, estimated (entity rows x bytes per row)."""
        return self._held * self._row_bytes

    def export(self, dropped: Any, spooled: Any, queued: Any) -> None:
        """Report ``dropped`` and ``spooled`` rows and the queued bytes through these prometheus metrics
        (two counters and a gauge), updated by the writer on each pass, never on the request path: with
        several workers, prometheus-client's multiprocess mode sums them over the workers."""
        self._exported = (dropped, spooled, queued)

    def _report(self) -> None:
        """Add the rows dropped and spooled since the last pass to the exported counters, and set the
        gauge to the most bytes a spooling found queued since (the writer thread, each pass)."""
        peak, self._peak_bytes = self._peak_bytes, 0
        if self._exported is None:
            return
        dropped, spooled, queued = self._exported
        now = (self.dropped, self.spooled)
        for counter, total, seen in zip((dropped, spooled), now, self._reported, strict=True):
            if total > seen:
                counter.inc(total - seen)
        self._reported = list(now)
        queued.set(peak)

    def start(self) -> None:
        """Start the background writer (it converts a spool left by a crashed or killed server at the first lull)."""
        from featurestore.server.served_spool import place_spool, sealed_files

        if self.spool_place is not None:
            place_spool(self.offline_root, self.spool_place)
        self._sealed_bytes = sum(p.stat().st_size for p in sealed_files(self.offline_root))
        try:
            self._loop = asyncio.get_running_loop()  # a server: its loop spools
        except RuntimeError:
            self._loop = None  # no loop (a tool, a test): the writer thread spools
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="featurestore-served-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the writer, then spool and convert everything still held (a clean shutdown loses nothing)."""
        self._loop = None
        if self._schedstat is not None:
            os.close(self._schedstat)
            self._schedstat = None
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._converter is not None:
            self._converter.wait()
            self._converter = None
        self.flush()
        if self.spool_place is not None:
            from featurestore.server.served_spool import release_spool

            release_spool(self.offline_root)

    def flush(self) -> int:
        """Spool the queue, seal the open files and convert every sealed file now; return the rows converted."""
        from featurestore.server.served_spool import convert_spool

        with self._io_lock:
            try:
                self._spool_queue()
            finally:
                self._report()
            self._seal()
        written = convert_spool(self.offline_root, wait=True)
        self._sealed_bytes = 0
        self.logged += written
        return written

    def _run(self) -> None:
        last_seal = last_size_check = self._last_spooled = time.monotonic()
        while not self._stop.wait(self._pass_seconds()):
            now = time.monotonic()
            try:
                if now - last_size_check >= SIZE_CHECK_SECONDS:  # a listing: not under the loop's I/O lock
                    self._check_spool_size()
                    last_size_check = now
                with self._io_lock:
                    try:
                        self._spool_queue()
                    finally:
                        self._report()
                    last_item = self._last_spooled  # by this thread or the loop
                    if now - last_seal >= self.seal_seconds or (self._open and now - last_item >= self.quiet_seconds):
                        self._seal()
                        last_seal = now
                if self._sealed_bytes and (
                    now - last_item >= self.quiet_seconds or self._sealed_bytes >= self.convert_bytes
                ):
                    self._start_converter()
            except Exception:  # a full disk must not kill the writer: count (in _spool_queue), log, go on
                logger.exception("served-feature log: writing the spool failed")

    def _check_spool_size(self) -> None:
        """Drop lookups while the spool folder holds ``max_spool_bytes`` or more (every worker's files)."""
        size = 0
        with contextlib.suppress(OSError):
            for entry in os.scandir(self.spool):
                if entry.name.startswith("spool-"):
                    with contextlib.suppress(OSError):
                        size += entry.stat().st_size
        full = size >= self.max_spool_bytes
        if full != self._spool_full:
            self._spool_full = full
            if full:
                logger.warning(
                    "served-feature log: the spool holds %d MB (served_spool_max_bytes): lookups are not "
                    "logged (counted as dropped) until the converter catches up",
                    size // 2**20,
                )
            else:
                logger.info("served-feature log: the spool is below served_spool_max_bytes again: logging resumes")

    def _pass_seconds(self) -> float:
        """How long the writer thread sleeps between passes: ``flush_seconds`` when it spools, 10x that
        when the loop does (the thread then seals files, starts the converter and reports counters)."""
        if self._loop is None or time.monotonic() < self._thread_until:
            return self.flush_seconds
        return 10 * self.flush_seconds

    def _spool_queue(self) -> int:
        """Append the queued lookups to the open spool files; return how many were written.

        A lookup is a header line ``{"n":<entities>,"t":<request time, us>,"k":[<values of each entity
        key>]}`` then each view's stored rows, one per line (``null``: not found), each but the last
        ending with a comma: the text the assembly decoded, handed to ``writev`` as it is (not copied again).
        """
        with self._lock:
            items, self._items, self._held = self._items, [], 0
        return self._spool(items)

    def _spool(self, items: list[_Item]) -> int:
        """Write ``items`` with one ``writev`` per spool file; count their rows spooled, or dropped on an error."""
        if not items:
            return 0
        self._last_spooled = time.monotonic()
        batches: dict[bytes, list[Any]] = {}
        counts: dict[bytes, int] = {}
        last: tuple[Any, ...] = ()
        desc = b""
        size = rows_in = 0
        for stamp, service, plan, entities, texts, rows, layouts, n in items:
            try:
                keys, joined = serialized(entities, texts, rows)
            except TypeError:  # a key orjson cannot write or a row not bytes (a caller's bug): this lookup only
                logger.exception("served-feature log: a lookup could not be serialized; it is not logged")
                with self._lock:
                    self.dropped += n
                continue
            names = tuple(entities)
            if (plan, service, names, layouts) != last:  # most passes hold one kind of lookup
                last = (plan, service, names, layouts)
                desc = self._descriptor(service, plan, names, layouts)
                if desc not in batches:
                    batches[desc], counts[desc] = [], 0
            head = b'{"n":%d,"t":%d,"k":%b}\n' % (n, stamp, keys)
            parts = batches[desc]
            parts.append(head)
            for line in joined:
                parts += (line, b"\n")
            size += len(head) + len(joined) + sum(map(len, joined))
            rows_in += n
            counts[desc] += n
        if rows_in:
            self._row_bytes = -(-size // rows_in)
        if size > self._peak_bytes:
            self._peak_bytes = size
        failed: OSError | None = None
        for desc, parts in batches.items():
            try:
                opened = self._open.get(desc)
                if opened is None:
                    opened = self._open_spool(desc)
                    parts.insert(0, desc + b"\n")
                append_lines(opened[1], parts)
            except OSError as exc:  # a full disk: this file may end in a torn lookup, so it is sealed as it is
                failed = exc
                with self._lock:
                    self.dropped += counts[desc]
                self._seal_one(desc)
                continue
            self.spooled += counts[desc]
        if failed is not None:
            raise failed
        return len(items)

    def _open_spool(self, desc: bytes) -> tuple[Path, int]:
        self._seq += 1
        path = self.spool / f"spool-{os.getpid()}-{time.time_ns()}-{self._seq}.open"
        for attempt in (1, 2):
            # resolve(): a memory spool's link may point to a folder gone with a reboot or another
            # worker's clean shutdown (an empty folder is removed then): made again, once.
            self.spool.resolve().mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                break
            except FileNotFoundError:
                if attempt == 2:
                    raise
        self._open[desc] = (path, fd)
        return path, fd

    def _seal(self) -> None:
        """Hand the open spool files to the converter (``.open`` -> ``.jsonl``)."""
        for desc in list(self._open):
            self._seal_one(desc)

    def _seal_one(self, desc: bytes) -> None:
        opened = self._open.pop(desc, None)
        if opened is None:
            return
        path, fd = opened
        os.close(fd)
        if path.exists():
            self._sealed_bytes += path.stat().st_size
            path.replace(path.with_suffix(".jsonl"))

    def _start_converter(self) -> None:
        """Convert sealed spool files in a child process at idle priority (off this process's GIL and cores)."""
        if self._converter is not None and self._converter.poll() is None:
            return  # still busy: it lists the folder again before it exits
        self._sealed_bytes = 0
        self._converter = subprocess.Popen(
            [sys.executable, "-m", "featurestore.server.served_spool", str(self.offline_root)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )

    def _descriptor(
        self, service: str | None, plan: LookupPlan, names: tuple[str, ...], layouts: Sequence[dict[str, int]]
    ) -> bytes:
        """What the converter needs to read a kind of lookup's lines: the service, the entity key names in
        the request's order and, per view, its features with their positions in the stored rows and its ttl."""
        cache_key = (id(plan), service, names, *map(id, layouts))
        hit = self._descriptors.get(cache_key)
        if hit is not None and hit[0] is plan and all(map(operator.is_, hit[1], layouts)):
            return hit[2]
        views = [
            [v.name, v.features, v.join_keys, v.ttl_us, [layout.get(f) for f in v.features]]
            for v, layout in zip(plan.views, layouts, strict=True)
        ]
        desc = orjson.dumps({"format": SPOOL_FORMAT, "s": service, "k": list(names), "v": views})
        if len(self._descriptors) >= 4096:
            self._descriptors.clear()
        # The plan and layouts are kept alive with their ids, so an id is never reused while cached.
        self._descriptors[cache_key] = (plan, tuple(layouts), desc)
        return desc
