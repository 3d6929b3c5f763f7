"""Progress of long work in rows: a rich bar on a terminal, one summary line per step in a pipe."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, TypeVar

__all__ = ["steps", "RowProgress"]

T = TypeVar("T")


class RowProgress:
    """Rows done, rows/s and time left while work runs in steps (one per view).

    On a terminal a rich bar shows them (time left once the total is known); in a pipe
    each finished step prints one line ``ingest stats: 1,204 rows in 0.4 s (3,010 rows/s)``;
    disabled, nothing is shown. Everything goes to stderr, so stdout stays the command's result::

        with RowProgress("ingest", enabled=True) as bar:
            for view in views:
                bar.start(view)
                ...
                bar.finish(rows_read)
    """

    def __init__(self, label: str, total: int | None = None, *, enabled: bool = True, stream: Any = None) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.rows = 0
        self._step_rows = 0
        self._step = label
        self._t0 = self._step_t0 = time.perf_counter()
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> RowProgress:
        if self.enabled and self.stream.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,.0f} rows"),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("left"),
                TimeRemainingColumn(),
                console=Console(file=self.stream),
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=self.total, rate="")
        return self

    def start(self, step: str, total: int | None = None) -> None:
        """Begin a step (``step`` names it, e.g. the view); ``total`` adds rows the whole run expects."""
        self._step = f"{self.label} {step}"
        self._step_t0 = time.perf_counter()
        self._step_rows = 0
        if total is not None:
            self.total = (self.total or 0) + total
        if self._progress is not None:
            self._progress.update(self._task, description=self._step, total=self.total)

    def advance(self, rows: int) -> None:
        """Count ``rows`` more rows done."""
        self.rows += rows
        self._step_rows += rows
        if self._progress is not None:
            elapsed = max(time.perf_counter() - self._t0, 1e-9)
            self._progress.update(self._task, advance=rows, rate=f"{self.rows / elapsed:,.0f} rows/s")

    def finish(self, rows: int = 0, note: str = "") -> None:
        """End the current step after ``rows`` more rows; in a pipe, print its summary line."""
        self.advance(rows)
        if self.enabled and self._progress is None:
            seconds = time.perf_counter() - self._step_t0
            rate = self._step_rows / seconds if seconds > 0 else 0.0
            extra = f", {note}" if note else ""
            print(
                f"{self._step}: {self._step_rows:,} rows{extra} in {seconds:.1f} s ({rate:,.0f} rows/s)",
                file=self.stream,
                flush=True,
            )

    def steps(self, names: Iterable[str]) -> Iterator[str]:
        """Run as a context around a loop: ``for view in bar.steps(views): ...; bar.finish(rows)``."""
        with self:
            for name in names:
                self.start(name)
                yield name

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            if exc_type is None and self.total is None:
                self._progress.update(self._task, total=self.rows, completed=self.rows)
            self._progress.stop()


def steps(items: Iterable[T], label: str, *, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar named ``label`` (counting items, not rows)."""
    seq = list(items)
    if not enabled:
        yield from seq
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    ) as progress:
        task = progress.add_task(label, total=len(seq))
        for item in seq:
            progress.update(task, description=f"{label} {item}")
            yield item
            progress.advance(task)
