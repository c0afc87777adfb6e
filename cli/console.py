"""One rich console for the CLI, and helpers to print tables and errors consistently."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error the user can act on and return the Exit to raise."""
    err_console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


def print_counts(title: str, counts: dict[str, int], key: str = "name", value: str = "count") -> None:
    table = Table(title=title)
    table.add_column(key)
    table.add_column(value, justify="right")
    for name, count in counts.items():
        table.add_row(str(name), f"{count:,}")
    console.print(table)


def print_json(obj: Any) -> None:
    """Machine-readable output: one JSON object on stdout, nothing else."""
    typer.echo(json.dumps(obj, default=str))


# Exit codes by what went wrong: 1 is anything else.
_EXIT_CODES = (
    ("UnknownIdError", 2), ("InvalidRequestError", 2), ("NotPublishedError", 3), ("DataError", 3),
    ("ArtifactError", 4), ("DatabaseUnavailableError", 5),
)


@contextmanager
def engine_errors() -> Iterator[None]:
    """An engine error (:mod:`engine.errors`) becomes a message on stderr and an exit code."""
    from engine.errors import EngineError

    try:
        yield
    except EngineError as exc:
        names = {cls.__name__ for cls in type(exc).__mro__}
        code = next((c for name, c in _EXIT_CODES if name in names), 1)
        raise fail(str(exc), code) from exc
