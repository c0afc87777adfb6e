"""gnn.data.sampling: a sampled neighbourhood is exact where fanouts cover every message, bounded where not."""

from __future__ import annotations

import torch

from gnn.config import GraphConfig, ModelConfig
from gnn.data.graph import build_graph_tensors
from gnn.data.sampling import NeighbourSampler
from gnn.data.simulation import like_edges, with_edges
from gnn.nn.model import GraphRetriever
from tests.gnn.synthetic import synthetic_export


def _graph():
    export, feats = synthetic_export(per_cell=4)
    g = build_graph_tensors(export, feats, GraphConfig())
    liked = like_edges(g, g.queries["train"].subset([0, 1]), torch.tensor([[2, 5, 9], [4, 7, 11]]))
    return with_edges(g, liked), feats


def test_with_fanouts_that_cover_every_message_the_sample_embeds_its_seeds_exactly() -> None:
    g, feats = _graph()
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16)).eval()
    full = model.encode(g)
    most = int(torch.bincount(g.edge_index[1] * len(g.relations) + g.edge_type).max())
    sampler = NeighbourSampler(g, (most,) * 3, torch.Generator().manual_seed(0))
    seeds = torch.tensor([0, 5, g.offsets["Caption"] + 3, g.offsets["Attribute"] + 1])
    sample = sampler.sample(seeds)
    local = model.encode(sample.graph)
    torch.testing.assert_close(local[sample.local(seeds)], full[seeds], atol=1e-5, rtol=1e-5)
    assert len(sample.nodes) < g.num_nodes  # captions that no seed hears are not in it


def test_small_fanouts_bound_each_relation_into_each_node_and_only_sample_real_edges() -> None:
    g, _ = _graph()
    fanout = 2
    sampler = NeighbourSampler(g, (fanout, fanout), torch.Generator().manual_seed(1))
    seeds = torch.arange(6)
    sample = sampler.sample(seeds)
    sub = sample.graph
    real = set(zip(g.edge_index[0].tolist(), g.edge_index[1].tolist(), g.edge_type.tolist(), strict=True))
    glob = sample.nodes[sub.edge_index]
    got = list(zip(glob[0].tolist(), glob[1].tolist(), sub.edge_type.tolist(), strict=True))
    assert got and all(e in real for e in got)
    # Seeds (hop 1) and the nodes first reached at hop 2 each get at most ``fanout`` messages of a relation.
    per = torch.bincount(sub.edge_index[1] * len(g.relations) + sub.edge_type)
    assert int(per.max()) <= 2 * fanout  # a node reached at both hops can be sampled twice
    attribute = g.offsets["Attribute"] + g.index["Attribute"]["red"]
    into_red = [e for e in got if e[1] == attribute]
    assert into_red and len({e[2] for e in into_red}) == 1 and len(into_red) <= 2 * fanout
    # Every kind's rows map back to the full graph's tables.
    assert sub.offsets["Image"] == 0 and sub.ids["Image"] == sorted(sub.ids["Image"])
    torch.testing.assert_close(sub.features["Image"], g.features["Image"][torch.tensor(sub.ids["Image"])])
