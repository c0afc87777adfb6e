"""Fixtures for the reader tests: the real datasets (skipped where absent) and an error-message check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from readers.datasets import datasets_root
from readers.records import ReaderError

# Real datasets: $TAILOR_DATASETS, else ../shared/datasets from the project root.
DATASETS = datasets_root()


def _assert_names(err: ReaderError, path: Path | str, line: int | None, field: str) -> None:
    """The error names the file, the line and the field, both as attributes and in its message."""
    msg = str(err)
    assert str(path) in msg, msg
    if line is not None:
        assert f":{line}:" in msg, msg
    assert repr(field) in msg, msg
    assert err.line == line and err.field_name == field, (err.line, err.field_name)


@pytest.fixture(scope="session")
def assert_names() -> Callable[[ReaderError, Path | str, int | None, str], None]:
    """Check that a ReaderError names file, line and field."""
    return _assert_names


@pytest.fixture(scope="session")
def myntra_dir() -> Path:
    """The real myntra-small dataset."""
    d = DATASETS / "myntra-small"
    if not (d / "products.csv").is_file():
        pytest.skip(f"{d} not available")
    return d


@pytest.fixture(scope="session")
def fashioniq_dir() -> Path:
    """The real FashionIQ caption, split and attribute files."""
    d = DATASETS / "fashion-iq"
    if not (d / "captions").is_dir():
        pytest.skip(f"{d} not available")
    return d
