"""Recall@K for composed retrieval, the Fashion200K way, with the candidate excluded explicitly.

Exact-id match: the target itself is in the top K. Caption match: any image in the top K has the
target's caption (here the normalised product title), as in Fashion200K, where many products share a
caption. The gallery is the images of the queries' split (Fashion200K: all test images), or all.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnn.config import EvalConfig
from gnn.data.graph import GraphTensors, QuerySet

KS = EvalConfig().ks  # recall@K reported everywhere
ScoreFn = Callable[[Tensor, Tensor, Tensor], Tensor]  # (candidate, caption, gallery_rows) -> [q, g]


def gallery_rows(g: GraphTensors, split: str | None) -> Tensor:
    """Images of ``split`` (None: every image)."""
    if split is None:
        return torch.arange(len(g.ids["Image"]))
    return torch.tensor([i for i, s in enumerate(g.image_split) if s == split], dtype=torch.long)


def top_k(scores: Tensor, candidate: Tensor, rows: Tensor, k: int) -> Tensor:
    """Top-k gallery rows per query, the candidate image excluded."""
    scores = scores.clone()
    pos = torch.searchsorted(rows, candidate)  # rows are sorted
    pos = pos.clamp(max=len(rows) - 1)
    is_candidate = rows[pos] == candidate
    scores[torch.arange(len(candidate))[is_candidate], pos[is_candidate]] = float("-inf")
    return rows[scores.topk(min(k, scores.shape[1]), dim=1).indices]


def recall_at_k(
    ranked: Tensor, target: Tensor, titles: Sequence[str], ks: Sequence[int] = KS
) -> dict[str, float]:
    """Percentages of queries with a hit in the top K: exact id and caption (title) match."""
    norm = [t.strip().lower() for t in titles]
    out: dict[str, float] = {}
    n = len(target)
    for k in ks:
        top = ranked[:, :k]
        id_hits = (top == target[:, None]).any(dim=1)
        cap_hits = [
            any(norm[j] == norm[t] for j in row) for row, t in zip(top.tolist(), target.tolist(), strict=True)
        ]
        out[f"id_R@{k}"] = 100.0 * id_hits.float().mean().item() if n else 0.0
        out[f"cap_R@{k}"] = 100.0 * sum(cap_hits) / n if n else 0.0
    return out


def rank_queries(
    score_fn: ScoreFn, qs: QuerySet, rows: Tensor, k: int = max(KS), batch: int = 1024
) -> Tensor:
    """[q, k] ranked gallery image indices for every query (in batches of at most ``batch`` queries, fewer
    for a big gallery, so a batch's score matrix stays near 128 MB)."""
    batch = max(1, min(batch, (1 << 25) // max(1, len(rows))))
    out = []
    for start in range(0, len(qs), batch):
        sl = slice(start, start + batch)
        scores = score_fn(qs.candidate[sl], qs.caption[sl], rows)
        out.append(top_k(scores, qs.candidate[sl], rows, k))
    return torch.cat(out) if out else torch.zeros((0, k), dtype=torch.long)


def evaluate(
    score_fn: ScoreFn, g: GraphTensors, qs: QuerySet, split: str | None, ks: Sequence[int] = KS
) -> dict[str, float]:
    known = qs.with_targets()
    rows = gallery_rows(g, split)
    ranked = rank_queries(score_fn, known, rows, max(ks))
    return recall_at_k(ranked, known.target, g.image_title, ks)


def balanced_rows(groups: Sequence[str], per_group: int = 20, seed: int = 0) -> list[int]:
    """At most ``per_group`` queries from each product group, chosen with a fixed seed."""
    by_group: dict[str, list[int]] = defaultdict(list)
    for i, grp in enumerate(groups):
        by_group[grp].append(i)
    rng = random.Random(seed)
    chosen: list[int] = []
    for grp in sorted(by_group):
        rows = by_group[grp]
        chosen += sorted(rng.sample(rows, per_group)) if len(rows) > per_group else rows
    return sorted(chosen)


@torch.no_grad()
def retriever_scorer(model: nn.Module, g: GraphTensors, state: Tensor | None = None) -> ScoreFn:
    """Scores of composed queries against gallery rows; the graph is encoded once (or ``state``, its
    encoding, is given)."""
    model.eval()
    state = model.encode(g) if state is None else state
    gallery = F.normalize(model.gallery(state, g), dim=-1)

    @torch.no_grad()
    def score(candidate: Tensor, caption: Tensor, rows: Tensor) -> Tensor:
        queries, _ = model.compose(state, g, candidate, caption)
        return F.normalize(queries, dim=-1) @ gallery[rows].T

    return score
