"""The embedded online store: one SQLite file (WAL) shared safely by the server and materialize jobs."""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from featurestore.dsl.names import check_identifier
from featurestore.errors import OnlineStoreError, StoreUnavailableError
from featurestore.online.base import OnlineStore, StoreSettings, check_batch
from featurestore.online.codec import event_time_us, row_stamp
from featurestore.online.events import superseded
from featurestore.times import utc_datetime

__all__ = ["SqliteOnlineStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS online_rows (
    project TEXT NOT NULL, view TEXT NOT NULL, version TEXT NOT NULL, entity TEXT NOT NULL,
    row BLOB NOT NULL, expire_at_ms INTEGER, event_us INTEGER, created_us INTEGER,
    PRIMARY KEY (project, view, version, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_pushed (
    project TEXT NOT NULL, view TEXT NOT NULL, version TEXT NOT NULL, entity TEXT NOT NULL,
    PRIMARY KEY (project, view, version, entity)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_events (
    project TEXT NOT NULL, view TEXT NOT NULL, version TEXT NOT NULL, entity TEXT NOT NULL,
    ident TEXT NOT NULL, event_us INTEGER NOT NULL, payload BLOB NOT NULL, expire_at_ms INTEGER NOT NULL,
    PRIMARY KEY (project, view, version, entity, ident)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS online_meta (
    project TEXT NOT NULL, view TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (project, view, name)
) WITHOUT ROWID;
"""

# SQLite caps the number of bound parameters; lookups beyond this are split.
_MAX_PARAMS = 900

# Newest wins (codec.newer), decided by SQLite inside the write itself: the stored row is
# replaced only by a greater (event time, created time), or when it has expired (or predates
# these columns: NULL).
_UPSERT = """
INSERT INTO online_rows (project, view, version, entity, row, expire_at_ms, event_us, created_us)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (project, view, version, entity) DO UPDATE SET
    row = excluded.row, expire_at_ms = excluded.expire_at_ms,
    event_us = excluded.event_us, created_us = excluded.created_us
WHERE online_rows.event_us IS NULL
   OR (excluded.event_us, excluded.created_us) > (online_rows.event_us, online_rows.created_us)
   OR online_rows.expire_at_ms <= ?
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class SqliteOnlineStore(OnlineStore):
    """Rows in a local SQLite file (``sqlite:///path/to/online.db``), the zero-install default.

    WAL mode lets readers proceed while a materialize job writes; a busy timeout makes
    concurrent writers from several processes wait instead of failing. Expired rows are
    filtered at read time (and overwritten by later writes).
    """

    def __init__(self, path: str | Path, project: str, *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.project = check_identifier(project, "project")
        self.timeout = timeout
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=timeout, check_same_thread=False, isolation_level=None)
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.executescript(_SCHEMA)
            columns = {r[1] for r in self._conn.execute("PRAGMA table_info(online_rows)")}
            for added in ("event_us", "created_us"):  # a file written by an older release
                if added not in columns:
                    self._conn.execute(f"ALTER TABLE online_rows ADD COLUMN {added} INTEGER")
        except (sqlite3.Error, OSError) as exc:
            raise StoreUnavailableError(f"cannot open the SQLite online store {self.path}: {exc}") from None

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> SqliteOnlineStore:
        # sqlite:///relative/path (against the working directory) or sqlite:////absolute/path
        return cls(settings.online_url[len("sqlite:///") :], settings.project)

    def _execute(self, sql: str, params: Sequence[object] = ()) -> list[Any]:
        try:
            with self._lock:
                return self._conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite online store {self.path}: {exc}") from None
        except sqlite3.Error as exc:
            raise OnlineStoreError(f"SQLite online store {self.path}: {exc}") from None

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
        check_identifier(view, "feature view")
        check_batch(keys, rows, expire_at_ms)
        expiry: Sequence[int | None] = expire_at_ms if expire_at_ms is not None else [None] * len(keys)
        p, now = self.project, _now_ms()
        data = [(p, view, version, k, r, e, *row_stamp(r), now) for k, r, e in zip(keys, rows, expiry, strict=True)]
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    before = self._conn.total_changes
                    self._conn.executemany(_UPSERT, data)
                    written = self._conn.total_changes - before
                    if pushed:
                        self._conn.executemany(
                            "INSERT OR IGNORE INTO online_pushed VALUES (?, ?, ?, ?)",
                            [(p, view, version, k) for k in keys],
                        )
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite online store {self.path}: {exc}") from None
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
        check_identifier(view, "feature view")
        if len(keys) != len(events):
            raise OnlineStoreError("append_events: keys and events must have the same length")
        p, now, added = self.project, _now_ms(), 0
        where = "project = ? AND view = ? AND version = ? AND entity = ?"
        try:
            with self._lock:
                conn = self._conn
                conn.execute("BEGIN IMMEDIATE")  # the whole batch is one transaction: atomic per entity and more
                try:
                    for key, new in zip(keys, events, strict=True):
                        ent = (p, view, version, key)
                        stamped = [(i, event_time_us(e), e) for i, e in new]
                        conn.execute(f"DELETE FROM online_events WHERE {where} AND expire_at_ms <= ?", (*ent, now))
                        if replace:  # the rebuilt events supersede their stored copies (events.superseded)
                            held = conn.execute(
                                f"SELECT ident, payload FROM online_events WHERE {where}", ent
                            ).fetchall()
                            doomed = superseded([(i, bytes(e)) for i, e in held], new)
                            conn.executemany(
                                f"DELETE FROM online_events WHERE {where} AND ident = ?", [(*ent, i) for i in doomed]
                            )
                        (stored,) = conn.execute(
                            f"SELECT max(event_us) FROM online_events WHERE {where}", ent
                        ).fetchone()
                        newest = max(
                            [t for _, t, _ in stamped] + ([stored] if stored is not None else []), default=None
                        )
                        if newest is None:
                            continue
                        cutoff = newest - horizon_us
                        expire = -(-(newest + horizon_us) // 1000)
                        before = conn.total_changes
                        conn.executemany(
                            "INSERT OR IGNORE INTO online_events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                            [(*ent, i, t, e, expire) for i, t, e in stamped if t > cutoff],
                        )
                        added += conn.total_changes - before
                        conn.execute(f"DELETE FROM online_events WHERE {where} AND event_us <= ?", (*ent, cutoff))
                        conn.execute(f"UPDATE online_events SET expire_at_ms = ? WHERE {where}", (expire, *ent))
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite online store {self.path}: {exc}") from None
        return added

    def read_events(self, view: str, version: str, keys: Sequence[str]) -> list[list[bytes]]:
        found: dict[str, list[bytes]] = {}
        now = _now_ms()
        unique = list(dict.fromkeys(keys))
        for lo in range(0, len(unique), _MAX_PARAMS):
            part = unique[lo : lo + _MAX_PARAMS]
            sql = (
                "SELECT entity, payload FROM online_events WHERE project = ? AND view = ? AND version = ? "
                f"AND entity IN ({','.join('?' * len(part))}) AND expire_at_ms > ?"
            )
            for entity, payload in self._execute(sql, [self.project, view, version, *part, now]):
                found.setdefault(str(entity), []).append(bytes(payload))
        return [list(found.get(k, ())) for k in keys]

    def scan_events(self, view: str, version: str) -> Iterator[tuple[str, list[tuple[str, bytes]]]]:
        rows = self._execute(
            "SELECT entity, ident, payload FROM online_events WHERE project = ? AND view = ? AND version = ? "
            "AND expire_at_ms > ? ORDER BY entity",
            (self.project, view, version, _now_ms()),
        )
        for entity, group in itertools.groupby(rows, key=lambda r: str(r[0])):
            yield entity, [(str(i), bytes(p)) for _, i, p in group]

    def pushed_keys(self, view: str, version: str) -> list[str]:
        rows = self._execute(
            "SELECT entity FROM online_pushed WHERE project = ? AND view = ? AND version = ? ORDER BY entity",
            (self.project, view, version),
        )
        return [str(r[0]) for r in rows]

    def pointers(self, view: str) -> tuple[str | None, str | None]:
        rows = self._execute(
            "SELECT name, value FROM online_meta WHERE project = ? AND view = ? AND name IN ('version', 'pending')",
            (self.project, view),
        )
        found = {str(n): str(v) for n, v in rows}
        current, pending = found.get("version"), found.get("pending")
        return current, (None if pending == current else pending)

    def set_pending_version(self, view: str, version: str) -> None:
        check_identifier(view, "feature view")
        self._set_meta(view, "pending", version)

    def read_rows(self, view: str, version: str, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = _now_ms()
        unique = list(dict.fromkeys(keys))
        for lo in range(0, len(unique), _MAX_PARAMS):
            part = unique[lo : lo + _MAX_PARAMS]
            marks = ",".join("?" * len(part))
            sql = (
                "SELECT entity, row FROM online_rows WHERE project = ? AND view = ? AND version = ? "
                f"AND entity IN ({marks}) AND (expire_at_ms IS NULL OR expire_at_ms > ?)"
            )
            for entity, row in self._execute(sql, [self.project, view, version, *part, now]):
                found[str(entity)] = bytes(row)
        return [found.get(k) for k in keys]

    def _meta(self, view: str, name: str) -> str | None:
        rows = self._execute(
            "SELECT value FROM online_meta WHERE project = ? AND view = ? AND name = ?", (self.project, view, name)
        )
        return str(rows[0][0]) if rows else None

    def _set_meta(self, view: str, name: str, value: str) -> None:
        self._execute("INSERT OR REPLACE INTO online_meta VALUES (?, ?, ?, ?)", (self.project, view, name, value))

    def current_version(self, view: str) -> str | None:
        return self._meta(view, "version")

    def current_versions(self) -> dict[str, str]:
        rows = self._execute(
            "SELECT view, value FROM online_meta WHERE project = ? AND name = 'version'", (self.project,)
        )
        return {str(v): str(ver) for v, ver in rows}

    def set_current_version(self, view: str, version: str, *, if_absent: bool = False) -> None:
        check_identifier(view, "feature view")
        if if_absent:
            row = (self.project, view, version)
            self._execute("INSERT OR IGNORE INTO online_meta VALUES (?, ?, 'version', ?)", row)
        else:
            self._set_meta(view, "version", version)

    def watermark(self, view: str, version: str) -> datetime | None:
        return utc_datetime(self._meta(view, f"watermark:{version}"))

    def set_watermark(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        self._set_meta(view, f"watermark:{version}", stamp.isoformat())

    def newest_events(self) -> dict[tuple[str, str], datetime]:
        rows = self._execute(
            "SELECT view, name, value FROM online_meta WHERE project = ? AND name LIKE 'newest:%'", (self.project,)
        )
        out = {}
        for view, name, value in rows:
            stamp = utc_datetime(str(value))
            if stamp is not None:
                out[(str(view), str(name)[len("newest:") :])] = stamp
        return out

    def set_newest_event(self, view: str, version: str, when: datetime) -> None:
        stamp = utc_datetime(when)
        assert stamp is not None
        old = utc_datetime(self._meta(view, f"newest:{version}"))
        if old is None or old < stamp:
            self._set_meta(view, f"newest:{version}", stamp.isoformat())

    def delete(self, view: str, version: str | None = None) -> int:
        if version is None:
            count = self._execute(
                "SELECT count(*) FROM online_rows WHERE project = ? AND view = ?", (self.project, view)
            )[0][0]
            self._execute("DELETE FROM online_rows WHERE project = ? AND view = ?", (self.project, view))
            self._execute("DELETE FROM online_events WHERE project = ? AND view = ?", (self.project, view))
            self._execute("DELETE FROM online_meta WHERE project = ? AND view = ?", (self.project, view))
            self._execute("DELETE FROM online_pushed WHERE project = ? AND view = ?", (self.project, view))
        else:
            where = "project = ? AND view = ? AND version = ?"
            count = self._execute(f"SELECT count(*) FROM online_rows WHERE {where}", (self.project, view, version))[0][
                0
            ]
            self._execute(f"DELETE FROM online_rows WHERE {where}", (self.project, view, version))
            self._execute(f"DELETE FROM online_events WHERE {where}", (self.project, view, version))
            self._execute(f"DELETE FROM online_pushed WHERE {where}", (self.project, view, version))
            self._execute(
                "DELETE FROM online_meta WHERE project = ? AND view = ? AND name IN (?, ?)",
                (self.project, view, f"watermark:{version}", f"newest:{version}"),
            )
        return int(count)

    def ping(self) -> None:
        self._execute("SELECT 1")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SqliteOnlineStore({str(self.path)!r}, project={self.project!r})"
