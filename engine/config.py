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


@dataclass(frozen=True)
class PageConfig:
    """The page served by `tailor serve` (engine/browse.py): how much it shows and how steps carry roles."""

    results: int = 12  # results shown for a step
    max_results: int = 48  # the most a request may ask for
    find_limit: int = 24  # products listed by a search
    explain_nodes: int = 40  # nodes drawn in an explanation (the rest are counted, not drawn)
    # Attribute kinds a product has one value of: a step that adds one replaces an earlier step's value of
    # that kind ("in black" then "in red" asks for red) instead of asking for both.
    exclusive_kinds: tuple[str, ...] = ("colour", "article_type", "sub_category", "master_category", "gender",
                                        "usage", "season")
