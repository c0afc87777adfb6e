"""The experiment config: overrides, files and what decides a checkpoint."""

from __future__ import annotations

import json

import pytest

from gnn.config import ExperimentConfig, SimulationConfig
from readers.datasets import PROJECT_ROOT


def test_config_overrides_name_what_is_wrong() -> None:
    config = ExperimentConfig.from_overrides({"simulation": {"enabled": False}, "train": {"epochs": 3}})
    assert config.simulation.enabled is False and config.train.epochs == 3
    assert config.simulation.like_examples == SimulationConfig().like_examples  # the rest stays default
    with pytest.raises(ValueError, match="simulaton"):
        ExperimentConfig.from_overrides({"simulaton": {}})
    with pytest.raises(ValueError, match="epoch"):
        ExperimentConfig.from_overrides({"train": {"epoch": 3}})


def test_config_files_and_command_line_values_layer_over_the_defaults(tmp_path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochs": 7, "lr": 0.01}, "features": {"text_encoder": "x"}}))
    config = ExperimentConfig.from_file(path, epochs=3, seed=None)
    assert config.train.epochs == 3 and config.train.lr == 0.01 and config.train.seed == 0
    assert config.features.text_encoder == "x"
    assert ExperimentConfig.from_dict(config.to_dict()) == config  # what a checkpoint stores, read back
    path.write_text("{not json")
    with pytest.raises(ValueError, match="c.json"):
        ExperimentConfig.from_file(path)


def test_the_training_key_ignores_how_a_model_is_evaluated() -> None:
    a, b = ExperimentConfig(), ExperimentConfig()
    b.eval.per_group = 5
    assert a.training_key() == b.training_key()
    b.features.image_encoder = "resnet18"
    assert a.training_key() != b.training_key()


def test_a_checkpoint_from_before_edge_weights_reads_every_edge_as_one() -> None:
    assert ExperimentConfig().graph.edge_weights is True
    old = ExperimentConfig().to_dict()
    del old["graph"]["edge_weights"]
    assert ExperimentConfig.from_dict(old).graph.edge_weights is False
    assert ExperimentConfig.from_file(None).graph.edge_weights is True
    for name in ("link-prediction-only", "compositional-only", "both-losses", "unweighted-edges"):
        config = ExperimentConfig.from_file(PROJECT_ROOT / "configs" / f"{name}.json")  # every shipped file parses
        assert (config.train.link_weight, config.train.compose_weight) == {
            "link-prediction-only": (1.0, 0.0), "compositional-only": (0.0, 1.0)}.get(name, (1.0, 1.0))
        assert config.graph.edge_weights is (name != "unweighted-edges")
