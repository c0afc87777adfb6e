"""Where the real datasets are: ``$TAILOR_DATASETS``, else ``../shared/datasets`` beside the project."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    return Path(os.environ.get("TAILOR_DATASETS") or PROJECT_ROOT.parent / "shared" / "datasets").expanduser()


def myntra_catalog() -> Path:
    """myntra-small's product table (8,954 photos with catalog attributes)."""
    return datasets_root() / "myntra-small" / "products.csv"


def fashioniq_root() -> Path:
    return datasets_root() / "fashion-iq"


def shoes_root() -> Path:
    return datasets_root() / "shoes"
