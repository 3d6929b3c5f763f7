"""Rich progress for long loops, silent when disabled or not on a terminal."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["steps"]

T = TypeVar("T")


def steps(items: Iterable[T], label: str, *, enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar named ``label``."""
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
