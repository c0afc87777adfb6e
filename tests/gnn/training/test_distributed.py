"""Data-parallel training in two processes (gloo on this machine): the copies stay in step and learn."""

from __future__ import annotations

import torch

from gnn.config import ExperimentConfig, GraphConfig, ModelConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.nn.model import GraphRetriever
from gnn.training.distributed import train_distributed
from gnn.training.evaluation import evaluate, retriever_scorer
from tests.gnn.synthetic import synthetic_export


def _graph():
    export, feats = synthetic_export(per_cell=4)
    return build_graph_tensors(export, feats, GraphConfig()), {k: v.shape[1] for k, v in feats.items()}


def make_model() -> GraphRetriever:
    g, dims = _graph()
    torch.manual_seed(0)
    return GraphRetriever(dims, g.relations, ModelConfig(hidden=16))


def test_two_processes_train_one_model_in_step() -> None:
    g, _ = _graph()
    config = ExperimentConfig(train=TrainConfig(epochs=12, batch_size=16, negatives=16, patience=12, lr=5e-3,
                                                sampler="neighbour", fanouts=(4, 4, 4))).train
    state, result, checksums = train_distributed(make_model, g, config, world=2)
    assert len(checksums) == 2 and abs(checksums[0] - checksums[1]) < 1e-6  # the same weights in both
    model = make_model()
    before = evaluate(retriever_scorer(model.eval(), g), g, g.queries["val"], split="val", ks=(1, 10))
    model.load_state_dict(state)
    after = evaluate(retriever_scorer(model.eval(), g), g, g.queries["val"], split="val", ks=(1, 10))
    assert after["id_R@1"] + after["id_R@10"] > before["id_R@1"] + before["id_R@10"]
    assert result.history and result.best_epoch >= 1
