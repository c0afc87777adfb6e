"""Training: early stopping keeps the best epoch's weights, and a checkpoint is reused only for the same
config and data."""

from __future__ import annotations

import torch

from gnn.config import ExperimentConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.nn.model import GraphRetriever
from gnn.training.fit import fit_model, model_config
from gnn.training.train import train_retriever
from tests.gnn.synthetic import synthetic_export


def _graph(config: ExperimentConfig):
    export, feats = synthetic_export(per_cell=4)
    return build_graph_tensors(export, feats, model_config("graph_catalog", config).graph)


def test_training_stops_when_validation_stops_improving_and_keeps_the_best_weights() -> None:
    config = ExperimentConfig(train=TrainConfig(epochs=30, batch_size=64, negatives=16, patience=3, lr=0.0))
    config.model.hidden = 16
    g = _graph(config)
    model = GraphRetriever({k: v.shape[1] for k, v in g.features.items()}, g.relations, config.model)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    phases: list[tuple[str, int]] = []
    advanced: list[int] = []

    def start_phase(name: str, total: int):
        phases.append((name, total))
        return advanced.append

    result = train_retriever(model, g, config.train, start_phase=start_phase)
    # lr 0: nothing improves after the first epoch, so training ends after ``patience`` more.
    assert len(result.history) == 1 + config.train.patience and result.best_epoch == 1
    assert all(torch.equal(v, start[k]) for k, v in model.state_dict().items())
    assert phases and sum(advanced) == phases[0][1]  # the progress bar ends where training did


def test_a_checkpoint_is_reused_for_the_same_config_and_data_only(tmp_path) -> None:
    config = ExperimentConfig(train=TrainConfig(epochs=2, batch_size=64, negatives=16))
    config.model.hidden = 16
    config.simulation.enabled = False
    g = _graph(config)
    first = fit_model("graph_catalog", g, model_config("graph_catalog", config), tmp_path, log=lambda s: None)
    again = fit_model("graph_catalog", g, model_config("graph_catalog", config), tmp_path, log=lambda s: None)
    assert not first.reused and again.reused and again.checkpoint == first.checkpoint
    assert all(torch.equal(v, first.model.state_dict()[k]) for k, v in again.model.state_dict().items())
    config.eval.per_group = 3  # how it is evaluated does not make it another model
    assert fit_model("graph_catalog", g, model_config("graph_catalog", config), tmp_path, log=lambda s: None).reused
    config.train.lr = 5e-3  # how it is trained does
    other = fit_model("graph_catalog", g, model_config("graph_catalog", config), tmp_path, log=lambda s: None)
    assert not other.reused and other.checkpoint != first.checkpoint
