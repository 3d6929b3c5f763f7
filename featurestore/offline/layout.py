"""Where a view version's rows live: <root>/<view>/v=<version>/date=YYYY-MM-DD/part-0.parquet."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

__all__ = ["OfflineLayout", "PART_FILE", "open_layout"]

PART_FILE = "part-0.parquet"


class OfflineLayout:
    """Paths of the Parquet offline store under ``root`` (Hive-style partitions)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def version_dir(self, view: str, version: str) -> Path:
        return self.root / view / f"v={version}"

    def partition_file(self, view: str, version: str, day: date | str) -> Path:
        return self.version_dir(view, version) / f"date={day}" / PART_FILE

    def files(self, view: str, version: str) -> list[Path]:
        """The complete partition files of a view version, in date order."""
        base = self.version_dir(view, version)
        if not base.is_dir():
            return []
        return sorted(p for p in base.glob(f"date=*/{PART_FILE}") if p.is_file())

    def dates(self, view: str, version: str) -> list[str]:
        return [p.parent.name.removeprefix("date=") for p in self.files(view, version)]

    def read_partition(self, view: str, version: str, day: str, columns: list[str] | None = None) -> Any:
        """One partition's rows (``columns`` of them, default all) as a polars DataFrame."""
        import polars as pl

        return pl.read_parquet(self.partition_file(view, version, day), columns=columns)

    def glob(self, view: str, version: str) -> str:
        """A glob DuckDB, Spark or Trino can read directly."""
        return str(self.version_dir(view, version) / "date=*" / "*.parquet")

    def txn_root(self, view: str) -> Path:
        return self.root / "_txn" / view

    @contextlib.contextmanager
    def lock(self, view: str) -> Iterator[None]:
        """An exclusive inter-process lock on writes to one view."""
        path = self.root / "_locks" / f"{view}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def snapshot(self, views: Iterable[str], *, exclusive: bool = False) -> Iterator[None]:
        """Readers hold this shared while they list and read views' files; a commit holds it
        exclusive while it swaps them, so a reader sees a whole write or none of it."""
        with contextlib.ExitStack() as stack:
            for view in sorted(set(views)):  # one global order: no deadlock between readers and writers
                path = self.root / "_locks" / f"{view}.snapshot.lock"
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = stack.enter_context(open(path, "a+"))
                fcntl.flock(fh, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
                stack.callback(fcntl.flock, fh, fcntl.LOCK_UN)
            yield


def open_layout(root: str | Path) -> OfflineLayout:
    """The offline store at ``root``: a local folder, or object storage (``s3://bucket/prefix``)."""
    if str(root).startswith("s3://"):
        from featurestore.offline.object_log import ObjectLayout

        return ObjectLayout(str(root))
    return OfflineLayout(Path(root))
