"""Simulated interactions on graph tensors and the training data they make."""

from __future__ import annotations

import pytest
import torch

from gnn.config import ExperimentConfig, SimulationConfig
from gnn.data.graph import build_graph_tensors
from gnn.data.simulation import (
    EdgeBatch,
    attributes_by_frequency,
    like_edges,
    nearest_images,
    tag_edges,
    training_interactions,
    with_edges,
)
from gnn.training.fit import model_config
from tests.gnn.synthetic import synthetic_export


@pytest.fixture(scope="module")
def graph():
    export, feats = synthetic_export(per_cell=6)
    config = model_config("graph_catalog", ExperimentConfig())
    return export, build_graph_tensors(export, feats, config.graph), export.image_attributes(("catalog",))


def _edges(g, relation: str) -> set[tuple[int, int]]:
    rel = g.relations.index(relation)
    src, dst = g.edge_index[:, g.edge_type == rel]
    return set(zip(src.tolist(), dst.tolist(), strict=True))


def test_with_edges_adds_both_directions_and_leaves_the_graph_alone(graph) -> None:
    _, g, _ = graph
    before = g.edge_index.shape[1]
    batch = EdgeBatch()
    batch.add("USER_TAGGED", 0, g.offsets["Attribute"] + 1)
    g2 = with_edges(g, batch)
    assert g.edge_index.shape[1] == before  # the original graph is unchanged
    assert g2.edge_index.shape[1] == before + 2
    assert _edges(g2, "USER_TAGGED") == {(0, g.offsets["Attribute"] + 1)}
    assert _edges(g2, "USER_TAGGED~rev") == {(g.offsets["Attribute"] + 1, 0)}
    bad = EdgeBatch()
    bad.add("NOT_A_RELATION", 0, 1)
    with pytest.raises(ValueError, match="NOT_A_RELATION"):
        with_edges(g, bad)


def test_tags_only_attributes_an_image_truly_has(graph) -> None:
    _, g, truth = graph
    rows = [0, 1, 2]
    batch = tag_edges(g, truth, ["red", "shirt", "unknown-attribute"], rows)
    names = {v: k for k, v in g.index["Attribute"].items()}
    for src, dst in zip(*batch.edges["USER_TAGGED"], strict=True):
        image = g.ids["Image"][src]
        assert src in rows and names[dst - g.offsets["Attribute"]] in truth[image]
    assert batch.count("USER_TAGGED") == sum(len({"red", "shirt"} & truth[g.ids["Image"][r]]) for r in rows)


def test_likes_link_images_once_in_id_order_and_never_the_candidate_to_itself(graph) -> None:
    _, g, _ = graph
    qs = g.queries["train"].subset([0, 1])
    cand0, cand1 = int(qs.candidate[0]), int(qs.candidate[1])
    a, b, c = [r for r in range(len(g.ids["Image"])) if r not in (cand0, cand1)][:3]
    liked = torch.tensor([[cand0, b, a], [a, b, c]])  # (a, b) liked for both queries
    batch = like_edges(g, qs, liked)
    ids = g.ids["Image"]
    pairs = list(zip(*batch.edges["LIKED_WITH"], strict=True))
    assert len(pairs) == len(set(pairs)) == 5  # 3 + 3 pairs, (a, b) once
    assert all(ids[x] < ids[y] for x, y in pairs)  # the database's canonical direction
    liked_from = list(zip(*batch.edges["LIKED_FROM"], strict=True))
    assert (cand0, cand0) not in liked_from and len(liked_from) == 5  # the candidate is not linked to itself
    assert batch.count("LIKED_FOR") == 6


def test_nearest_images_leave_out_the_target_and_the_candidate() -> None:
    emb = torch.tensor([[1.0, 0.0], [0.99, 0.1], [0.98, 0.2], [0.0, 1.0], [0.97, 0.25]])
    near = nearest_images(emb, targets=torch.tensor([0]), pool=torch.arange(5), k=2, exclude=torch.tensor([1]))
    assert near.tolist() == [[2, 4]]


def test_training_interactions_touch_only_training_data_and_untested_attributes(graph) -> None:
    _, g, truth = graph
    config = SimulationConfig(tag_skip=2, tag_attributes=3, tag_share=1.0, like_examples=5,
                              like_share=1.0, liked_per_example=3)
    sim = training_interactions(g, truth, config)
    ranked = attributes_by_frequency(truth, [i for i, s in zip(g.ids["Image"], g.image_split, strict=True)
                                            if s == "train"])
    assert sim.tagged_attributes == ranked[2:5]
    counts = sim.graph.relation_counts()
    for relation in ("USER_TAGGED", "LIKED_WITH", "LIKED_FOR", "LIKED_FROM"):
        assert counts[relation] > 0 and counts[relation] == counts[f"{relation}~rev"]
        for src, dst in _edges(sim.graph, relation):
            for node in (src, dst):
                if node < g.offsets["Caption"]:
                    assert g.image_split[node] == "train"
    assert set(sim.liked_queries.ids) <= set(g.queries["train"].ids) and len(sim.liked_queries) == 5
    capped = training_interactions(g, truth, SimulationConfig(like_examples=2000, like_share=0.1))
    assert len(capped.liked_queries) == round(0.1 * len(g.queries["train"]))  # a small catalog: a share
    # The liked queries' captions speak to images, so every training step keeps them in the graph.
    assert set(sim.liked_queries.caption.tolist()) <= set(sim.graph.speaking_captions().tolist())


def test_simulated_interactions_weigh_one_beside_a_weighted_graph() -> None:
    from readers.graph_records import TypedEdge

    export, feats = synthetic_export(per_cell=6)
    export.edges.append(TypedEdge("HAS_ATTRIBUTE:predicted", "Image", export.images[0].id, "Attribute", "red", 0.4))
    config = model_config("graph_predicted", ExperimentConfig())
    g = build_graph_tensors(export, feats, config.graph)
    assert g.edge_weight is not None
    batch = EdgeBatch()
    batch.add("USER_TAGGED", 0, g.offsets["Attribute"] + 1)
    g2 = with_edges(g, batch)
    assert g2.edge_weight is not None and len(g2.edge_weight) == g2.edge_index.shape[1]
    torch.testing.assert_close(g2.edge_weight[: len(g.edge_weight)], g.edge_weight)
    assert g2.edge_weight[len(g.edge_weight):].tolist() == [1.0, 1.0]
    assert with_edges(build_graph_tensors(*synthetic_export(per_cell=6), config.graph), batch).edge_weight is None
