"""Training on sampled neighbourhoods learns the task, as full-graph training does, on the synthetic graph."""

from __future__ import annotations

import pytest
import torch

from gnn.config import ExperimentConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.nn.model import GraphRetriever
from gnn.training.fit import model_config
from gnn.training.train import train_retriever
from tests.gnn.synthetic import synthetic_export


def _run(sampler: str, epochs: int = 25, max_steps: int | None = None):
    config = ExperimentConfig(train=TrainConfig(epochs=epochs, batch_size=32, negatives=16, patience=25, lr=5e-3,
                                                sampler=sampler, fanouts=(4, 4, 4), max_steps_per_epoch=max_steps))
    config.model.hidden = 16
    export, feats = synthetic_export(per_cell=4)
    g = build_graph_tensors(export, feats, model_config("graph_catalog", config).graph)
    torch.manual_seed(0)  # the same initial weights for both samplers
    model = GraphRetriever({k: v.shape[1] for k, v in g.features.items()}, g.relations, config.model)
    return train_retriever(model, g, config.train)


def test_neighbour_sampled_training_learns_like_full_graph_training() -> None:
    full, sampled = _run("full"), _run("neighbour")
    # (mean of validation R@1 and R@10: R@10 alone is near 100 on this small gallery)
    assert sampled.best_val_score >= sampled.history[0].val_score + 5
    assert sampled.best_val_score >= full.best_val_score - 10


def test_a_step_cap_trains_that_many_batches_an_epoch_and_says_of_how_many() -> None:
    whole = _run("neighbour", epochs=1).history[0]
    capped = _run("neighbour", epochs=2, max_steps=1).history
    assert whole.steps == whole.steps_per_epoch > 1
    assert [(h.steps, h.steps_per_epoch) for h in capped] == [(1, whole.steps_per_epoch)] * 2
    with pytest.raises(ValueError, match="max_steps_per_epoch is 0"):
        _run("neighbour", epochs=1, max_steps=0)


def test_unknown_sampler_and_wrong_fanouts_are_named() -> None:
    with pytest.raises(ValueError, match="sampler"):
        _run("random-walk")
    config = ExperimentConfig(train=TrainConfig(epochs=1, sampler="neighbour", fanouts=(4, 4)))
    export, feats = synthetic_export(per_cell=2)
    g = build_graph_tensors(export, feats, model_config("graph_catalog", config).graph)
    model = GraphRetriever({k: v.shape[1] for k, v in g.features.items()}, g.relations, config.model)
    with pytest.raises(ValueError, match="fanouts has 2 values for a model of 3 layers"):
        train_retriever(model, g, config.train)
