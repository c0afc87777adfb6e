"""Neighbour sampling over the graph tensors: the part of the graph one training step needs.

An R-GCN with L layers computes a node's embedding from its L-hop in-neighbourhood; at a million
products that neighbourhood runs through attribute hubs ("men", "casual") to most of the catalog. The
sampler keeps, hop by hop from the batch's own nodes, at most ``fanouts[h]`` incoming messages *of each
relation* into each node reached at hop h (all of them where there are fewer; with replacement where there
are more, so a node's sampled mean is an unbiased estimate of its full mean). Images have a handful of
attributes and captions a few mentions, so they keep every message; attributes keep a sample of their
images. The result is one small :class:`~gnn.data.graph.GraphTensors` (the union of every hop, as PyTorch
Geometric's NeighborLoader builds it) that the model runs on unchanged.

PyG's own loaders need ``pyg-lib`` or ``torch-sparse``, which this environment does not have; this is
a few vectorised tensor operations over one sorted edge list, relation-aware as the R-GCN needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from gnn.config import NODE_KINDS
from gnn.data.graph import GraphTensors


@dataclass
class InEdges:
    """Every message edge sorted by (destination, relation): ``keys = dst * R + rel``, with its source."""

    keys: Tensor  # int64 [E], sorted
    src: Tensor  # int64 [E]
    num_relations: int

    @classmethod
    def build(cls, edge_index: Tensor, edge_type: Tensor, num_relations: int) -> InEdges:
        keys = edge_index[1] * num_relations + edge_type
        order = torch.argsort(keys, stable=True)
        return cls(keys[order], edge_index[0][order], num_relations)

    def segments(self, nodes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """For each node and relation with messages: (node, relation, start, count) as flat tensors."""
        r = self.num_relations
        q = nodes[:, None] * r + torch.arange(r)[None, :]
        lo = torch.searchsorted(self.keys, q.reshape(-1))
        hi = torch.searchsorted(self.keys, q.reshape(-1) + 1)
        n = hi - lo
        has = n > 0
        flat_node = nodes.repeat_interleave(r)[has]
        return flat_node, lo[has], n[has]


@dataclass
class SampledGraph:
    """A sampled subgraph and how its rows map back: ``nodes[i]`` is the global index of local node i."""

    graph: GraphTensors
    nodes: Tensor  # int64 [n_local], sorted (so kinds stay in NODE_KINDS order)

    def local(self, global_rows: Tensor) -> Tensor:
        """Local indices of global node indices that are in the sample."""
        return torch.searchsorted(self.nodes, global_rows)

    def local_rows(self, kind: str, rows: Tensor, g: GraphTensors) -> Tensor:
        """Local rows within ``kind``'s table of ``kind`` rows of the full graph."""
        return self.local(rows + g.offsets[kind]) - self.graph.offsets[kind]


class NeighbourSampler:
    """Samples the L-hop in-neighbourhood of seed nodes with per-relation fanouts (see module doc)."""

    def __init__(self, g: GraphTensors, fanouts: Sequence[int], generator: torch.Generator | None = None):
        if not fanouts or any(f < 1 for f in fanouts):
            raise ValueError(f"fanouts must be one positive number per layer, not {tuple(fanouts)}")
        self.g = g
        self.fanouts = tuple(int(f) for f in fanouts)
        self.generator = generator
        self.edges = InEdges.build(g.edge_index, g.edge_type, len(g.relations))
        self._kind_bounds = [(k, g.offsets[k], g.offsets[k] + len(g.ids[k])) for k in NODE_KINDS]

    def _hop(self, frontier: Tensor, fanout: int) -> tuple[Tensor, Tensor, Tensor]:
        """(src, dst, relation) of the messages sampled into ``frontier``."""
        node, start, count = self.edges.segments(frontier)
        whole = count <= fanout
        # Segments that fit: every edge of them.
        n_all = count[whole]
        base = start[whole].repeat_interleave(n_all)
        step = torch.arange(int(n_all.sum())) - (torch.cumsum(n_all, 0) - n_all).repeat_interleave(n_all)
        picked_all = base + step
        dst_all = node[whole].repeat_interleave(n_all)
        # Larger segments: ``fanout`` draws each, with replacement.
        n_big = count[~whole]
        draws = torch.rand((len(n_big), fanout), generator=self.generator)
        picked_big = (start[~whole][:, None] + (draws * n_big[:, None]).long()).reshape(-1)
        dst_big = node[~whole].repeat_interleave(fanout)
        picked = torch.cat([picked_all, picked_big])
        dst = torch.cat([dst_all, dst_big])
        src = self.edges.src[picked]
        rel = self.edges.keys[picked] % self.edges.num_relations
        return src, dst, rel

    def sample(self, seeds: Tensor) -> SampledGraph:
        """The sampled subgraph around ``seeds`` (global node indices)."""
        seen = torch.unique(seeds)
        frontier = seen
        srcs, dsts, rels = [], [], []
        for fanout in self.fanouts:
            if len(frontier) == 0:
                break
            src, dst, rel = self._hop(frontier, fanout)
            srcs.append(src)
            dsts.append(dst)
            rels.append(rel)
            new = torch.unique(src)
            frontier = new[~torch.isin(new, seen)]
            seen = torch.unique(torch.cat([seen, frontier]))
        nodes = seen  # sorted
        src = torch.cat(srcs) if srcs else torch.zeros(0, dtype=torch.long)
        dst = torch.cat(dsts) if dsts else torch.zeros(0, dtype=torch.long)
        rel = torch.cat(rels) if rels else torch.zeros(0, dtype=torch.long)
        edge_index = torch.stack([torch.searchsorted(nodes, src), torch.searchsorted(nodes, dst)])
        return SampledGraph(self._subgraph(nodes, edge_index, rel), nodes)

    def _subgraph(self, nodes: Tensor, edge_index: Tensor, edge_type: Tensor) -> GraphTensors:
        g = self.g
        ids, features, offsets = {}, {}, {}
        for kind, lo, hi in self._kind_bounds:
            a, b = torch.searchsorted(nodes, torch.tensor([lo, hi])).tolist()
            rows = nodes[a:b] - lo
            offsets[kind] = a
            ids[kind] = rows.tolist()  # rows of the full graph's tables (what a sample needs of an id)
            features[kind] = g.features[kind][rows]
        image_rows = ids["Image"]
        return GraphTensors(
            ids=ids,
            features=features,
            edge_index=edge_index,
            edge_type=edge_type.long(),
            relations=g.relations,
            image_split=[g.image_split[r] for r in image_rows],
            image_title=[g.image_title[r] for r in image_rows],
            image_group=[g.image_group[r] for r in image_rows],
            offsets=offsets,
        )
