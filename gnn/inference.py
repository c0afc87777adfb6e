"""Turning a trained retriever into scores, embeddings and ranked ids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnn.evaluation import ScoreFn
from gnn.graph import GraphTensors


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


@torch.no_grad()
def node_embeddings(model: nn.Module, g: GraphTensors) -> Tensor:
    """All node embeddings of a graph retriever, L2-normalised ([num_nodes, hidden])."""
    model.eval()
    return F.normalize(model.encode(g), dim=-1)
