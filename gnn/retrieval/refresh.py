"""Embeddings follow the database: after an interaction or a curator's edit, recompute the embeddings
it affects with the trained weights (no training) and update the FAISS index in place.

The interaction relation types (USER_TAGGED, LIKED_*) are part of every model's relation vocabulary, with
weights learned from simulated interactions in training (``gnn.data.simulation``), so new edges of those
types carry meaningful messages at once. Image and attribute embeddings depend only on the
"base" graph (images, attributes, their edges, interactions and the captions interactions link to), so a
refresh runs the R-GCN over that graph alone; only images whose embedding moved are rewritten in FAISS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gnn.data.graph import build_graph_tensors
from gnn.features.cache import TextFeatures
from gnn.retrieval.search import QueryEngine, build_bundle
from readers.graph_records import GraphExport


@dataclass
class RefreshReport:
    changed_images: list[str]  # new images and images whose embedding moved
    new_attributes: int
    seconds: float
    removed_images: list[str] = field(default_factory=list)  # in the index before, not in the graph now


class MissingFeaturesError(ValueError):
    """Images without features: they must be left out of the graph that is embedded, never zero-filled."""

    def __init__(self, ids: list[str]):
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
        super().__init__(f"{len(ids)} images have no features ({shown}); featurise them or leave them out")


def base_features(export: GraphExport, image_features, texts: TextFeatures) -> dict[str, np.ndarray]:
    """Node features for a base export: images from ``image_features`` (``.get(id)`` and ``.dim``),
    attributes and captions from their text. Every image must have features: an image the features lack
    raises :class:`MissingFeaturesError` (a zero vector would give every such image one embedding)."""
    rows = [image_features.get(r.id) for r in export.images]
    missing = [r.id for r, v in zip(export.images, rows, strict=True) if v is None]
    if missing:
        raise MissingFeaturesError(missing)
    return {
        "Image": np.stack(rows) if rows else np.zeros((0, image_features.dim), np.float32),
        "Caption": texts.encode_texts([c.text for c in export.captions]),
        "Attribute": texts.encode_texts(list(export.attributes)),
    }


@torch.no_grad()
def refresh(engine: QueryEngine, export: GraphExport, features: dict[str, np.ndarray], config,
            tolerance: float = 1e-6) -> RefreshReport:
    """Recompute the bundle from ``export`` with the engine's model; update changed index rows in place."""
    start = time.perf_counter()
    old = engine.bundle
    g = build_graph_tensors(export, features, config)
    bundle = build_bundle(engine.model, g, old.version, [r.image_path for r in export.images])
    new_final = bundle.image_layers[-1]
    before = torch.tensor([old.image_row.get(i, -1) for i in bundle.image_ids], dtype=torch.long)
    known = before >= 0
    moved = torch.ones(len(before), dtype=torch.bool)  # new images count as changed
    moved[known] = (new_final[known] - old.image_layers[-1][before[known]]).abs().amax(dim=1) > tolerance
    changed = moved.nonzero().flatten().tolist()
    if changed:
        engine.index.add([bundle.image_ids[r] for r in changed], new_final[changed].numpy())
    removed = sorted(set(old.image_ids) - set(bundle.image_ids))  # retired, or left without features
    engine.index.remove(removed)
    new_attributes = len(set(bundle.attribute_names) - set(old.attribute_names))
    engine.bundle = bundle
    engine.rebuild_vocabulary()
    return RefreshReport([bundle.image_ids[r] for r in changed], new_attributes, time.perf_counter() - start,
                         removed)
