"""The paper's interaction experiments on a model trained with simulated interactions (no retraining)."""

from __future__ import annotations

import pytest
import torch

from experiments.interactions import connection_accuracy, likes, more_metadata
from gnn.config import ExperimentConfig, SimulationConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.data.simulation import like_edges, nearest_images, with_edges
from gnn.training.evaluation import retriever_scorer
from gnn.training.fit import fit_model, model_config
from tests.gnn.synthetic import synthetic_export


@pytest.fixture(scope="module")
def graph():
    export, feats = synthetic_export(per_cell=6)
    config = model_config("graph_catalog", ExperimentConfig())
    return export, build_graph_tensors(export, feats, config.graph), export.image_attributes(("catalog",))


def test_connection_accuracy_counts_queries_with_a_second_liked_image() -> None:
    ranked = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
    liked = torch.tensor([[1, 3], [5, 0], [0, 0]])
    accuracy, with_one = connection_accuracy(ranked, liked, k=3)
    assert with_one == 2 and accuracy == 50.0


def test_a_model_trained_with_simulations_answers_interactions_without_retraining(graph, tmp_path) -> None:
    export, g, truth = graph
    config = ExperimentConfig(train=TrainConfig(epochs=15, batch_size=64, negatives=32, patience=15, lr=1e-2),
                              simulation=SimulationConfig(tag_skip=0, tag_attributes=3, like_examples=20, like_share=1.0,
                                                          liked_per_example=3))
    config.model.hidden = 32
    config = model_config("graph_catalog", config)
    run = fit_model("graph_catalog", g, config, tmp_path, log=lambda s: None, truth=truth)
    assert run.meta["simulated"]["liked_queries"] == 20
    assert run.meta["simulated"]["edges"]["USER_TAGGED"] > 0
    assert run.graph is g  # evaluation and publishing use the real graph, not the simulated one

    rows = more_metadata(run.model, g, truth, tops=(3,), fractions=(1.0, 0.5), kinds=dict(export.attributes))
    by_name = {r.name: r for r in rows}  # top 3: the three article types, one per image
    assert rows[0].name == "predicted attributes" and rows[0].edges == {}
    n = len(g.ids["Image"])
    assert by_name["top 3 tagged, every image"].images_tagged == by_name["top 3 tagged, every image"].edges[
        "USER_TAGGED"] == n
    assert by_name["top 3 tagged, 50% of images"].images_tagged == n // 2
    assert by_name["every colour tagged, every image"].edges["USER_TAGGED"] == n  # one colour each
    assert rows[-1].name == "every attribute tagged, every image"
    assert rows[-1].edges["USER_TAGGED"] == sum(len(v) for v in truth.values())

    result = likes(run.model, g, examples=10, liked_per_example=3)
    assert result.examples == 10 and result.edges["LIKED_FOR"] == 30

    # The liked images reach the queries: their scores move (no retraining, same weights).
    qs = g.queries["test"].subset(list(range(5)))
    everything = torch.arange(len(g.ids["Image"]))
    liked = nearest_images(g.features["Image"], qs.target, everything, 3, qs.candidate)
    after_likes = with_edges(g, like_edges(g, qs, liked))
    before = retriever_scorer(run.model, g)(qs.candidate, qs.caption, everything)
    after = retriever_scorer(run.model, after_likes)(qs.candidate, qs.caption, everything)
    assert (after - before).abs().max() > 1e-3
