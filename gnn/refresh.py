"""Embeddings follow the database: after an interaction or a curator's edit, recompute the embeddings
it affects with the trained weights (no training) and update the FAISS index in place.

The interaction relation types (USER_TAGGED, LIKED_*) are part of every model's relation vocabulary, with
weights learned from simulated interactions in training (``gnn.simulation``), so new edges of those
types carry meaningful messages at once. Image and attribute embeddings depend only on the
"base" graph (images, attributes, their edges, interactions and the captions interactions link to), so a
refresh runs the R-GCN over that graph alone; only images whose embedding moved are rewritten in FAISS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from gnn.feature_cache import FeatureCache, text_key
from gnn.graph import build_graph_tensors
from gnn.search import QueryEngine, build_bundle
from graphdb.export import GraphExport


@dataclass
class RefreshReport:
    changed_images: list[str]
    new_attributes: int
    seconds: float


class TextFeatures:
    """Text features from memory, then the on-disk feature cache, then the encoder, which is built only
    on the first miss (an interaction usually needs no new text, so it never loads the model). New
    features are written to the cache, so the next process finds them. Quacks like a text encoder."""

    def __init__(self, cache: FeatureCache, make_encoder: Callable[[], object]):
        self.cache = cache
        self.dim = cache.dim
        self.name = cache.model_name
        self._make_encoder = make_encoder
        self._encoder = None
        self.memory: dict[str, np.ndarray] = {}

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        missing = sorted({t for t in texts if t not in self.memory})
        if missing:
            found, features = self.cache.get_many([text_key(t) for t in missing])
            for text, ok, vec in zip(missing, found, features, strict=True):
                if ok:
                    self.memory[text] = vec
            unknown = [t for t, ok in zip(missing, found, strict=True) if not ok]
            if unknown:
                if self._encoder is None:
                    self._encoder = self._make_encoder()
                new = np.asarray(self._encoder.encode_texts(unknown), dtype=np.float32)
                self.cache.put_many([text_key(t) for t in unknown], new)
                self.memory.update(zip(unknown, new, strict=True))
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.memory[t] for t in texts])


def base_features(export: GraphExport, image_features: dict[str, np.ndarray], texts: TextFeatures
                  ) -> dict[str, np.ndarray]:
    """Node features for a base export: images from ``image_features`` (id -> vector; zeros for an
    image the model never saw), attributes and captions from their text."""
    dim = next(iter(image_features.values())).shape[0]
    zeros = np.zeros(dim, np.float32)
    attributes = list(export.attributes)
    return {
        "Image": np.stack([image_features.get(r.id, zeros) for r in export.images]),
        "Caption": texts.encode_texts([c.text for c in export.captions]),
        "Attribute": texts.encode_texts(attributes),
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
    new_attributes = len(set(bundle.attribute_names) - set(old.attribute_names))
    engine.bundle = bundle
    engine.rebuild_vocabulary()
    return RefreshReport([bundle.image_ids[r] for r in changed], new_attributes, time.perf_counter() - start)
