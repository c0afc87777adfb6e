"""How library code reports long work without printing: a ``start_phase(name, total)`` callback returns
``advance(n)``. The CLI hands in one that draws progress bars; tests and benchmarks hand in nothing."""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int], None]
StartPhase = Callable[[str, int], Advance]


def no_progress(name: str, total: int) -> Advance:
    """A ``start_phase`` that shows nothing."""
    return lambda n: None
