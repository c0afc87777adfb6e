"""Training the second stage, and re-ranking whole query sets with it (the recall table's two-stage rows).

Stage one is any scorer of composed queries against gallery rows (:data:`gnn.training.evaluation.ScoreFn`,
the R-GCN's in practice): its top ``candidates`` per query, the candidate image excluded, become one list.
The ranker learns listwise: a softmax over each list's scores, cross-entropy on the target's place
(lists without their target teach nothing and are left out), on training queries only; validation
queries pick the epoch. Features are standardised for the optimiser and the weights are folded back to the
raw scale, so the saved ranker multiplies the columns as :func:`gnn.ranking.facts.list_features` makes them.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gnn.config import RankerConfig
from gnn.data.graph import GraphTensors, QuerySet
from gnn.ranking.facts import OTHER_KIND, FactTable, QueryFacts, batch_features, feature_names
from gnn.ranking.model import LinearRanker
from gnn.training.evaluation import ScoreFn, balanced_rows, gallery_rows
from readers.progress import StartPhase

Log = Callable[[str], None]
RolesMap = Mapping[str, Mapping[str, set[str]]]  # caption id -> role -> attribute names (GraphExport.caption_roles)


@dataclass
class ResultLists:
    """Stage one's lists for a query set, and their feature matrices."""

    ranked: Tensor  # [q, n] gallery image rows (graph rows), best first
    scores: Tensor  # [q, n] stage one's scores
    target_pos: np.ndarray  # [q] the target's place in its list; -1 where stage one missed it
    features: np.ndarray | None = None  # [q, n, f]


@torch.no_grad()
def stage_one(score_fn: ScoreFn, qs: QuerySet, rows: Tensor, n: int, batch: int = 512) -> ResultLists:
    """The top ``n`` gallery rows per query, the candidate excluded, with their scores."""
    ranked, scores = [], []
    for start in range(0, len(qs), batch):
        sl = slice(start, start + batch)
        s = score_fn(qs.candidate[sl], qs.caption[sl], rows).clone()
        s[rows[None, :] == qs.candidate[sl, None]] = float("-inf")
        top = s.topk(min(n, s.shape[1] - 1), dim=1)  # the candidate (scored -inf) never makes the list
        ranked.append(rows[top.indices])
        scores.append(top.values)
    ranked_t = torch.cat(ranked) if ranked else torch.zeros((0, n), dtype=torch.long)
    scores_t = torch.cat(scores) if scores else torch.zeros((0, n))
    hit = ranked_t == qs.target[:, None]
    pos = torch.where(hit.any(1), hit.float().argmax(1), torch.full((len(qs),), -1)).numpy()
    return ResultLists(ranked_t, scores_t, pos)


def query_facts(facts: FactTable, g: GraphTensors, qs: QuerySet, roles: RolesMap,
                liked: Mapping[int, set[int]] | None = None, exclusive_kinds: Sequence[str] = ()) -> list[QueryFacts]:
    """Each query of ``qs`` as the second stage sees it (roles from the graph's MENTIONS edges)."""
    images, captions = g.ids["Image"], g.ids["Caption"]
    out = []
    for i, (cand, cap) in enumerate(zip(qs.candidate.tolist(), qs.caption.tolist(), strict=True)):
        r = roles.get(captions[cap], {})
        q = QueryFacts.of(facts, images[cand], sorted(r.get("added", ())), sorted(r.get("removed", ())),
                          sorted(r.get("mentioned", ())), exclusive_kinds=exclusive_kinds)
        if liked and i in liked:
            q.liked = {facts.image_row[images[j]] for j in liked[i] if images[j] in facts.image_row}
        out.append(q)
    return out


def fact_rows(facts: FactTable, g: GraphTensors) -> np.ndarray:
    """Graph image row -> fact table row (-1: unknown to the table)."""
    return np.array([facts.image_row.get(i, -1) for i in g.ids["Image"]], dtype=np.int64)


def featurise_lists(ranker: LinearRanker, facts: FactTable, g: GraphTensors, lists: ResultLists,
                    queries: list[QueryFacts], candidates: Tensor, batch: int = 256) -> np.ndarray:
    """[q, n, f] feature matrices of every list (in batches of ``batch`` lists)."""
    to_fact = fact_rows(facts, g)
    images = F.normalize(g.features["Image"], dim=-1)
    ranked, scores = lists.ranked.numpy(), lists.scores.numpy()
    out = np.zeros((*ranked.shape, len(ranker.names)), np.float32)
    for start in range(0, len(ranked), batch):
        sl = slice(start, start + batch)
        similarity = torch.einsum("qnd,qd->qn", images[lists.ranked[sl]], images[candidates[sl]]).numpy()
        out[sl] = batch_features(facts, queries[sl], to_fact[ranked[sl]], scores[sl], ranker.names, ranker.kinds,
                                 similarity)[0]
    return out


def rerank(ranker: LinearRanker, lists: ResultLists) -> Tensor:
    """Each list re-ordered by the ranker (stage one's order where no fact separates its results)."""
    assert lists.features is not None
    w = ranker.weights
    fact_cols = ranker.fact_columns
    out = lists.ranked.clone()
    for q in range(len(out)):
        x = lists.features[q]
        spread = x[:, fact_cols].max(0) - x[:, fact_cols].min(0) if len(x) else np.zeros(0)
        if np.any(spread > 1e-6):
            out[q] = lists.ranked[q][torch.from_numpy(np.argsort(-(x @ w), kind="stable"))]
    return out


def list_recall(ranked: Tensor, target: Tensor, ks: tuple[int, ...] = (1, 10)) -> dict[int, float]:
    hit = ranked == target[:, None]
    return {k: 100.0 * hit[:, :k].any(1).float().mean().item() if len(target) else 0.0 for k in ks}


# --- simulated likes -----------------------------------------------------------------------------------


def simulate_likes(g: GraphTensors, qs: QuerySet, config: RankerConfig, pool: Tensor
                   ) -> tuple[dict[int, set[int]], list[tuple[int, int]], list[tuple[int, int]]]:
    """"I like that" on ``config.like_share`` of ``qs`` (seeded): the shopper likes the target and the
    ``liked_per_example - 1`` pool images nearest it by image features (the candidate excepted).
    Returns query -> liked graph rows, and the LIKED_FROM (image, candidate) and LIKED_WITH pairs."""
    count = round(config.like_share * len(qs))
    if count <= 0 or config.liked_per_example <= 0:
        return {}, [], []
    chosen = sorted(random.Random(config.seed).sample(range(len(qs)), count))
    images = F.normalize(g.features["Image"], dim=-1)
    liked: dict[int, set[int]] = {}
    liked_from, liked_with = [], []
    for q in chosen:
        target, cand = int(qs.target[q]), int(qs.candidate[q])
        sims = images[pool] @ images[target]
        sims[(pool == target) | (pool == cand)] = float("-inf")
        near = pool[sims.topk(min(config.liked_per_example - 1, len(pool))).indices].tolist()
        rows = sorted({target, *near})
        liked[q] = set(rows)
        liked_from += [(r, cand) for r in rows]
        liked_with += [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    return liked, liked_from, liked_with


def with_likes(facts: FactTable, g: GraphTensors, liked_from: list[tuple[int, int]],
               liked_with: list[tuple[int, int]]) -> FactTable:
    """A copy of ``facts`` with simulated likes (pairs of graph rows) added."""
    to_fact = fact_rows(facts, g)

    def pairs(rows: list[tuple[int, int]]) -> np.ndarray:
        mapped = [(to_fact[a], to_fact[b]) for a, b in rows if to_fact[a] >= 0 and to_fact[b] >= 0]
        return np.array(mapped, np.int64).reshape(-1, 2)

    return dataclasses.replace(facts, liked_from=np.concatenate([facts.liked_from, pairs(liked_from)]),
                               liked_with=np.concatenate([facts.liked_with, pairs(liked_with)]))


# --- training ------------------------------------------------------------------------------------------


@dataclass
class RankerEpoch:
    epoch: int
    loss: float
    val_id_r1: float
    val_id_r10: float
    seconds: float


@dataclass
class RankerTraining:
    ranker: LinearRanker
    best_epoch: int
    history: list[RankerEpoch] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)


def ranker_kinds(facts: FactTable) -> list[str]:
    """The kinds a ranker gets its own columns for: the table's, and the pool for kinds it never saw."""
    return sorted(set(facts.kinds) | {OTHER_KIND})


def prepare_lists(ranker: LinearRanker, facts: FactTable, g: GraphTensors, score_fn: ScoreFn, qs: QuerySet,
                  split: str, roles: RolesMap, liked: Mapping[int, set[int]] | None = None) -> ResultLists:
    """Stage one over the ``split`` gallery and the lists' features."""
    lists = stage_one(score_fn, qs, gallery_rows(g, split), ranker.config.candidates)
    queries = query_facts(facts, g, qs, roles, liked, ranker.config.exclusive_kinds)
    lists.features = featurise_lists(ranker, facts, g, lists, queries, qs.candidate)
    return lists


def sample_lists(qs: QuerySet, limit: int, per_group: int | None = None, seed: int = 0) -> QuerySet:
    """The queries a ranker learns from: those with a known target, at most ``per_group`` of a product
    group (None: no cap), then at most ``limit`` in all (seeded)."""
    qs = qs.with_targets()
    if per_group is not None:
        qs = qs.subset(balanced_rows(qs.groups, per_group, seed))
    return qs.with_targets(limit, seed)


def train_ranker(
    facts: FactTable,
    g: GraphTensors,
    score_fn: ScoreFn,
    roles: RolesMap,
    config: RankerConfig,
    log: Log = print,
    start_phase: StartPhase | None = None,
) -> RankerTraining:
    """A ranker trained on ``g``'s training queries (gallery: training images), its epoch chosen on the
    validation queries (gallery: validation images)."""
    torch.manual_seed(config.seed)
    template = LinearRanker.for_kinds(config, ranker_kinds(facts))
    train_qs = sample_lists(g.queries["train"], config.max_train_queries, config.per_group, config.seed)
    val_qs = (sample_lists(g.queries["val"], config.max_val_queries, config.per_group, config.seed)
              if "val" in g.queries else train_qs)
    pool = gallery_rows(g, "train")
    liked, liked_from, liked_with = simulate_likes(g, train_qs, config, pool)
    train_facts = with_likes(facts, g, liked_from, liked_with) if liked else facts
    advance = start_phase("ranker lists", len(train_qs) + len(val_qs)) if start_phase else (lambda n: None)
    train = prepare_lists(template, train_facts, g, score_fn, train_qs, "train", roles, liked)
    advance(len(train_qs))
    val = prepare_lists(template, facts, g, score_fn, val_qs, "val" if "val" in g.queries else "train", roles)
    advance(len(val_qs))
    assert train.features is not None and val.features is not None

    keep = train.target_pos >= 0
    if not keep.any():
        raise ValueError(f"no training query has its target in stage one's top {config.candidates}: the ranker has "
                         "nothing to learn from (train the stage-one model longer, or raise ranker.candidates)")
    x = torch.from_numpy(train.features[keep])
    y = torch.from_numpy(train.target_pos[keep]).long()
    flat = x.reshape(-1, x.shape[-1])
    mean, std = flat.mean(0), flat.std(0).clamp(min=1e-6)
    xs = (x - mean) / std
    xv = (torch.from_numpy(val.features) - mean) / std
    weights = torch.zeros(x.shape[-1], requires_grad=True)
    optimizer = torch.optim.Adam([weights], lr=config.lr)
    best, best_score, best_epoch, stale = None, -1.0, 0, 0
    history: list[RankerEpoch] = []
    log(f"ranker: {int(keep.sum()):,} of {len(keep):,} training lists hold their target "
        f"({len(liked):,} with simulated likes); {len(template.names)} features")
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        logits = xs @ weights
        loss = F.cross_entropy(logits, y) + config.weight_decay * (weights ** 2).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            order = (xv @ weights).argsort(dim=1, descending=True, stable=True)
            recall = list_recall(torch.gather(val.ranked, 1, order), val_qs.target)
        score = (recall[1] + recall[10]) / 2
        history.append(RankerEpoch(epoch, float(loss.item()), recall[1], recall[10], time.perf_counter() - tick))
        stale = 0 if score > best_score + 1e-9 else stale + 1
        if score >= best_score - 1e-9:  # a tie keeps the later, longer-trained weights
            best, best_score, best_epoch = weights.detach().clone(), max(score, best_score), epoch
        if stale >= config.patience:
            break
    assert best is not None
    raw = (best / std).numpy()
    ranker = LinearRanker(config, template.names, template.kinds, raw)
    val_best = next(h for h in history if h.epoch == best_epoch)
    log(f"ranker: best epoch {best_epoch} of {len(history)}, validation id R@1 {val_best.val_id_r1:.1f} "
        f"R@10 {val_best.val_id_r10:.1f} (stage one: {list_recall(val.ranked, val_qs.target)[10]:.1f})")
    counts = {"train_lists": int(len(keep)), "train_lists_with_target": int(keep.sum()),
              "val_lists": len(val_qs), "liked_lists": len(liked)}
    return RankerTraining(ranker, best_epoch, history, counts)


# --- fitting with reuse, and answering a query set -----------------------------------------------------


def ranker_key(model_version: str, config: RankerConfig, facts: FactTable, g: GraphTensors) -> str:
    """What a saved ranker is reused by: the stage-one model, the ranker config, the facts and queries."""
    from gnn.checkpoint import fingerprint

    columns = feature_names(ranker_kinds(facts), config.groups, config.image_similarity)
    return fingerprint(model_version, dataclasses.asdict(config), len(facts), round(float(facts.strength.sum()), 3),
                       facts.kinds, {k: len(v) for k, v in g.queries.items()}, columns)


def fit_ranker(name: str, model_version: str, facts: FactTable, sources: tuple[str, ...], g: GraphTensors,
               score_fn: ScoreFn, roles: RolesMap, config: RankerConfig, checkpoints: Path, log: Log = print,
               start_phase: StartPhase | None = None) -> tuple[LinearRanker, bool]:
    """A ranker for stage one ``model_version`` over ``facts`` (read from HAS_ATTRIBUTE ``sources``),
    trained or reused from ``checkpoints``; (ranker, reused)."""
    key = ranker_key(model_version, config, facts, g)
    path = Path(checkpoints) / f"ranker-{name}-{key}.json"
    if path.exists():
        ranker = LinearRanker.load(path)
        log(f"{name}: reusing {path.name} (best epoch {ranker.meta.get('best_epoch')})")
        return ranker, True
    result = train_ranker(facts, g, score_fn, roles, config, log, start_phase)
    ranker = result.ranker
    ranker.meta = {"version": key, "model_version": model_version, "sources": list(sources),
                   "best_epoch": result.best_epoch,
                   "counts": result.counts, "history": [dataclasses.asdict(h) for h in result.history]}
    ranker.save(path)
    return ranker, False


def two_stage_ranked(ranker: LinearRanker, facts: FactTable, g: GraphTensors, score_fn: ScoreFn, qs: QuerySet,
                     split: str, roles: RolesMap) -> Tensor:
    """[q, candidates] gallery rows per query: stage one re-ordered by the ranker (stage one's own order
    when the config turns the second stage off). Without embedding features, ties are broken in a
    seeded random order rather than stage one's, so that "facts only" uses no embedding beyond the list."""
    lists = stage_one(score_fn, qs, gallery_rows(g, split), ranker.config.candidates)
    if not ranker.config.enabled:
        return lists.ranked
    if not ranker.uses_embedding:
        shuffle = torch.argsort(torch.rand(lists.ranked.shape, generator=torch.Generator().manual_seed(0)), dim=1)
        lists.ranked = torch.gather(lists.ranked, 1, shuffle)
        lists.scores = torch.gather(lists.scores, 1, shuffle)
    lists.features = featurise_lists(ranker, facts, g, lists, query_facts(facts, g, qs, roles, exclusive_kinds=ranker.config.exclusive_kinds),
                                     qs.candidate)
    return rerank(ranker, lists)
