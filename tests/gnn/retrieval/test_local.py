"""gnn.retrieval.local: a local refresh gives the embeddings a full refresh gives (exactly without hubs,
within a small error with held hubs), and touches only what is within the model's reach."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from gnn.config import GraphConfig, ModelConfig, RetrievalConfig
from gnn.data.graph import build_graph_tensors, relation_vocabulary
from gnn.features.cache import FeatureCache, TextFeatures, text_key
from gnn.nn.model import GraphRetriever
from gnn.retrieval.refresh import base_features, refresh, refresh_local
from gnn.retrieval.search import QueryEngine, build_bundle, build_index
from readers.graph_records import (
    INTERACTION_TYPES,
    LIKED_FOR,
    LIKED_FROM,
    LIKED_WITH,
    USER_TAGGED,
    BaseDelta,
    CaptionRow,
    GraphExport,
    TypedEdge,
)
from tests.gnn.synthetic import synthetic_export

NEW_ATTRIBUTE = "striped"


class Features:
    """Image features by id (what the published engine's ImageFeatures offers)."""

    def __init__(self, export: GraphExport, matrix: np.ndarray):
        self.row = {r.id: i for i, r in enumerate(export.images)}
        self.matrix = matrix
        self.dim = matrix.shape[1]

    def get(self, image_id: str):
        r = self.row.get(image_id)
        return None if r is None else self.matrix[r]


def base_of(export: GraphExport, liked: set[str]) -> GraphExport:
    """What graphdb.export.export_base reads: images, attributes, their edges, interactions, liked captions."""
    keep = {c.id: c for c in export.captions if c.id in liked}
    edges = [e for e in export.edges
             if e.relation.startswith("HAS_ATTRIBUTE") or e.relation in INTERACTION_TYPES
             or (e.src_kind == "Caption" and e.src in keep)]
    captions = [dataclasses.replace(c, target=None) for c in export.captions if c.id in keep]
    return GraphExport(list(export.images), captions, dict(export.attributes), edges)


def delta_of(export: GraphExport, images: set[str], captions: set[str], liked: set[str]) -> BaseDelta:
    """The delta graphdb.export.read_base_delta reads for these changed nodes from this (base) graph."""
    edges = []
    for e in export.edges:
        image_side = e.relation.startswith("HAS_ATTRIBUTE") or e.relation in INTERACTION_TYPES
        if (image_side and ((e.src_kind == "Image" and e.src in images) or (e.dst_kind == "Image" and e.dst in images))) \
                or (e.src_kind == "Caption" and e.src in captions & liked) \
                or (e.dst_kind == "Caption" and e.dst in captions & liked):
            edges.append(e)
    rows = [c for c in export.captions if c.id in captions & liked]
    return BaseDelta(sorted(images), sorted(captions), edges, rows, captions & liked, dict(export.attributes),
                     len(export.images))


def like(export: GraphExport, caption: CaptionRow, images: list[str]) -> list[TypedEdge]:
    out = []
    for i, a in enumerate(images):
        out.append(TypedEdge(LIKED_FOR, "Image", a, "Caption", caption.id))
        if a != caption.candidate:
            out.append(TypedEdge(LIKED_FROM, "Image", a, "Image", caption.candidate))
        out += [TypedEdge(LIKED_WITH, "Image", min(a, b), "Image", max(a, b)) for b in images[i + 1:]]
    return out


@pytest.fixture(params=[40])
def world(tmp_path, request):
    export, feats = synthetic_export(per_cell=request.param)
    rng = np.random.default_rng(3)
    texts = [c.text for c in export.captions] + list(export.attributes) + [NEW_ATTRIBUTE]
    text_dim = feats["Caption"].shape[1]
    cache = FeatureCache(tmp_path / "text", "test-text", text_dim)
    distinct = sorted(set(texts))
    cache.put_many([text_key(t) for t in distinct], rng.standard_normal((len(distinct), text_dim)).astype(np.float32))
    text_features = TextFeatures(cache, make_encoder=lambda: pytest.fail("every text is cached"))
    torch.manual_seed(0)
    model = GraphRetriever({"Image": feats["Image"].shape[1], "Caption": text_dim, "Attribute": text_dim},
                           relation_vocabulary(GraphConfig()), ModelConfig(hidden=16)).eval()
    first = export.captions[0]
    export.edges += like(export, first, [export.images[5].id, export.images[9].id])
    export.edges.append(TypedEdge(USER_TAGGED, "Image", export.images[2].id, "Attribute", "dress"))
    return export, feats, model, text_features, Features(export, feats["Image"]), {first.id}


def engine_for(model, export, image_features, text_features, liked):
    base = base_of(export, liked)
    features = base_features(base, image_features, text_features)
    bundle = build_bundle(model, build_graph_tensors(base, features, GraphConfig()), "v",
                          [r.image_path for r in base.images])
    return QueryEngine(model, bundle, build_index(bundle), text_features)


def full(model, export, image_features, text_features, liked, engine, hub_degree=None, tolerance=1e-3):
    base = base_of(export, liked)
    local = None if hub_degree is None else RetrievalConfig(hub_degree=hub_degree, hub_tolerance=tolerance)
    return refresh(engine, base, base_features(base, image_features, text_features), GraphConfig(), local=local)


@pytest.mark.parametrize("hub_degree,tolerance", [(10**9, 1e-3), (5, 1e-3), (5, 1e-2), (5, 1e9)])
def test_local_refresh_matches_a_full_refresh(world, hub_degree, tolerance) -> None:
    export, _, model, texts, image_features, liked = world
    engine = engine_for(model, export, image_features, texts, liked)
    state = full(model, export, image_features, texts, liked, engine, hub_degree, tolerance).local
    assert state is not None and (len(state.hub_row) > 0) == (hub_degree == 5)

    # A second like (a query not liked before), a tag with a new attribute, a tag removed.
    second = export.captions[7]
    liked_images = [export.images[1].id, export.images[14].id, export.images[30].id]
    export.edges += like(export, second, liked_images)
    export.attributes[NEW_ATTRIBUTE] = "pattern"
    export.edges.append(TypedEdge(USER_TAGGED, "Image", export.images[14].id, "Attribute", NEW_ATTRIBUTE))
    export.edges = [e for e in export.edges if e.relation != USER_TAGGED or e.dst != "dress"]
    liked = liked | {second.id}
    changed_images = {*liked_images, second.candidate, export.images[2].id}
    before = engine.bundle.image_layers[-1].clone()
    local = refresh_local(engine, state, delta_of(base_of(export, liked), changed_images, {second.id}, liked))
    reference = engine_for(model, export, image_features, texts, liked)  # everything computed anew
    assert local is not None and local.mode == "local" and local.new_attributes == 1

    got, want = engine.bundle, reference.bundle
    assert got.attribute_names == want.attribute_names and got.image_ids == want.image_ids
    error = (got.image_layers[-1] - want.image_layers[-1]).abs().max().item()
    attr_error = (got.attribute_layers - want.attribute_layers).abs().max().item()
    if hub_degree == 10**9:  # no hubs: the same numbers, up to float rounding
        assert error < 1e-5 and attr_error < 1e-5
    elif tolerance < 1:  # held hubs leave their readers behind, by less than the tolerance
        assert error <= tolerance and attr_error <= tolerance
    else:  # hubs always held (never passed on): what the tolerance is there to bound
        assert error > 10 * 1e-2
    # Only images within reach were recomputed, and exactly those moved in FAISS.
    assert set(local.changed_images) <= {r.id for r in export.images}
    if tolerance > 1:  # holding every hub keeps the refresh to the changed images' own neighbourhood
        assert local.detail["recomputed per layer"][-1] < 20
    for image in local.changed_images:
        row = got.image_row[image]
        v = got.image_layers[-1, row].numpy()
        np.testing.assert_allclose(engine.index.vector(image), v / np.linalg.norm(v), atol=1e-6)
    truly_moved = (reference.bundle.image_layers[-1] - before).abs().amax(dim=1) > 1e-6
    recomputed = {got.image_row[i] for i in local.changed_images}
    if hub_degree == 10**9:  # every image that moved was recomputed
        assert set(torch.nonzero(truly_moved).flatten().tolist()) <= recomputed

    # Then the first like is taken back (its caption no longer liked): still in line with a full refresh.
    first = next(iter(liked - {second.id}))
    removed = [e for e in export.edges if e.relation in (LIKED_FOR, LIKED_FROM, LIKED_WITH)
               and (e.dst == first or e.src in {export.images[5].id, export.images[9].id})]
    export.edges = [e for e in export.edges if e not in removed]
    liked = {second.id}
    touched = {e.src for e in removed} | {e.dst for e in removed if e.dst_kind == "Image"}
    again = refresh_local(engine, state, delta_of(base_of(export, liked), touched, {first}, liked))
    reference = engine_for(model, export, image_features, texts, liked)
    assert again is not None
    error = (engine.bundle.image_layers[-1] - reference.bundle.image_layers[-1]).abs().max().item()
    assert error < (1e-5 if hub_degree == 10**9 else tolerance if tolerance < 1 else 10)


def test_a_new_image_or_a_vanished_attribute_asks_for_a_full_refresh(world) -> None:
    export, _, model, texts, image_features, liked = world
    engine = engine_for(model, export, image_features, texts, liked)
    state = full(model, export, image_features, texts, liked, engine, 1000).local
    base = base_of(export, liked)
    delta = delta_of(base, set(), set(), liked)
    assert refresh_local(engine, state, dataclasses.replace(delta, image_count=delta.image_count + 1)) is None
    fewer = dict(delta.attributes)
    fewer.pop("dress")
    assert refresh_local(engine, state, dataclasses.replace(delta, attributes=fewer)) is None


def test_the_rounding_of_a_stored_value_is_not_a_change() -> None:
    from gnn.retrieval.local import change_beyond_rounding

    torch.manual_seed(0)
    exact = torch.randn(50, 16) * 4  # hub coordinates of a few units
    stored = exact.half().float()  # as a float16 bundle keeps them
    assert (exact - stored).abs().max() > 1e-3  # the rounding alone is past the default tolerance
    assert change_beyond_rounding(exact, stored, torch.float16).max() == 0  # recomputed unchanged: no change
    moved = exact + 0.05
    got = change_beyond_rounding(moved, stored, torch.float16)
    assert bool(((got > 0.05 - 5e-3) & (got <= 0.05 + 1e-6)).all())  # a real change, less at most the rounding
    assert torch.equal(change_beyond_rounding(moved, exact, torch.float32),
                       (moved - exact).abs().amax(dim=1).double())  # float32 layers: unchanged rule


def test_the_edges_into_hubs_are_those_of_every_edge_out_of_the_senders() -> None:
    """A hub sender is read from its links to hubs, not followed down all its edges: the same edges either
    way, with edges removed and added since the last full sync, and senders added since (never hubs)."""
    from gnn.retrieval.local import ATTRIBUTE, IMAGE, LocalGraph, LocalState

    rng = np.random.default_rng(0)
    n, edges, relations = 60, 900, 4
    src, dst = torch.as_tensor(rng.integers(0, n, edges)), torch.as_tensor(rng.integers(0, n, edges))
    graph = LocalGraph(n, src, dst, torch.as_tensor(rng.integers(0, relations, edges)))
    kinds = torch.full((n,), IMAGE, dtype=torch.int8)
    kinds[:12] = ATTRIBUTE
    state = LocalState(graph, [f"r{i}" for i in range(relations)], GraphConfig(), kinds, torch.arange(n), {}, {},
                       torch.zeros((3, 0, 4)), hub_degree=5, hub_tolerance=1e-3)
    hubs = torch.tensor([0, 3, 4, 7, 11])
    for e in rng.choice(edges, 120, replace=False).tolist():  # removed since the last full sync
        graph.remove(("b", e))
    new = graph.add_node()
    state.kinds = torch.cat([state.kinds, torch.tensor([IMAGE], dtype=torch.int8)])
    for s, d in [(0, 3), (3, 0), (7, 20), (new, 4), (11, 11), (30, 7)]:  # added since
        graph.add(s, d, int(rng.integers(relations)))
    state._set_hubs(hubs)
    for senders in (torch.tensor([0, 3, 7, 11, 25, 30, new]), torch.arange(n + 1), hubs, torch.tensor([new])):
        dst, pos, rel = graph.out_edges(senders)
        into = torch.isin(dst, hubs)
        expected = sorted(zip(dst[into].tolist(), pos[into].tolist(), rel[into].tolist(), strict=True))
        got = sorted(zip(*(t.tolist() for t in state._edges_to_hubs(senders)), strict=True))
        assert got == expected and expected


def test_hub_readers_deferred_then_caught_up_are_what_an_immediate_pass_gives(world) -> None:
    from gnn.retrieval.refresh import catch_up_local

    export, _, model, texts, image_features, liked = world
    engines, states = [], []
    for _ in range(2):
        engine = engine_for(model, export, image_features, texts, liked)
        engines.append(engine)
        states.append(full(model, export, image_features, texts, liked, engine, hub_degree=5, tolerance=1e-4).local)
    second = export.captions[7]
    export.edges += like(export, second, [export.images[1].id, export.images[14].id])
    liked = liked | {second.id}
    delta = delta_of(base_of(export, liked), {export.images[1].id, export.images[14].id, second.candidate},
                     {second.id}, liked)
    now = refresh_local(engines[0], states[0], delta)
    later = refresh_local(engines[1], states[1], delta, defer_passed_on=True)
    assert now is not None and later is not None
    assert later.detail["hubs deferred"] > 0 and not states[0].deferred
    assert len(later.changed_images) < len(now.changed_images)  # the answer did not wait for the readers
    moved = catch_up_local(engines[1], states[1])
    assert moved and not states[1].deferred and catch_up_local(engines[1], states[1]) == []
    a, b = engines[0].bundle, engines[1].bundle
    torch.testing.assert_close(b.image_layers, a.image_layers, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.attribute_layers, a.attribute_layers, atol=1e-6, rtol=0)
    torch.testing.assert_close(states[1].hub_sums, states[0].hub_sums)
    for image in set(now.changed_images):  # FAISS follows the readers recomputed late
        np.testing.assert_allclose(engines[1].index.vector(image), engines[0].index.vector(image), atol=1e-6)
