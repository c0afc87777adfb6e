"""Figures of the experiment reports: matplotlib without a display, written atomically as PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from readers.files import atomic_write


def pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display on servers and CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Save ``fig`` as PNG at ``path`` (whole or not at all) and close it."""
    try:
        return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
    finally:
        pyplot().close(fig)
