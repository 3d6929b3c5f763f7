"""The offline store on object storage: immutable Parquet objects named by a per-view commit log."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from featurestore.errors import IngestError
from featurestore.offline.layout import OfflineLayout
from featurestore.storage import Storage, WriteConflictError, open_storage

__all__ = [
    "ObjectLayout",
    "ObjectTransaction",
    "LogRecord",
    "CommitConflictError",
    "collect_garbage",
    "LOG_DIR",
    "GC_GRACE",
]

LOG_DIR = "_log"
# Superseded and never-committed objects are deleted by a later writer once they are this old:
# long enough for a reader that pinned an older record to finish, and for a live writer's uploads.
GC_GRACE = timedelta(hours=1)


class CommitConflictError(IngestError):
    """Another writer created the commit record this write needed: nothing of it was stored."""


@dataclass(frozen=True)
class LogRecord:
    """Commit ``seq`` of one view: for each version, the object holding each day (keys below the root)."""

    view: str
    seq: int
    files: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_bytes(self, txn: str) -> bytes:
        doc = {"format": 1, "view": self.view, "seq": self.seq, "txn": txn, "files": self.files}
        return orjson.dumps({**doc, "committed_at": datetime.now(UTC).isoformat()}, option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> LogRecord:
        try:
            doc = orjson.loads(data)
            return cls(str(doc["view"]), int(doc["seq"]), {v: dict(d) for v, d in doc["files"].items()})
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise IngestError(f"offline commit record {where} is damaged ({exc}); restore it or delete it") from None


def record_key(view: str, seq: int) -> str:
    # Zero-padded: listing order is commit order.
    return f"{LOG_DIR}/{view}/{seq:012d}.json"


class ObjectLayout(OfflineLayout):
    """The Parquet offline store below ``s3://bucket/prefix``.

    Data objects are written once under unique names
    (``<view>/v=<version>/date=YYYY-MM-DD/part-<txn>.parquet``) and never changed. Which
    of them make up a view is what the newest record of ``_log/<view>/`` says; records
    are numbered and created with a conditional write, so of two writers that read
    record N only one can create N+1. Readers pin a record for the length of a read.
    """

    def __init__(self, root: str, *, gc_grace: timedelta = GC_GRACE) -> None:
        super().__init__(Path("/nonexistent-object-store"))  # no local folder: every path goes through storage
        self.uri = root.rstrip("/")
        self.storage: Storage = open_storage(self.uri)
        self.gc_grace = gc_grace
        self._pins = threading.local()

    # -- records ---------------------------------------------------------------------------------
    def newest(self, view: str) -> LogRecord:
        """The newest commit record of ``view`` (an empty one, seq 0, before the first write)."""
        found = self.storage.list(f"{LOG_DIR}/{view}/")
        records = [o for o in found if o.key.endswith(".json")]
        if not records:
            return LogRecord(view, 0)
        key = records[-1].key
        return LogRecord.from_bytes(self.storage.read(key)[0], self.storage.uri(key))

    def _pinned(self) -> dict[str, LogRecord]:
        pins = getattr(self._pins, "views", None)
        if pins is None:
            pins = self._pins.views = {}
        return pins  # type: ignore[no-any-return]

    def current(self, view: str) -> LogRecord:
        """The record this thread reads ``view`` through: the pinned one, else the newest."""
        return self._pinned().get(view) or self.newest(view)

    @contextlib.contextmanager
    def pin(self, views: Iterable[str]) -> Iterator[None]:
        """Read ``views`` through their newest records until the block ends (nested pins keep the outer)."""
        pins = self._pinned()
        added = [v for v in sorted(set(views)) if v not in pins]
        for view in added:
            pins[view] = self.newest(view)
        try:
            yield
        finally:
            for view in added:
                pins.pop(view, None)

    def repin(self, record: LogRecord) -> None:
        """After a commit: this thread's pin on the view (if any) moves to the record it wrote."""
        pins = self._pinned()
        if record.view in pins:
            pins[record.view] = record

    # -- the layout, read through the pinned record ----------------------------------------------
    def version_dir(self, view: str, version: str) -> str:  # type: ignore[override]
        return self.storage.uri(f"{view}/v={version}")

    def partition_file(self, view: str, version: str, day: date | str) -> str:  # type: ignore[override]
        key = self.current(view).files.get(version, {}).get(str(day))
        if key is None:
            raise FileNotFoundError(f"{self.version_dir(view, version)}/date={day}")
        return self.storage.uri(key)

    def files(self, view: str, version: str) -> list[str]:  # type: ignore[override]
        days = self.current(view).files.get(version, {})
        return [self.storage.uri(days[d]) for d in sorted(days)]

    def dates(self, view: str, version: str) -> list[str]:
        return sorted(self.current(view).files.get(version, {}))

    def read_partition(self, view: str, version: str, day: str, columns: list[str] | None = None) -> Any:
        import polars as pl
        import pyarrow.parquet as pq

        uri = self.partition_file(view, version, day)
        table = pq.read_table(self.storage.fs_path(uri), filesystem=self.storage.filesystem(), columns=columns)
        return pl.from_arrow(table)

    def glob(self, view: str, version: str) -> str:
        """A glob external engines can read; it may also match objects not yet collected (see the README)."""
        return f"{self.version_dir(view, version)}/date=*/*.parquet"

    def txn_root(self, view: str) -> Path:
        raise NotImplementedError("object storage has no staging folder: data objects are written in place")

    @contextlib.contextmanager
    def lock(self, view: str) -> Iterator[None]:
        """No lock on object storage: the write is based on the pinned record and its commit is conditional."""
        with self.pin([view]):
            yield

    @contextlib.contextmanager
    def snapshot(self, views: Iterable[str], *, exclusive: bool = False) -> Iterator[None]:
        with self.pin(views):
            yield


class ObjectTransaction:
    """Partitions of one view version that become visible together (one log record) or not at all.

    Partitions are staged in a local temporary folder; ``commit`` uploads each to a new
    object, then creates record N+1 (N the record the write was based on). A crash before
    the record leaves unreferenced objects that a later writer deletes; losing the race
    for N+1 deletes the uploads and raises IngestError: nothing of the write is visible. A
    create whose answer was lost is read back: the record this write made is a commit.
    """

    def __init__(self, layout: ObjectLayout, view: str, version: str) -> None:
        self.layout = layout
        self.view = view
        self.version = version
        self.base = layout.current(view)
        self.txn = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}"
        self.dir = Path(tempfile.mkdtemp(prefix="featurestore-txn-"))
        self.written: list[str] = []
        self.uploaded: list[str] = []

    def stage_path(self, day: str) -> Path:
        """Where to write the new content of partition ``day`` (a local file, uploaded on commit)."""
        path = self.dir / f"date={day}.parquet"
        self.written.append(day)
        return path

    def commit(self, delete: Iterable[str] = ()) -> None:
        storage = self.layout.storage
        days = dict(self.base.files.get(self.version, {}))
        for day in self.written:
            key = f"{self.view}/v={self.version}/date={day}/part-{self.txn}.parquet"
            storage.upload(self.dir / f"date={day}.parquet", key)
            self.uploaded.append(key)
            days[day] = key
        for day in delete:
            days.pop(day, None)
        files = {**self.base.files, self.version: days}
        if not days:
            files.pop(self.version)
        record = LogRecord(self.view, self.base.seq + 1, files)
        key, body = record_key(self.view, record.seq), record.to_bytes(self.txn)
        try:
            storage.create(key, body)
        except WriteConflictError:
            # Another writer's record, or this one's: the create landed, its answer was lost and the
            # client's retry found the record there. Only a record read back as another is a conflict.
            if self._landed(key, body) is not True:
                self.abort()
                raise CommitConflictError(
                    f"offline view {self.view!r} was written by another process during this write "
                    f"(commit {record.seq} of {self.layout.uri}/{LOG_DIR}/{self.view}/ exists); "
                    "nothing of this write was stored: run it again"
                ) from None
        except BaseException:
            # No answer (the network, an interrupt): the record may exist and name the uploads. Unless
            # it is read back, they are never deleted here (a later writer's collection removes them
            # once no record names them), and the error goes on.
            if self._landed(key, body) is not True:
                self.uploaded.clear()
                shutil.rmtree(self.dir, ignore_errors=True)
                raise
        self.uploaded.clear()  # referenced now: abort must not delete them
        self.layout.repin(record)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _landed(self, key: str, body: bytes) -> bool | None:
        """Whether record ``key`` is this write's (its bytes, which name this transaction), None when
        it cannot be read (then nobody can tell)."""
        try:
            return self.layout.storage.read(key)[0] == body
        except FileNotFoundError:
            return False
        except Exception:
            return None

    def abort(self) -> None:
        for key in self.uploaded:
            with contextlib.suppress(Exception):
                self.layout.storage.delete(key)
        self.uploaded.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


def collect_garbage(layout: ObjectLayout, view: str, now: datetime | None = None) -> int:
    """Delete objects of ``view`` no reader can need any more; returns how many were deleted.

    Kept: every object the newest record names, every object a record superseded less than
    ``gc_grace`` ago names (a reader may have pinned it), and any object younger than
    ``gc_grace`` (a live writer may be about to commit it). Records superseded longer ago
    are deleted too, the newest never.
    """
    storage, now = layout.storage, now or datetime.now(UTC)
    old = now - layout.gc_grace
    logs = [o for o in storage.list(f"{LOG_DIR}/{view}/") if o.key.endswith(".json")]
    keep: set[str] = set()
    stale_records = []
    for i, obj in enumerate(logs):
        superseded = logs[i + 1].modified if i + 1 < len(logs) else None
        if superseded is not None and superseded < old:
            stale_records.append(obj.key)
            continue
        try:
            record = LogRecord.from_bytes(storage.read(obj.key)[0], storage.uri(obj.key))
        except FileNotFoundError:  # another writer collected it meanwhile
            continue
        keep.update(k for days in record.files.values() for k in days.values())
    deleted = 0
    for obj in storage.list(f"{view}/"):
        if obj.key not in keep and obj.modified < old:
            storage.delete(obj.key)
            deleted += 1
    for key in stale_records:
        storage.delete(key)
    return deleted
