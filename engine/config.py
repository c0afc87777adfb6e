"""Settings of the engine's own jobs as data, one place for their defaults (model and training settings
are in :mod:`gnn.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from readers.datasets import myntra_catalog


@dataclass
class DemoConfig:
    """`tailor demo`: a slice of a catalog, trained briefly, answered and interacted with."""

    catalog: Path = field(default_factory=myntra_catalog)
    limit: int = 2000  # products loaded
    model: str = "graph_catalog"
    epochs: int = 80
    queries: int = 3  # test queries answered with pictures
    seed: int = 0
    tag_sentence: str = "that one has long sleeves"  # the "more metadata" sentence the demo says
