"""Training any retriever (the graph model and the learned baselines) with one loop and one budget.

Each step encodes the graph (the R-GCN runs full-batch: the whole graph fits in memory here), composes
a batch of training queries and takes the link-prediction loss plus, where the model has them, the
ComposeAE terms. Validation recall is measured every epoch; training stops early when it stops
improving and the best weights are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from gnn.config import TrainConfig
from gnn.data.graph import GraphTensors, QuerySet
from gnn.data.phrasings import PhrasingBank
from gnn.nn.losses import link_prediction_loss
from gnn.training.evaluation import evaluate, retriever_scorer
from gnn.training.loop import EarlyStopping, EpochLog, TrainResult, seed_everything
from readers.progress import StartPhase


def train_retriever(
    model: nn.Module,
    g: GraphTensors,
    config: TrainConfig,
    on_epoch: Callable[[EpochLog], None] | None = None,
    extra: QuerySet | None = None,
    extra_per_batch: int = 0,
    start_phase: StartPhase | None = None,
    phrasings: PhrasingBank | None = None,
) -> TrainResult:
    """Train ``model`` on ``g``'s training queries. ``extra_per_batch`` queries drawn from ``extra`` (the
    ones with simulated likes, too few to matter in the shuffle) join every batch. ``phrasings``: the
    batch's own queries take captions drawn from it (another phrasing, or no MENTIONS), per batch.
    ``start_phase(name, total)`` returns a function advanced once per batch (a progress bar).
    ``config.sampler = "neighbour"`` trains on sampled neighbourhoods instead (:mod:`gnn.training.sampled`),
    with the catalog's captions only (phrasings are drawn by the full-graph loop alone)."""
    if config.sampler == "neighbour":
        from gnn.training.sampled import train_sampled

        if g.edge_weight is not None:
            raise ValueError("the neighbour sampler passes unweighted messages, and this graph weighs its "
                             "predicted edges: train it full-graph (train.sampler \"full\") or with "
                             "graph.edge_weights false")

        return train_sampled(model, g, config, on_epoch, extra, extra_per_batch, start_phase)
    if config.sampler != "full":
        raise ValueError(f"unknown train.sampler {config.sampler!r} (full | neighbour)")
    generator = seed_everything(config.seed)
    train = g.queries["train"].with_targets()
    val = g.queries["val"].with_targets(config.max_val_queries, config.seed) if "val" in g.queries else None
    train_probe = train.with_targets(config.max_val_queries, config.seed + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult()
    stopping = EarlyStopping(result, config.patience)
    steps = (len(train) + config.batch_size - 1) // config.batch_size

    advance = start_phase(f"training {getattr(model, 'name', 'model')}", config.epochs * steps) if start_phase \
        else (lambda n: None)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator)
        totals = np.zeros(3)
        for b in range(steps):
            rows = order[b * config.batch_size : (b + 1) * config.batch_size]
            cand, cap, tgt = train.candidate[rows], train.caption[rows], train.target[rows]
            own = cap
            if extra is not None and extra_per_batch > 0:
                pick = torch.randperm(len(extra), generator=generator)[:extra_per_batch]
                cand = torch.cat([cand, extra.candidate[pick]])
                cap = torch.cat([cap, extra.caption[pick]])
                tgt = torch.cat([tgt, extra.target[pick]])
            # Only the batch's captions (and any that speak to other nodes) are encoded.
            sub, cap = g.restrict_captions(cap)
            if phrasings is not None:
                sub = phrasings.apply(sub, cap[: len(own)], own, generator)
            state = model.encode(sub)
            composed, phi = model.compose(state, sub, cand, cap)
            link = link_prediction_loss(
                composed, model.gallery(state, sub), tgt, config.negatives, config.temperature, generator
            )
            aux = (
                model.aux_loss(state, sub, cand, cap, tgt, composed, phi)
                if config.compose_weight > 0
                else torch.zeros(())
            )
            loss = config.link_weight * link + config.compose_weight * aux
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            totals += [loss.item(), link.item(), aux.item()]
            advance(1)
        score = retriever_scorer(model, g)
        train_r = evaluate(score, g, train_probe, split="train", ks=(1, 10))
        val_r = evaluate(score, g, val, split="val", ks=(1, 10)) if val is not None else train_r
        log = EpochLog(
            epoch,
            *(totals / steps).tolist(),
            train_r["id_R@10"],
            val_r["id_R@10"],
            val_r["cap_R@10"],
            (val_r["id_R@1"] + val_r["id_R@10"]) / 2,
            time.perf_counter() - start,
        )
        if stopping.end_epoch(log, model, on_epoch):
            advance((config.epochs - epoch) * steps)  # the bar ends where training did
            break
    stopping.restore(model)
    model.eval()
    return result
