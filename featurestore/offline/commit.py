"""Atomic multi-partition writes: stage files, write a commit record, roll forward after a crash."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import orjson

from featurestore.offline.layout import PART_FILE, OfflineLayout

__all__ = ["Transaction", "recover", "finish_committed", "read_snapshot", "retry_conflicts", "CONFLICT_ATTEMPTS"]

# How often a write on object storage starts again when another writer committed first.
CONFLICT_ATTEMPTS = 5


T = TypeVar("T")


def retry_conflicts(write: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run ``write`` (read the view under ``layout.lock``, commit one Transaction); run it again
    on the new state when another writer committed first (object storage only: on local disk
    the lock serialises writers). The last conflict is raised: an IngestError saying to rerun.
    """
    from featurestore.offline.object_log import CommitConflictError

    for attempt in range(attempts):
        try:
            return write()
        except CommitConflictError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def _on_object_storage(layout: OfflineLayout) -> bool:
    return hasattr(layout, "storage")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Transaction:
    """Partition replacements for one view version that become visible together or not at all.

    Stage each new partition with :meth:`stage_path`, then :meth:`commit` with the
    dates to delete. A crash before the commit record is written leaves the store
    untouched; a crash after it is rolled forward by :func:`recover`.
    """

    def __new__(cls, layout: OfflineLayout, view: str, version: str) -> Transaction:
        if _on_object_storage(layout):  # no rename there: a commit log instead (object_log.py)
            from featurestore.offline.object_log import ObjectTransaction

            return ObjectTransaction(layout, view, version)  # type: ignore[arg-type,return-value]
        return super().__new__(cls)

    def __init__(self, layout: OfflineLayout, view: str, version: str) -> None:
        self.layout = layout
        self.view = view
        self.version = version
        self.dir = layout.txn_root(view) / uuid.uuid4().hex
        self.dir.mkdir(parents=True)
        self.written: list[str] = []

    def stage_path(self, day: str) -> Path:
        """Where to write the new content of partition ``day``."""
        path = self.dir / f"date={day}" / PART_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(day)
        return path

    def commit(self, delete: Iterable[str] = ()) -> None:
        for day in self.written:
            with open(self.dir / f"date={day}" / PART_FILE, "rb") as fh:
                os.fsync(fh.fileno())
        record = {"view": self.view, "version": self.version, "write": self.written, "delete": sorted(set(delete))}
        tmp = self.dir / "commit.json.tmp"
        tmp.write_bytes(orjson.dumps(record))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.dir / "commit.json")
        _fsync_dir(self.dir)
        _roll_forward(self.layout, self.dir, record)

    def abort(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def _roll_forward(layout: OfflineLayout, txn_dir: Path, record: dict) -> None:  # type: ignore[type-arg]
    with layout.snapshot([record["view"]], exclusive=True):
        _swap(layout, txn_dir, record)
    shutil.rmtree(txn_dir, ignore_errors=True)


def _swap(layout: OfflineLayout, txn_dir: Path, record: dict) -> None:  # type: ignore[type-arg]
    view, version = record["view"], record["version"]
    for day in record["write"]:
        staged = txn_dir / f"date={day}" / PART_FILE
        final = layout.partition_file(view, version, day)
        if staged.exists():  # absent when an earlier roll-forward already moved it
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
    for day in record["delete"]:
        final = layout.partition_file(view, version, day)
        if final.exists():
            final.unlink()
        if final.parent.is_dir() and not any(final.parent.iterdir()):
            final.parent.rmdir()


def recover(layout: OfflineLayout, view: str) -> int:
    """Finish committed transactions of ``view`` and drop uncommitted ones; returns how many were found.

    For writers, under the view's lock: no other write can own the staging it drops.
    On object storage: delete the objects no reader can need any more (``collect_garbage``).
    """
    if _on_object_storage(layout):
        from featurestore.offline.object_log import collect_garbage

        return collect_garbage(layout, view)  # type: ignore[arg-type]
    return _settle(layout, view, drop_uncommitted=True)


def finish_committed(layout: OfflineLayout, view: str) -> None:
    """For readers: complete any committed but unfinished write of ``view`` before listing files.

    Uncommitted staging is left alone (a live ingest may own it); only a write whose
    commit record exists is rolled forward, under the view's lock.
    """
    if _on_object_storage(layout):
        return  # a commit there is its one log record: nothing is ever half-finished
    root = layout.txn_root(view)
    if root.is_dir() and any((d / "commit.json").is_file() for d in root.iterdir()):
        with layout.lock(view):
            _settle(layout, view, drop_uncommitted=False)


def _settle(layout: OfflineLayout, view: str, *, drop_uncommitted: bool) -> int:
    root = layout.txn_root(view)
    if not root.is_dir():
        return 0
    found = 0
    for txn_dir in sorted(root.iterdir()):
        found += 1
        commit = txn_dir / "commit.json"
        if commit.is_file():
            _roll_forward(layout, txn_dir, orjson.loads(commit.read_bytes()))
        elif drop_uncommitted:
            shutil.rmtree(txn_dir, ignore_errors=True)
    return found


@contextlib.contextmanager
def read_snapshot(layout: OfflineLayout, views: Iterable[str]) -> Iterator[None]:
    """Hold a consistent view of ``views``' files: no write swaps them until the block ends."""
    names = sorted(set(views))
    for view in names:
        finish_committed(layout, view)
    with layout.snapshot(names):
        yield
