"""A published engine over the synthetic catalog (no server, no encoders): the engine tests' fixture."""

from __future__ import annotations

import numpy as np
import pytest

from engine.pipeline import GraphFeatures, PreparedGraph, publish
from engine.workspace import Workspace
from gnn.config import ExperimentConfig, TrainConfig
from gnn.data.graph import build_graph_tensors
from gnn.features.cache import FeatureCache, text_key
from gnn.training.fit import fit_model, model_config
from tests.gnn.synthetic import synthetic_export

TEXT = {"config": "unused-in-tests", "name": "synthetic-text", "dim": 8}


@pytest.fixture
def published(tmp_path):
    """A one-epoch graph model over the synthetic catalog, published into a fresh workspace whose text
    cache already holds every caption and attribute (so no encoder is ever built)."""
    export, feats = synthetic_export(per_cell=4)
    ws = Workspace(tmp_path / "home")
    cache = FeatureCache(ws.features, TEXT["name"], TEXT["dim"])
    texts = [c.text for c in export.captions] + list(export.attributes)
    vectors = np.concatenate([feats["Caption"], feats["Attribute"]])
    unique = dict(zip(texts, vectors, strict=True))
    cache.put_many([text_key(t) for t in unique], np.stack(list(unique.values())))
    config = model_config("graph_catalog", ExperimentConfig(train=TrainConfig(epochs=1, batch_size=64, negatives=16)))
    config.model.hidden = 16
    config.simulation.enabled = False
    g = build_graph_tensors(export, feats, config.graph)
    run = fit_model("graph_catalog", g, config, ws.checkpoints, log=lambda s: None)
    prepared = PreparedGraph(export, GraphFeatures(feats, [], [], {"text": TEXT, "image": {"dim": 16}}))
    engine = publish(run, prepared, ws)
    return ws, engine, export, feats
