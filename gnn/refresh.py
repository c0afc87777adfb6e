"""Embeddings follow the database: after an interaction or a curator's edit, recompute the embeddings
it affects with the trained weights (no training) and update the FAISS index in place.

The interaction relation types (USER_TAGGED, LIKED_*) are part of every model's relation vocabulary, so
new edges of those types carry messages at once. Image and attribute embeddings depend only on the
"base" graph (images, attributes, their edges, interactions and the captions interactions link to), so a
refresh runs the R-GCN over that graph alone; only images whose embedding moved are rewritten in FAISS.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from gnn.graph import build_graph_tensors
from gnn.search import QueryEngine, build_bundle
from graphdb.export import GraphExport


@dataclass
class RefreshReport:
    changed_images: list[str]
    new_attributes: int
    seconds: float


def base_features(
    export: GraphExport, image_features: dict[str, np.ndarray], text_encoder, text_cache: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Node features for a base export: images from ``image_features`` (id -> vector), attributes and
    captions from their text (encoded once per distinct text, remembered in ``text_cache``)."""
    texts = [a for a in export.attributes] + [c.text for c in export.captions]
    missing = sorted({t for t in texts if t not in text_cache})
    if missing:
        for text, vec in zip(missing, text_encoder.encode_texts(missing), strict=True):
            text_cache[text] = np.asarray(vec, dtype=np.float32)
    dim = next(iter(image_features.values())).shape[0]
    text_dim = text_encoder.dim
    return {
        "Image": np.stack([image_features.get(r.id, np.zeros(dim, np.float32)) for r in export.images]),
        "Caption": np.stack([text_cache[c.text] for c in export.captions]) if export.captions
        else np.zeros((0, text_dim), np.float32),
        "Attribute": np.stack([text_cache[a] for a in export.attributes]),
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
    changed = []
    for row, image_id in enumerate(bundle.image_ids):
        before = old.image_row.get(image_id)
        if before is None or (new_final[row] - old.image_layers[-1, before]).abs().max() > tolerance:
            changed.append(row)
    if changed:
        engine.index.add([bundle.image_ids[r] for r in changed], new_final[changed].numpy())
    new_attributes = len(set(bundle.attribute_names) - set(old.attribute_names))
    engine.bundle = bundle
    engine.rebuild_vocabulary()
    return RefreshReport([bundle.image_ids[r] for r in changed], new_attributes, time.perf_counter() - start)
