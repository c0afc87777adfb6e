"""The R-GCN over the typed graph and the ComposeAE composition head.

Retrievers share one interface so training, evaluation and search treat every model alike:
``encode(graph)`` computes whatever the model needs once per step (for the R-GCN, all node
embeddings), ``gallery(state)`` gives image embeddings, ``compose(state, candidate, caption)`` gives
query embeddings, and ``aux_loss`` adds model-specific terms (ComposeAE's).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gnn.config import NODE_KINDS, ModelConfig
from gnn.data.graph import GraphTensors
from gnn.features.rows import project
from gnn.nn.layers import RelationalConv


def rotate(h: Tensor, phi: Tensor, sign: float = 1.0) -> Tensor:
    """Multiply h (read as complex: first half real, second half imaginary) by exp(i * sign * phi)."""
    re, im = h.chunk(2, dim=-1)
    cos, sin = torch.cos(phi), torch.sin(sign * phi)
    return torch.cat([re * cos - im * sin, re * sin + im * cos], dim=-1)


class ComposeHead(nn.Module):
    """ComposeAE (Anwaar et al. 2021): rotate the image embedding in complex space by an angle the
    text conditions, then add a learned mix of both; decoders reconstruct both inputs."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        if dim % 2:
            raise ValueError("ComposeHead needs an even dimension (real and imaginary halves)")
        self.angle = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim // 2))
        self.mix = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))
        self.image_decoder = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.text_decoder = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        phi = self.angle(text)
        return rotate(image, phi) + self.mix(torch.cat([image, text], dim=-1)), phi

    def compositional_loss(
        self, composed: Tensor, phi: Tensor, image: Tensor, text: Tensor, target: Tensor
    ) -> Tensor:
        """Rotational symmetry (the target rotated back lands on the candidate) + reconstruction."""
        back = rotate(target, phi, sign=-1.0)
        symmetric = 1 - F.cosine_similarity(back, image, dim=-1).mean()
        reconstruct = (
            1 - F.cosine_similarity(self.image_decoder(composed), image.detach(), dim=-1).mean()
        ) + (1 - F.cosine_similarity(self.text_decoder(composed), text.detach(), dim=-1).mean())
        return symmetric + reconstruct


class ConcatHead(nn.Module):
    """Ablation: an MLP over [image, text] with a residual to the image."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.mix = nn.Sequential(nn.Linear(2 * dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, image: Tensor, text: Tensor) -> tuple[Tensor, Tensor]:
        return image + self.mix(torch.cat([image, text], dim=-1)), torch.zeros(0)

    def compositional_loss(self, *args) -> Tensor:
        return torch.zeros(())


def make_head(kind: str, dim: int, dropout: float) -> nn.Module:
    if kind == "composeae":
        return ComposeHead(dim, dropout)
    if kind == "concat":
        return ConcatHead(dim, dropout)
    raise ValueError(f"unknown composition {kind!r} (composeae | concat)")


class GraphEncoder(nn.Module):
    """Per-kind input projections, then R-GCN layers with residual connections and layer norm.

    The residual keeps each image's own visual features in its embedding (needed to break ties
    between products with identical attributes); the relation-typed messages add what the graph knows.
    """

    def __init__(self, in_dims: dict[str, int], num_relations: int, config: ModelConfig):
        super().__init__()
        h = config.hidden
        self.proj = nn.ModuleDict({k: nn.Linear(in_dims[k], h) for k in NODE_KINDS})
        self.conv_kind = config.conv
        if config.conv == "pyg":  # PyTorch Geometric's reference implementation (same maths, slower here)
            from torch_geometric.nn import RGCNConv

            convs = [
                RGCNConv(h, h, num_relations, num_bases=config.num_bases, aggr="mean")
                for _ in range(config.layers)
            ]
        elif config.conv == "fast":
            convs = [
                RelationalConv(h, h, num_relations, num_bases=config.num_bases) for _ in range(config.layers)
            ]
        else:
            raise ValueError(f"unknown conv {config.conv!r} (fast | pyg)")
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.LayerNorm(h) for _ in range(config.layers))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, g: GraphTensors, return_layers: bool = False) -> Tensor | list[Tensor]:
        x = torch.cat([project(self.proj[k], g.features[k]) for k in NODE_KINDS], dim=0)
        layers = [x]
        if self.conv_kind == "pyg" and g.edge_weight is not None:
            raise ValueError("PyG's RGCNConv takes no edge weights: use model.conv 'fast' for a graph with "
                             "weighted edges, or graph.edge_weights false")
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv(x, g.edge_index, g.edge_type) if self.conv_kind == "pyg" else conv(x, g.adjacency)
            x = x + self.dropout(F.relu(norm(h)))
            layers.append(x)
        return layers if return_layers else x

    @torch.no_grad()
    def layerwise(self, g: GraphTensors, dtype: torch.dtype = torch.float32, chunk: int = 1 << 18,
                  last_only: bool = False) -> Tensor:
        """Every layer's embeddings ``[L+1, N, hidden]`` (as :meth:`forward` with ``return_layers``, in eval
        mode), stored in ``dtype`` and computed a layer at a time from the stored values: at a million
        nodes this holds the result, one layer in float32 and a chunk, not every intermediate.
        ``last_only``: only the final layer ``[N, hidden]`` (float32; each layer still rounded to ``dtype``
        before the next reads it), what evaluation needs."""
        if self.conv_kind != "fast":
            layers = self(g, return_layers=True)
            return layers[-1] if last_only else torch.stack(layers).to(dtype)
        x = torch.cat([project(self.proj[k], g.features[k]) for k in NODE_KINDS], dim=0)
        out = None
        if not last_only:
            out = torch.empty((len(self.convs) + 1, *x.shape), dtype=dtype)
            out[0] = x
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            if dtype != torch.float32:  # from the stored values, as a later local refresh reads them
                x = out[layer].float() if out is not None else x.to(dtype).float()
            h = conv.forward_chunked(x, g.adjacency, chunk)
            for a in range(0, len(h), chunk):  # x + relu(norm(h)), in place, a chunk at a time
                part = h[a : a + chunk]
                part.copy_(norm(part)).relu_().add_(x[a : a + chunk])
            if out is not None:
                out[layer + 1] = h
            x = h
        return (x.to(dtype).float() if dtype != torch.float32 else x) if last_only else out

    @torch.no_grad()
    def encode_leaf(self, text_feature: Tensor, neighbours: dict[int, list[Tensor]]) -> Tensor:
        """The embedding of a new caption node from its neighbours' per-layer embeddings.

        ``neighbours[r][l]`` holds, for relation r, the layer-l embeddings of the nodes the caption
        listens to. A caption is a leaf (it sends nothing), so this is exactly the full-graph forward
        restricted to it: the new query costs a few small matrix products, not a graph pass.
        """
        if self.conv_kind != "fast":
            raise ValueError("encode_leaf needs the fast relational conv")
        x = self.proj["Caption"](text_feature[None, :])
        for layer, (conv, norm) in enumerate(zip(self.convs, self.norms, strict=True)):
            h = conv.root(x)
            weights = conv.weights()
            for r, per_layer in neighbours.items():
                h = h + per_layer[layer].mean(dim=0, keepdim=True) @ weights[r]
            x = x + F.relu(norm(h))
        return x[0]


class GraphRetriever(nn.Module):
    """R-GCN node embeddings + composition head: query = head(h[candidate], h[caption])."""

    name = "graph"

    def __init__(self, in_dims: dict[str, int], relations: list[str], config: ModelConfig):
        super().__init__()
        self.relations = list(relations)
        self.encoder = GraphEncoder(in_dims, len(relations), config)
        self.head = make_head(config.composition, config.hidden, config.dropout)

    def encode(self, g: GraphTensors) -> Tensor:
        if not self.training and not torch.is_grad_enabled():  # inference: a layer at a time, less memory
            return self.encoder.layerwise(g, last_only=True)
        return self.encoder(g)

    def layers(self, g: GraphTensors) -> list[Tensor]:
        """Every layer's node embeddings (input projection first): what new queries are encoded from."""
        return self.encoder(g, return_layers=True)

    def _parts(self, state: Tensor, g: GraphTensors) -> tuple[Tensor, Tensor]:
        n_img, n_cap = len(g.ids["Image"]), len(g.ids["Caption"])
        off = g.offsets["Caption"]
        return state[:n_img], state[off : off + n_cap]

    def gallery(self, state: Tensor, g: GraphTensors) -> Tensor:
        return self._parts(state, g)[0]

    def compose(
        self, state: Tensor, g: GraphTensors, candidate: Tensor, caption: Tensor
    ) -> tuple[Tensor, Tensor]:
        images, captions = self._parts(state, g)
        return self.head(images[candidate], captions[caption])

    def aux_loss(
        self,
        state: Tensor,
        g: GraphTensors,
        candidate: Tensor,
        caption: Tensor,
        target: Tensor,
        composed: Tensor,
        phi: Tensor,
    ) -> Tensor:
        images, captions = self._parts(state, g)
        return self.head.compositional_loss(
            composed, phi, images[candidate], captions[caption], images[target]
        )
