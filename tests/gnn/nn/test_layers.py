"""The fast relational convolution computes what PyG's RGCNConv computes (and weighted means where edges
carry weights); restriction is exact."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import RGCNConv

from gnn.config import GraphConfig, ModelConfig
from gnn.data.graph import build_graph_tensors
from gnn.nn.layers import RelationalAdjacency, RelationalConv
from gnn.nn.model import GraphRetriever
from readers.graph_records import TypedEdge
from tests.gnn.synthetic import synthetic_export


def _random_graph(n: int = 50, e: int = 400, r: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    edge_type = torch.randint(0, r, (e,), generator=gen)
    edge_type[edge_type == 3] = 2  # relation 3 has no edges: must be skipped, not crash
    return torch.randn(n, 12, generator=gen), edge_index, edge_type


def test_relational_conv_matches_pyg_rgcnconv() -> None:
    x, edge_index, edge_type = _random_graph()
    pyg = RGCNConv(12, 8, num_relations=5, aggr="mean")
    ours = RelationalConv(12, 8, num_relations=5)
    with torch.no_grad():
        ours.weight.copy_(pyg.weight)
        ours.root.weight.copy_(pyg.root.T)
        ours.root.bias.copy_(pyg.bias)
    adjacency = RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0])
    torch.testing.assert_close(ours(x, adjacency), pyg(x, edge_index, edge_type), atol=1e-5, rtol=1e-5)


def test_weighted_messages_are_weighted_means_per_relation() -> None:
    x, edge_index, edge_type = _random_graph()
    weight = torch.rand(edge_index.shape[1], generator=torch.Generator().manual_seed(1)) + 0.05
    conv = RelationalConv(12, 8, num_relations=5)
    adjacency = RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0], weight)
    # the same function written out edge by edge: sum_r W_r (sum_j w_ij x_j / sum_j w_ij)
    expected = conv.root(x)
    for r in range(5):
        for i in range(x.shape[0]):
            into = (edge_type == r) & (edge_index[1] == i)
            if into.any():
                w = weight[into]
                mean = (w[:, None] * x[edge_index[0, into]]).sum(0) / w.sum()
                expected[i] = expected[i] + mean @ conv.weight[r]
    torch.testing.assert_close(conv(x, adjacency), expected, atol=1e-5, rtol=1e-5)
    # scaling every weight into a node leaves its messages alone; unit weights are the plain mean
    same = RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0], 3.0 * weight)
    torch.testing.assert_close(conv(x, same), conv(x, adjacency), atol=1e-5, rtol=1e-5)
    ones = RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0], torch.ones(edge_index.shape[1]))
    plain = RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0])
    torch.testing.assert_close(conv(x, ones), conv(x, plain))
    with pytest.raises(ValueError, match="positive"):
        RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0], weight - 1.0)


def test_edge_weights_reach_the_graph_in_both_directions_and_can_be_switched_off() -> None:
    export, feats = synthetic_export()
    plain = build_graph_tensors(export, feats, GraphConfig(attribute_sources=("catalog", "predicted")))
    assert plain.edge_weight is None  # every edge weighs 1: nothing to carry
    image = export.images[0].id
    export.edges.append(TypedEdge("HAS_ATTRIBUTE:predicted", "Image", image, "Attribute", "red", 0.8))
    export.edges.append(TypedEdge("HAS_ATTRIBUTE:predicted", "Image", image, "Attribute", "blue", 0.2))
    config = GraphConfig(attribute_sources=("catalog", "predicted"))
    g = build_graph_tensors(export, feats, config)
    assert g.edge_weight is not None and g.edge_weight.shape == g.edge_type.shape
    for relation in ("HAS_ATTRIBUTE:predicted", "HAS_ATTRIBUTE:predicted~rev"):
        rows = g.edge_type == g.relations.index(relation)
        assert sorted(g.edge_weight[rows].tolist()) == pytest.approx([0.2, 0.8])
    assert set(g.edge_weight[g.edge_type == g.relations.index("HAS_ATTRIBUTE:catalog")].tolist()) == {1.0}
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16))
    model.eval()
    unweighted = build_graph_tensors(export, feats, GraphConfig(attribute_sources=("catalog", "predicted"),
                                                                edge_weights=False))
    assert unweighted.edge_weight is None
    with torch.no_grad():
        assert not torch.allclose(model.encode(g)[0], model.encode(unweighted)[0])
        # restricting captions keeps the weights of the edges it keeps
        sub, _ = g.restrict_captions(torch.tensor([0, 1]))
        torch.testing.assert_close(model.encode(sub)[0], model.encode(g)[0])
    export.edges.append(TypedEdge("HAS_ATTRIBUTE:predicted", "Image", image, "Attribute", "green", 0.0))
    with pytest.raises(ValueError, match="weight"):
        build_graph_tensors(export, feats, config)


def test_relational_conv_gradients_flow_to_every_used_relation() -> None:
    x, edge_index, edge_type = _random_graph()
    conv = RelationalConv(12, 8, num_relations=5, num_bases=2)
    conv(x, RelationalAdjacency.build(edge_index, edge_type, 5, x.shape[0])).sum().backward()
    assert conv.coefficients.grad is not None
    assert conv.coefficients.grad[3].abs().sum() == 0  # no edges of relation 3
    assert conv.coefficients.grad[0].abs().sum() > 0


def test_restricting_captions_leaves_every_kept_embedding_unchanged() -> None:
    export, feats = synthetic_export()
    g = build_graph_tensors(export, feats, GraphConfig())
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16))
    model.eval()
    with torch.no_grad():
        full = model.encode(g)
        rows = torch.tensor([3, 7, 20])
        sub, local = g.restrict_captions(rows)
        part = model.encode(sub)
    n_img = len(g.ids["Image"])
    torch.testing.assert_close(part[:n_img], full[:n_img])
    torch.testing.assert_close(part[sub.offsets["Caption"] + local], full[g.offsets["Caption"] + rows])
    torch.testing.assert_close(part[sub.offsets["Attribute"] :], full[g.offsets["Attribute"] :])


def test_targets_are_never_message_edges_and_directions_follow_config() -> None:
    export, feats = synthetic_export()
    g = build_graph_tensors(export, feats, GraphConfig())
    assert not any("TARGETS" in r for r in g.relations)
    counts = g.relation_counts()
    assert counts["MODIFIES~rev"] == len(export.captions)
    assert "MODIFIES" not in counts  # captions do not speak to their candidates by default
    assert counts["MENTIONS:added~rev"] == len(export.captions)
    both = build_graph_tensors(export, feats, GraphConfig(caption_to_image=True, caption_to_attribute=True))
    assert both.relation_counts()["MODIFIES"] == len(export.captions)
    assert both.relation_counts()["MENTIONS:added"] == len(export.captions)


def test_a_new_caption_encoded_from_its_neighbours_equals_the_full_forward() -> None:
    export, feats = synthetic_export()
    g = build_graph_tensors(export, feats, GraphConfig())
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16))
    model.eval()
    caption = 5
    with torch.no_grad():
        layers = model.layers(g)
    node = g.offsets["Caption"] + caption
    listens = g.edge_index[1] == node
    neighbours: dict[int, list[torch.Tensor]] = {}
    for r in g.edge_type[listens].unique().tolist():
        src = g.edge_index[0, listens & (g.edge_type == r)]
        neighbours[r] = [layer[src] for layer in layers]
    alone = model.encoder.encode_leaf(g.features["Caption"][caption], neighbours)
    torch.testing.assert_close(alone, layers[-1][node], atol=1e-5, rtol=1e-5)


def test_the_layer_at_a_time_pass_computes_what_the_forward_pass_computes() -> None:
    from gnn.config import GraphConfig, ModelConfig
    from gnn.data.graph import build_graph_tensors
    from gnn.features.rows import FeatureRows
    from gnn.nn.model import GraphRetriever
    from tests.gnn.synthetic import synthetic_export

    export, feats = synthetic_export(per_cell=3)
    g = build_graph_tensors(export, feats, GraphConfig())
    model = GraphRetriever({k: v.shape[1] for k, v in feats.items()}, g.relations, ModelConfig(hidden=16)).eval()
    with torch.no_grad():
        want = torch.stack(model.layers(g))
    torch.testing.assert_close(model.encoder.layerwise(g, chunk=7), want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.encoder.layerwise(g, last_only=True, chunk=5), want[-1], atol=1e-5, rtol=1e-5)
    half = model.encoder.layerwise(g, dtype=torch.float16)
    assert half.dtype == torch.float16 and (half.float() - want).abs().max() < 2e-2
    # Features as rows of a table: the same numbers as the dense features they stand for.
    table = torch.as_tensor(feats["Image"][:10])
    rows = FeatureRows(table, torch.arange(len(feats["Image"])) % 10, (torch.arange(len(feats["Image"])) + 3) % 10,
                       torch.linspace(0, 0.3, len(feats["Image"])))
    dense = build_graph_tensors(export, {**feats, "Image": rows.dense().numpy()}, GraphConfig())
    mixed = build_graph_tensors(export, {**feats, "Image": rows}, GraphConfig())
    with torch.no_grad():
        torch.testing.assert_close(model.encode(mixed), model.encode(dense), atol=1e-5, rtol=1e-5)
    assert abs(rows.checksum() - float(rows.dense().double().sum())) < 1e-6
