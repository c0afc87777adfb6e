"""Fitting a retriever with a budget: the graph models (``graph_catalog`` / ``graph_predicted`` /
``graph_caption``: the R-GCN with HAS_ATTRIBUTE edges of that source) and the learned baselines (``tirg``,
``composeae``). A model is reused from a checkpoint made with the same config and data, else trained (graph
models with simulated interactions, see :mod:`gnn.data.simulation`) and checkpointed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from gnn.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from gnn.config import ExperimentConfig
from gnn.data.graph import GraphTensors
from gnn.data.phrasings import PhrasingBank
from gnn.data.simulation import TruthMap, training_interactions
from gnn.features.rows import feature_checksum
from gnn.nn.baselines import TIRG, ComposeAE
from gnn.nn.model import GraphRetriever
from gnn.training.train import train_retriever
from readers.progress import StartPhase

GRAPH_SOURCES = {"graph_catalog": "catalog", "graph_predicted": "predicted", "graph_caption": "caption"}
LEARNED = {"tirg", "composeae", *GRAPH_SOURCES}
Log = Callable[[str], None]
EncodeTexts = Callable[[Sequence[str]], np.ndarray]


def model_config(name: str, base: ExperimentConfig) -> ExperimentConfig:
    """The config a model trains with: the base, with the graph model's attribute source set."""
    if name in GRAPH_SOURCES:
        graph = dataclasses.replace(base.graph, attribute_sources=(GRAPH_SOURCES[name],))
        return dataclasses.replace(base, graph=graph)
    return base


def make_model(name: str, g: GraphTensors, config: ExperimentConfig) -> nn.Module:
    dims = {k: v.shape[1] for k, v in g.features.items()}
    m = config.model
    if name in GRAPH_SOURCES:
        return GraphRetriever(dims, g.relations, m)
    if name == "tirg":
        return TIRG(dims["Image"], dims["Caption"], m.hidden, m.dropout)
    if name == "composeae":
        return ComposeAE(dims["Image"], dims["Caption"], m.hidden, m.dropout)
    raise ValueError(f"{name!r} is not a learned model")


def data_fingerprint(g: GraphTensors) -> dict:
    """What a checkpoint's data must match to be reused: sizes, relation counts, feature checksums."""
    data = {
        "nodes": {k: len(v) for k, v in g.ids.items()},
        "relations": g.relation_counts(),
        "queries": {k: len(v) for k, v in g.queries.items()},
        "features": {k: round(feature_checksum(v), 3) for k, v in g.features.items()},
        "ids": fingerprint(g.ids["Image"][:1000], g.ids["Caption"][:1000]),
    }
    if g.edge_weight is not None:  # same edges with other confidences are other data
        data["edge_weights"] = round(float(g.edge_weight.double().sum()), 3)
    return data


@dataclass
class ModelRun:
    name: str
    model: nn.Module | None
    graph: GraphTensors
    meta: dict = field(default_factory=dict)  # data fingerprint, best epoch, training history
    reused: bool = False
    checkpoint: Path | None = None
    seconds: float = 0.0


def fit_model(
    name: str,
    g: GraphTensors,
    config: ExperimentConfig,
    checkpoints: Path,
    log: Log = print,
    start_phase: StartPhase | None = None,
    truth: TruthMap | None = None,
    encode_texts: EncodeTexts | None = None,
) -> ModelRun:
    """Train, or reuse a checkpoint made with the same config and data.

    Graph models train with simulated interactions (``config.simulation``) built from ``truth``, the
    catalog attributes of each image; the returned run's graph is ``g`` itself, without them. They also
    train with captions in many phrasings (``config.phrasing``), whose texts ``encode_texts`` featurises
    (with the encoder the graph's caption features came from); without it they train on the graph's own
    captions, and the config they are saved with says so.
    """
    if name in GRAPH_SOURCES and config.phrasing.enabled and (encode_texts is None or not g.caption_mentions()):
        why = "no text encoder given" if encode_texts is None else "the graph keeps no caption roles"
        log(f"{name}: training on the graph's own captions only ({why})")
        config = dataclasses.replace(config, phrasing=dataclasses.replace(config.phrasing, enabled=False))
    data = data_fingerprint(g)
    simulate = name in GRAPH_SOURCES and config.simulation.enabled
    config_key = config.training_key()
    if name not in GRAPH_SOURCES:  # baselines have no interaction relations: their checkpoints stay valid
        config_key.pop("simulation")
        config_key.pop("phrasing")
    bank = None
    if name in GRAPH_SOURCES and config.phrasing.enabled:
        rows = g.queries["train"].with_targets().caption.tolist() if "train" in g.queries else []
        bank = PhrasingBank(g, rows, config.phrasing, start_phase=start_phase)
        data = {**data, "phrasings": bank.fingerprint()}  # the renderings and their parses decide the model too
    key = fingerprint(name, config_key, data)
    path = checkpoints / f"{name}-{key}.pt"
    model = make_model(name, g, config)
    if path.exists():
        ckpt = load_checkpoint(path)
        model.load_state_dict(ckpt.state_dict)
        model.eval()
        log(f"{name}: reusing {path.name} (best epoch {ckpt.meta.get('best_epoch')})")
        return ModelRun(name, model, g, ckpt.meta, reused=True, checkpoint=path)
    start = time.perf_counter()
    train_graph, liked, simulated = g, None, {}
    if simulate:
        if truth is None:
            raise ValueError(f"{name}: simulated interactions need the catalog attributes (truth)")
        sim = training_interactions(g, truth, config.simulation)
        train_graph, liked = sim.graph, sim.liked_queries
        simulated = {"edges": sim.counts, "tagged_attributes": sim.tagged_attributes,
                     "liked_queries": len(liked) if liked is not None else 0}
        shown = ", ".join(sim.tagged_attributes[:10]) + (" ..." if len(sim.tagged_attributes) > 10 else "")
        log(f"{name}: simulated interactions {sim.counts}; {len(sim.tagged_attributes)} attributes tagged ({shown})")
    phrased = {}
    if bank is not None:
        bank.featurise(encode_texts)
        phrased = {"captions": bank.captions, "texts": len(bank)}
        log(f"{name}: {bank.captions:,} training captions in {len(bank):,} phrased texts")
    result = train_retriever(
        model,
        train_graph,
        config.train,
        start_phase=start_phase,
        on_epoch=lambda e: log(
            f"{name} epoch {e.epoch}: loss {e.loss:.3f} "
            f"train id_R@10 {e.train_id_r10:.1f} val id_R@10 "
            f"{e.val_id_r10:.1f} ({e.seconds:.1f} s)"
        ),
        extra=liked,
        extra_per_batch=config.simulation.liked_per_batch,
        phrasings=bank,
    )
    meta = {
        "data": data,
        "simulated": simulated,
        "phrasings": phrased,
        "best_epoch": result.best_epoch,
        "best_val_id_r10": result.best_val_id_r10,
        "history": [dataclasses.asdict(h) for h in result.history],
    }
    save_checkpoint(
        path, model, name, config, g.relations, g.ids, {k: v.shape[1] for k, v in g.features.items()}, meta
    )
    return ModelRun(name, model, g, meta, checkpoint=path, seconds=time.perf_counter() - start)
