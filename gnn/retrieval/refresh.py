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

from gnn.config import RetrievalConfig
from gnn.data.graph import build_graph_tensors
from gnn.features.cache import TextFeatures
from gnn.retrieval.local import LocalState
from gnn.retrieval.search import QueryEngine, bundle_from_layers, encode_base
from readers.graph_records import BaseDelta, GraphExport


@dataclass
class RefreshReport:
    changed_images: list[str]
    new_attributes: int
    seconds: float
    local: LocalState | None = None  # after a full refresh: the state later local refreshes start from
    mode: str = "full"  # full | local
    detail: dict = field(default_factory=dict)  # a local refresh: nodes recomputed per layer, hubs held


def base_features(export: GraphExport, image_features, texts: TextFeatures) -> dict[str, np.ndarray]:
    """Node features for a base export: images from ``image_features`` (``.get(id)`` and ``.dim``; zeros
    for an image the model never saw), attributes and captions from their text."""
    zeros = np.zeros(image_features.dim, np.float32)
    attributes = list(export.attributes)
    rows = [image_features.get(r.id) for r in export.images]
    return {
        "Image": np.stack([zeros if v is None else v for v in rows]) if rows else np.zeros((0, len(zeros)), np.float32),
        "Caption": texts.encode_texts([c.text for c in export.captions]),
        "Attribute": texts.encode_texts(attributes),
    }


@torch.no_grad()
def refresh(engine: QueryEngine, export: GraphExport, features: dict[str, np.ndarray], config,
            tolerance: float = 1e-6, local: RetrievalConfig | None = None) -> RefreshReport:
    """Recompute the bundle from ``export`` with the engine's model; update changed index rows in place.
    ``local``: also build the :class:`LocalState` (with its hub settings) that later local refreshes
    start from."""
    start = time.perf_counter()
    old = engine.bundle
    g = build_graph_tensors(export, features, config)
    sub, layers = encode_base(engine.model, g, old.image_layers.dtype)
    bundle = bundle_from_layers(sub, layers, old.version, [r.image_path for r in export.images])
    new_final = bundle.image_layers[-1].float()
    before = torch.tensor([old.image_row.get(i, -1) for i in bundle.image_ids], dtype=torch.long)
    known = before >= 0
    moved = torch.ones(len(before), dtype=torch.bool)  # new images count as changed
    moved[known] = (new_final[known] - old.image_layers[-1][before[known]].float()).abs().amax(dim=1) > tolerance
    changed = moved.nonzero().flatten().tolist()
    if changed:
        engine.index.add([bundle.image_ids[r] for r in changed], new_final[changed].numpy())
    new_attributes = len(set(bundle.attribute_names) - set(old.attribute_names))
    engine.bundle = bundle
    engine.rebuild_vocabulary()
    state = None
    if local is not None:
        state = LocalState.build(sub, layers, config, local.hub_degree, local.hub_tolerance)
    return RefreshReport([bundle.image_ids[r] for r in changed], new_attributes, time.perf_counter() - start,
                         state)


def refresh_local(engine: QueryEngine, state: LocalState, delta: BaseDelta) -> RefreshReport | None:
    """Bring the engine in line with ``delta`` by recomputing only what is within the model's reach of it
    (:mod:`gnn.retrieval.local`) and replacing those images' FAISS rows. ``None`` when only a full refresh
    is right (the catalog's images changed, an attribute left the graph): nothing is changed then."""
    start = time.perf_counter()
    bundle = engine.bundle
    change = state.apply(delta, bundle, engine.model, engine.text_encoder)
    if change.full:
        return None
    report = state.refresh(engine.model, bundle, change)
    rows = report.changed_images
    if rows:
        engine.index.add([bundle.image_ids[r] for r in rows], bundle.image_layers[-1, rows].float().numpy())
    if change.new_attributes:
        engine.rebuild_vocabulary()
    return RefreshReport([bundle.image_ids[r] for r in rows], change.new_attributes, time.perf_counter() - start,
                         state, "local", {"recomputed per layer": report.recomputed, "hubs held": report.held_hubs,
                                          "edges added": len(change.added), "edges removed": len(change.removed)})
