"""gnn.retrieval.search: a stored query answered again after likes is embedded exactly as the full graph embeds it."""

from __future__ import annotations

import pytest
import torch

from gnn.config import GraphConfig, ModelConfig
from gnn.data.graph import build_graph_tensors
from gnn.data.simulation import like_edges, with_edges
from gnn.features.cache import FeatureCache, TextFeatures, text_key
from gnn.nn.model import GraphRetriever
from gnn.retrieval.search import QueryEngine, build_bundle, build_index
from readers.captions import CaptionRoles
from tests.gnn.synthetic import synthetic_export


def test_a_liked_query_hears_its_liked_images_as_in_the_full_graph(tmp_path) -> None:
    export, feats = synthetic_export()
    g = build_graph_tensors(export, feats, GraphConfig())
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16)).eval()
    query = g.queries["test"].subset([0])
    caption_row, candidate_row = int(query.caption[0]), int(query.candidate[0])
    liked_rows = [r for r in (3, 7, 11) if r != candidate_row][:2]
    liked_graph = with_edges(g, like_edges(g, query, torch.tensor([liked_rows])))
    with torch.no_grad():
        full = model.layers(liked_graph)[-1]

    # The engine sees the graph as a sync leaves it: images and attributes embedded with the like.
    bundle = build_bundle(model, liked_graph, "v", [""] * len(g.ids["Image"]))
    caption = next(c for c in export.captions if c.id == g.ids["Caption"][caption_row])
    cache = FeatureCache(tmp_path, "test-text", feats["Caption"].shape[1])
    cache.put_many([text_key(caption.text)], feats["Caption"][caption_row][None])
    texts = TextFeatures(cache, make_encoder=lambda: pytest.fail("the text is cached: no encoder needed"))
    engine = QueryEngine(model, bundle, build_index(bundle), texts)
    roles = CaptionRoles(added=(caption.target.split("-")[0],), removed=(caption.candidate.split("-")[0],))
    liked_ids = tuple(g.ids["Image"][r] for r in liked_rows)

    _, with_likes = engine.query_vector(caption.candidate, caption.text, roles, liked=liked_ids)
    node = liked_graph.offsets["Caption"] + caption_row
    torch.testing.assert_close(torch.from_numpy(with_likes), full[node], atol=1e-5, rtol=1e-5)
    _, without = engine.query_vector(caption.candidate, caption.text, roles)
    assert (torch.from_numpy(without) - full[node]).abs().max() > 1e-3  # the likes are what moved it
