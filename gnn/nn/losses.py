"""Link prediction loss: the composed query should score its true target above sampled images."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def link_prediction_loss(
    queries: Tensor,
    gallery: Tensor,
    target: Tensor,
    negatives: int,
    temperature: float,
    generator: torch.Generator | None = None,
    negative_rows: Tensor | None = None,
) -> Tensor:
    """Softmax cross-entropy over {batch targets} + ``negatives`` random gallery images (or the gallery
    rows ``negative_rows``, drawn by the caller, e.g. before sampling their neighbourhoods).

    The candidate set is de-duplicated so that a target shared by several queries in the batch is
    never also counted as a negative for them.
    """
    if negative_rows is not None:
        sampled = negative_rows
    else:
        sampled = torch.randint(len(gallery), (negatives,), generator=generator)
    candidates = torch.unique(torch.cat([target, sampled]))  # sorted
    labels = torch.searchsorted(candidates, target)
    logits = F.normalize(queries, dim=-1) @ F.normalize(gallery[candidates], dim=-1).T
    return F.cross_entropy(logits / temperature, labels)
