"""Baselines on the same features and queries: image-only, TIRG, ComposeAE without the graph, and an
attribute oracle (the ceiling)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from gnn.data.graph import GraphTensors
from gnn.nn.model import ComposeHead


class FeatureRetriever(nn.Module):
    """Shared part of the feature-only models: image and caption features projected to one space."""

    def __init__(self, image_dim: int, text_dim: int, hidden: int, dropout: float):
        super().__init__()
        self.image_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(image_dim, hidden))
        self.text_proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(text_dim, hidden))

    def encode(self, g: GraphTensors) -> tuple[Tensor, Tensor]:
        return self.image_proj(g.features["Image"]), self.text_proj(g.features["Caption"])

    def gallery(self, state, g: GraphTensors) -> Tensor:
        return state[0]

    def aux_loss(self, *args, **kwargs) -> Tensor:
        return torch.zeros(())


class TIRG(FeatureRetriever):
    """Vo et al. 2019: a gated residual on the image feature, gate and residual from [image, text]."""

    name = "tirg"

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__(image_dim, text_dim, hidden, dropout)
        self.gate = nn.Sequential(
            nn.Linear(2 * hidden, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.Sigmoid(),
        )
        self.residual = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Linear(hidden, hidden)
        )
        self.weights = nn.Parameter(torch.tensor([1.0, 10.0]))

    def compose(self, state, g: GraphTensors, candidate: Tensor, caption: Tensor) -> tuple[Tensor, Tensor]:
        image, text = state[0][candidate], state[1][caption]
        both = torch.cat([image, text], dim=-1)
        return self.weights[0] * self.gate(both) * image + self.weights[1] * self.residual(both), torch.zeros(
            0
        )


class ComposeAE(FeatureRetriever):
    """ComposeAE on the projected features, without the graph."""

    name = "composeae"

    def __init__(self, image_dim: int, text_dim: int, hidden: int = 128, dropout: float = 0.2):
        super().__init__(image_dim, text_dim, hidden, dropout)
        self.head = ComposeHead(hidden, dropout)

    def compose(self, state, g: GraphTensors, candidate: Tensor, caption: Tensor) -> tuple[Tensor, Tensor]:
        return self.head(state[0][candidate], state[1][caption])

    def aux_loss(self, state, g, candidate, caption, target, composed, phi) -> Tensor:
        images, texts = state
        return self.head.compositional_loss(composed, phi, images[candidate], texts[caption], images[target])


class ImageOnly(nn.Module):
    """Nearest neighbours of the candidate's image features; the caption is ignored."""

    name = "image_only"

    def encode(self, g: GraphTensors) -> Tensor:
        return g.features["Image"]

    def gallery(self, state: Tensor, g: GraphTensors) -> Tensor:
        return state

    def compose(
        self, state: Tensor, g: GraphTensors, candidate: Tensor, caption: Tensor
    ) -> tuple[Tensor, Tensor]:
        return state[candidate], torch.zeros(0)


class AttributeOracle:
    """The ceiling: the candidate's catalog attributes with the caption's change applied; images ranked
    by how many of those attributes they have (Jaccard), ties broken by image similarity."""

    name = "oracle"

    def __init__(self, image_attributes: dict[str, set[str]], caption_roles: dict[str, dict[str, set[str]]]):
        self.image_attributes = image_attributes
        self.caption_roles = caption_roles

    def scores(self, g: GraphTensors, candidate: Tensor, caption: Tensor, gallery_rows: Tensor) -> Tensor:
        """[q, len(gallery_rows)] scores: attribute agreement dominates, image cosine breaks ties."""
        image_ids, caption_ids = g.ids["Image"], g.ids["Caption"]
        vocab = sorted({a for attrs in self.image_attributes.values() for a in attrs})
        col = {a: i for i, a in enumerate(vocab)}
        gallery = np.zeros((len(gallery_rows), len(vocab)), dtype=np.float32)
        for r, img in enumerate(gallery_rows.tolist()):
            for a in self.image_attributes.get(image_ids[img], ()):
                gallery[r, col[a]] = 1
        wanted = np.zeros((len(candidate), len(vocab)), dtype=np.float32)
        for q, (cand, cap) in enumerate(zip(candidate.tolist(), caption.tolist(), strict=True)):
            roles = self.caption_roles.get(caption_ids[cap], {})
            attrs = (
                set(self.image_attributes.get(image_ids[cand], ())) - roles.get("removed", set())
            ) | roles.get("added", set())
            for a in attrs:
                if a in col:
                    wanted[q, col[a]] = 1
        inter = torch.from_numpy(wanted) @ torch.from_numpy(gallery).T
        union = wanted.sum(1, keepdims=True) + gallery.sum(1)[None, :] - inter.numpy()
        jaccard = inter / torch.from_numpy(np.maximum(union, 1))
        feats = torch.nn.functional.normalize(g.features["Image"], dim=-1)
        visual = feats[candidate] @ feats[gallery_rows].T
        return jaccard * 100.0 + visual  # one attribute of difference (>= 0.05 Jaccard) outweighs any cosine
