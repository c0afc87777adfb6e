"""Rich progress bars for long work, handed to library code as plain callbacks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from cli.console import console


@contextmanager
def phases() -> Iterator[Callable[[str, int], Callable[[int], None]]]:
    """``start(name, total)`` adds a bar and returns ``advance(n)`` for it."""
    columns = (
        TextColumn("{task.description:>24}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:

        def start(name: str, total: int) -> Callable[[int], None]:
            task = progress.add_task(name, total=total)
            return lambda n: progress.advance(task, n)

        yield start
