"""Mini-batch training over sampled neighbourhoods (``TrainConfig.sampler = "neighbour"``).

The same loss, budget, validation and early stopping as the full-graph loop (:mod:`gnn.training.train`),
but each step runs the R-GCN over the batch's sampled neighbourhood (:mod:`gnn.data.sampling`) instead of
the whole graph: the batch's captions, candidates and targets and the step's random negative images are
the seeds, so a step costs the same at 10 thousand and at a million products. Validation embeds the graph
exactly (no sampling), with only the validation queries' captions, which gives the same embeddings as the
whole graph (captions that only listen change no other node).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from gnn.config import TrainConfig
from gnn.data.graph import GraphTensors, QuerySet
from gnn.data.sampling import NeighbourSampler
from gnn.nn.losses import link_prediction_loss
from gnn.training.evaluation import evaluate, retriever_scorer
from gnn.training.loop import EarlyStopping, EpochLog, TrainResult, seed_everything
from readers.progress import StartPhase


def restricted_queries(g: GraphTensors, sets: list[QuerySet]) -> tuple[GraphTensors, list[QuerySet]]:
    """``g`` with only the captions of ``sets`` (and those that speak), and the sets re-pointed at it."""
    rows = torch.cat([s.caption for s in sets]) if sets else torch.zeros(0, dtype=torch.long)
    sub, new = g.restrict_captions(rows)
    out, at = [], 0
    for s in sets:
        out.append(QuerySet(s.ids, new[at : at + len(s)], s.candidate, s.target, s.groups))
        at += len(s)
    return sub, out


def train_sampled(
    model: nn.Module,
    g: GraphTensors,
    config: TrainConfig,
    on_epoch: Callable | None = None,
    extra: QuerySet | None = None,
    extra_per_batch: int = 0,
    start_phase: StartPhase | None = None,
    rank: int = 0,
    world: int = 1,
    sync_gradients: Callable[[nn.Module], None] | None = None,
):
    """Train ``model`` on ``g``'s training queries, one sampled neighbourhood per batch; see
    :func:`gnn.training.train.train_retriever` for the arguments and the result.

    Data-parallel (:mod:`gnn.training.distributed`): ``world`` processes share the epoch's batch order,
    process ``rank`` takes every ``world``-th batch and samples with its own random stream, and
    ``sync_gradients(model)`` averages the gradients across them before each step, so every process takes
    the same step. Validation is deterministic, so every process reaches the same early-stopping decision."""

    layers = len(getattr(getattr(model, "encoder", None), "convs", ()))
    if layers and len(config.fanouts) != layers:
        raise ValueError(f"train.fanouts has {len(config.fanouts)} values for a model of {layers} layers")
    generator = seed_everything(config.seed)  # the batch order: the same in every process
    sampling = torch.Generator().manual_seed(config.seed + 7919 * rank) if world > 1 else generator
    sampler = NeighbourSampler(g, config.fanouts, sampling)
    train = g.queries["train"].with_targets()
    val = g.queries["val"].with_targets(config.max_val_queries, config.seed) if "val" in g.queries else None
    train_probe = train.with_targets(config.max_val_queries, config.seed + 1)
    probe_graph, probes = restricted_queries(g, [train_probe] + ([val] if val is not None else []))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    result = TrainResult()
    stopping = EarlyStopping(result, config.patience)
    steps = (len(train) + config.batch_size - 1) // config.batch_size
    mine = [b for b in range(steps) if b % world == rank]
    mine = mine[: (steps // world) or len(mine)]  # every process takes as many steps (they step together)
    if config.max_steps_per_epoch is not None:
        if config.max_steps_per_epoch < 1:
            raise ValueError(f"train.max_steps_per_epoch is {config.max_steps_per_epoch}; it must be at least 1 (or null)")
        mine = mine[: max(1, config.max_steps_per_epoch // world)]
    n_images = len(g.ids["Image"])
    cap_off = g.offsets["Caption"]

    taken = len(mine) * world
    advance = start_phase(f"training {getattr(model, 'name', 'model')} (sampled)", config.epochs * taken) \
        if start_phase else (lambda n: None)
    for epoch in range(1, config.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator)
        totals = np.zeros(3)
        for b in mine:
            rows = order[b * config.batch_size : (b + 1) * config.batch_size]
            cand, cap, tgt = train.candidate[rows], train.caption[rows], train.target[rows]
            if extra is not None and extra_per_batch > 0:
                pick = torch.randperm(len(extra), generator=sampling)[:extra_per_batch]
                cand = torch.cat([cand, extra.candidate[pick]])
                cap = torch.cat([cap, extra.caption[pick]])
                tgt = torch.cat([tgt, extra.target[pick]])
            negatives = torch.randint(n_images, (config.negatives,), generator=sampling)
            sample = sampler.sample(torch.cat([cap + cap_off, cand, tgt, negatives]))
            sub = sample.graph
            l_cand, l_tgt = sample.local_rows("Image", cand, g), sample.local_rows("Image", tgt, g)
            l_cap, l_neg = sample.local_rows("Caption", cap, g), sample.local_rows("Image", negatives, g)
            state = model.encode(sub)
            composed, phi = model.compose(state, sub, l_cand, l_cap)
            link = link_prediction_loss(composed, model.gallery(state, sub), l_tgt, config.negatives,
                                        config.temperature, sampling, negative_rows=l_neg)
            aux = (model.aux_loss(state, sub, l_cand, l_cap, l_tgt, composed, phi)
                   if config.compose_weight > 0 else torch.zeros(()))
            loss = config.link_weight * link + config.compose_weight * aux
            optimizer.zero_grad()
            loss.backward()
            if sync_gradients is not None:
                sync_gradients(model)
            optimizer.step()
            totals += [loss.item(), link.item(), aux.item()]
            advance(world)
        evaluated = time.perf_counter()
        with torch.no_grad():  # the graph encoded a layer at a time, no activations kept: any size fits
            score = retriever_scorer(model, probe_graph)
            train_r = evaluate(score, probe_graph, probes[0], split="train", ks=(1, 10))
            val_r = evaluate(score, probe_graph, probes[1], split="val", ks=(1, 10)) if val is not None else train_r
        log = EpochLog(epoch, *(totals / max(1, len(mine))).tolist(), train_r["id_R@10"], val_r["id_R@10"], val_r["cap_R@10"],
                       (val_r["id_R@1"] + val_r["id_R@10"]) / 2, time.perf_counter() - start,
                       time.perf_counter() - evaluated, len(mine) * world, steps)
        if stopping.end_epoch(log, model, on_epoch):
            advance((config.epochs - epoch) * taken)  # the bar ends where training did
            break
    stopping.restore(model)
    model.eval()
    return result
