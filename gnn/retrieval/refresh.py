"""Embeddings follow the database: after an interaction or a curator's edit, recompute the embeddings
it affects with the trained weights (no training) and update the FAISS index in place.

The interaction relation types (USER_TAGGED, LIKED_*) are part of every model's relation vocabulary, with
weights learned from simulated interactions in training (``gnn.data.simulation``), so new edges of those
types carry meaningful messages at once. Image and attribute embeddings depend only on the
"base" graph (images, attributes, their edges, interactions and the captions interactions link to), so a
refresh runs the R-GCN over that graph alone; only images whose embedding moved are rewritten in FAISS.

Copy on write: a refresh builds the new bundle and a copy of the index off to the side and returns a new
engine; the caller swaps it in with one assignment, so a search running meanwhile reads the old engine
whole and never a half-updated index.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from gnn.config import RetrievalConfig
from gnn.data.graph import build_graph_tensors
from gnn.features.cache import TextFeatures
from gnn.retrieval.local import LocalState
from gnn.retrieval.search import QueryEngine, build_bundle, build_index, bundle_from_layers, encode_base
from readers.graph_records import BaseDelta, GraphExport


@dataclass
class RefreshReport:
    engine: QueryEngine  # the refreshed engine (the one passed in is left as it was)
    changed_images: list[str]
    new_attributes: int
    seconds: float
    removed_images: list[str] = field(default_factory=list)  # in the index before, not in the graph now
    local: LocalState | None = None  # after a full refresh: the state later local refreshes start from
    mode: str = "full"  # full | local
    detail: dict = field(default_factory=dict)  # a local refresh: nodes recomputed per layer, hubs held


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
            tolerance: float = 1e-6, rebuild_index: bool = False, local: RetrievalConfig | None = None
            ) -> RefreshReport:
    """Recompute the bundle from ``export`` with the engine's model and return a new engine whose index is a
    copy of ``engine``'s with the changed rows replaced (``rebuild_index``: built whole from the new bundle,
    which also repairs rows that had drifted from it); ``engine`` itself is not changed. ``local``: also
    build the :class:`LocalState` (with its hub settings) that later local refreshes start from."""
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
    removed = sorted(set(old.image_ids) - set(bundle.image_ids))  # retired, or left without features
    if rebuild_index:
        index = build_index(bundle, engine.index.spec)
    else:
        # an unchanged index is shared, never written: a search running on it sees it whole
        index = engine.index.copy() if changed or removed else engine.index
        if changed:
            index.add([bundle.image_ids[r] for r in changed], new_final[changed].numpy())
        index.remove(removed)
    new_attributes = len(set(bundle.attribute_names) - set(old.attribute_names))
    refreshed = copy.copy(engine)  # the same model and text features, and whatever else the engine holds
    refreshed.bundle = bundle
    refreshed.index = index
    refreshed.rebuild_vocabulary()
    if engine.second_stage is not None:  # the facts it reads follow the same graph (a new copy: reads go on)
        refreshed.second_stage = engine.second_stage.with_facts(export)
    state = None
    if local is not None and sub.edge_weight is None:  # the local sums are of unit-weight messages
        state = LocalState.build(sub, layers, config, local.hub_degree, local.hub_tolerance)
    return RefreshReport(refreshed, [bundle.image_ids[r] for r in changed], new_attributes,
                         time.perf_counter() - start, removed, state)


@torch.no_grad()
def rebuild(model, version: str, export: GraphExport, features: dict[str, np.ndarray], config,
            text_features, looks=None, second_stage=None, spec=None) -> RefreshReport:
    """A new engine from the model alone (no previous bundle or index to start from): the repair of an
    engine whose bundle or index was lost or corrupt. Every image counts as changed."""
    start = time.perf_counter()
    g = build_graph_tensors(export, features, config)
    bundle = build_bundle(model, g, version, [r.image_path for r in export.images])
    if second_stage is not None:
        second_stage = second_stage.with_facts(export)
    engine = QueryEngine(model, bundle, build_index(bundle, spec), text_features, second_stage, looks=looks)
    return RefreshReport(engine, list(bundle.image_ids), len(bundle.attribute_names), time.perf_counter() - start)


def refresh_local(engine: QueryEngine, state: LocalState, delta: BaseDelta, defer_passed_on: bool = False
                  ) -> RefreshReport | None:
    """Bring the engine in line with ``delta`` by recomputing only what is within the model's reach of it
    (:mod:`gnn.retrieval.local`) and replacing those images' FAISS rows, *in place*: copying a million-row
    bundle and index per like would cost what this avoids, so the change is applied while the engine's
    searches are held (:attr:`QueryEngine.guard`, a few milliseconds). ``None`` when only a full refresh
    is right (the catalog's images changed, an attribute left the graph): nothing is changed then.
    ``defer_passed_on``: the readers of hubs passed on wait for :func:`catch_up_local`
    (:meth:`LocalState.refresh`)."""
    start = time.perf_counter()
    if any(e.weight != 1.0 for e in delta.edges):  # a weighted message: only the full pass weighs it
        return None
    with engine.guard.writing():
        bundle = engine.bundle
        change = state.apply(delta, bundle, engine.model, engine.text_encoder)
        if change.full:
            return None
        report = state.refresh(engine.model, bundle, change, defer=defer_passed_on)
        rows = report.changed_images
        _reindex(engine, rows)
        if change.new_attributes:
            engine.rebuild_vocabulary()
        if engine.second_stage is not None:  # the changed images' facts, read from the delta
            engine.second_stage = engine.second_stage.with_delta(delta)
    return RefreshReport(engine, [bundle.image_ids[r] for r in rows], change.new_attributes,
                         time.perf_counter() - start, [], state, "local",
                         {"recomputed per layer": report.recomputed, "hubs held": report.held_hubs,
                          "hubs deferred": sum(len(h) for h in state.deferred.values()),
                          "edges added": len(change.added), "edges removed": len(change.removed)})


def catch_up_local(engine: QueryEngine, state: LocalState) -> list[str]:
    """The readers of the hubs a deferring :func:`refresh_local` passed on, recomputed, and their FAISS rows
    replaced, while the engine's searches are held; returns the images whose embedding moved."""
    if not state.deferred:
        return []
    with engine.guard.writing():
        bundle = engine.bundle
        rows = state.catch_up(engine.model, bundle).changed_images
        _reindex(engine, rows)
    return [bundle.image_ids[r] for r in rows]


def _reindex(engine: QueryEngine, rows: list[int]) -> None:
    if rows:
        bundle = engine.bundle
        engine.index.add([bundle.image_ids[r] for r in rows], bundle.image_layers[-1, rows].float().numpy())
