"""Simulated interactions on graph tensors: new USER_TAGGED and LIKED_* edges, nothing written to Neo4j.

Two uses:

- **training** (:func:`training_interactions`): the interaction relation types get their weights from a
  few simulated interactions on training data (paper, appendix A.3), so real ones need no retraining;
- **the interaction experiments** (``experiments.interactions``): "more metadata" and "I like that"
  on test images and queries, answered with the trained weights only.

Edges follow the database's conventions (``graphdb.interactions``): USER_TAGGED image -> attribute;
LIKED_WITH between liked images, from the smaller id to the larger; LIKED_FOR liked image -> the
query's caption; LIKED_FROM liked image -> the query's candidate (never onto itself). Every relation is
also read backwards (``~rev``), as in :func:`gnn.data.graph.build_graph_tensors`.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from gnn.config import SimulationConfig
from gnn.data.graph import GraphTensors, QuerySet
from readers.graph_records import LIKED_FOR, LIKED_FROM, LIKED_WITH, USER_TAGGED, reverse

TruthMap = Mapping[str, set[str]]  # image id -> its true (catalog) attribute names


@dataclass
class EdgeBatch:
    """New edges by relation name (forward direction), as global node indices."""

    edges: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)

    def add(self, relation: str, src: int, dst: int) -> None:
        s, d = self.edges.setdefault(relation, ([], []))
        s.append(src)
        d.append(dst)

    def count(self, relation: str | None = None) -> int:
        if relation is not None:
            return len(self.edges.get(relation, ([], []))[0])
        return sum(len(s) for s, _ in self.edges.values())

    def counts(self) -> dict[str, int]:
        return {r: len(s) for r, (s, _) in sorted(self.edges.items())}


def with_edges(g: GraphTensors, batch: EdgeBatch) -> GraphTensors:
    """``g`` plus ``batch``'s edges in both directions (a new graph; ``g`` is unchanged)."""
    rel_id = {r: i for i, r in enumerate(g.relations)}
    src, dst, typ = [g.edge_index[0]], [g.edge_index[1]], [g.edge_type]
    for relation, (s, d) in batch.edges.items():
        if relation not in rel_id or reverse(relation) not in rel_id:
            raise ValueError(f"relation {relation!r} is not in this model's vocabulary ({g.relations})")
        s_t, d_t = torch.tensor(s, dtype=torch.long), torch.tensor(d, dtype=torch.long)
        src += [s_t, d_t]
        dst += [d_t, s_t]
        typ += [torch.full_like(s_t, rel_id[relation]), torch.full_like(s_t, rel_id[reverse(relation)])]
    edge_type = torch.cat(typ)
    weight = None  # interactions are facts: they weigh 1, beside whatever weights the graph has
    if g.edge_weight is not None:
        weight = torch.cat([g.edge_weight, torch.ones(len(edge_type) - len(g.edge_weight))])
    return dataclasses.replace(
        g, edge_index=torch.stack([torch.cat(src), torch.cat(dst)]), edge_type=edge_type, edge_weight=weight,
        _adjacency=None,
    )


def attributes_by_frequency(truth: TruthMap, images: Iterable[str] | None = None) -> list[str]:
    """Attribute names, most frequent first (ties by name), counted over ``images`` (default: all)."""
    ids = truth.keys() if images is None else images
    counts = Counter(a for i in ids for a in truth.get(i, ()))
    return [a for a, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def tag_edges(g: GraphTensors, truth: TruthMap, attributes: Iterable[str], image_rows: Iterable[int]) -> EdgeBatch:
    """"More metadata": each image of ``image_rows`` tagged with those of ``attributes`` it truly has."""
    wanted = [a for a in attributes if a in g.index["Attribute"]]
    batch = EdgeBatch()
    a_off, i_off = g.offsets["Attribute"], g.offsets["Image"]
    for row in image_rows:
        has = truth.get(g.ids["Image"][row], set())
        for name in wanted:
            if name in has:
                batch.add(USER_TAGGED, i_off + row, a_off + g.index["Attribute"][name])
    return batch


def like_edges(g: GraphTensors, queries: QuerySet, liked: Tensor) -> EdgeBatch:
    """"I like that" for each query: ``liked[q]`` (image rows) linked to each other, to the query's
    caption and to its candidate. Pairs liked together for several queries are linked once (as the
    database's MERGE does for one user)."""
    batch = EdgeBatch()
    ids = g.ids["Image"]
    i_off, c_off = g.offsets["Image"], g.offsets["Caption"]
    pairs: set[tuple[int, int]] = set()
    for q in range(len(queries)):
        rows = sorted(set(liked[q].tolist()), key=lambda r: ids[r])  # canonical order: by image id
        caption, candidate = int(queries.caption[q]), int(queries.candidate[q])
        for k, a in enumerate(rows):
            pairs.update((a, b) for b in rows[k + 1 :])
            batch.add(LIKED_FOR, i_off + a, c_off + caption)
            if a != candidate:
                batch.add(LIKED_FROM, i_off + a, i_off + candidate)
    for a, b in sorted(pairs):
        batch.add(LIKED_WITH, i_off + a, i_off + b)
    return batch


def nearest_images(embeddings: Tensor, targets: Tensor, pool: Tensor, k: int, exclude: Tensor) -> Tensor:
    """[q, k] image rows from ``pool`` nearest (cosine) to each target, the target and ``exclude[q]``
    (e.g. the candidate) left out."""
    scores = F.normalize(embeddings[targets], dim=-1) @ F.normalize(embeddings[pool], dim=-1).T
    scores[pool[None, :] == targets[:, None]] = float("-inf")
    scores[pool[None, :] == exclude[:, None]] = float("-inf")
    return pool[scores.topk(min(k, len(pool)), dim=1).indices]


@dataclass
class TrainingInteractions:
    """What a graph model trains with besides the real graph: simulated edges and the liked queries
    (some join every batch so the LIKED_* weights see a gradient at every step)."""

    graph: GraphTensors
    liked_queries: QuerySet | None
    tagged_attributes: list[str]
    counts: dict[str, int]


def training_interactions(g: GraphTensors, truth: TruthMap, config: SimulationConfig) -> TrainingInteractions:
    """Simulated interactions on the training split only (images and queries).

    Tags: the attributes ranked ``tag_skip`` .. ``tag_skip + tag_attributes`` by frequency on training
    images, on the ``tag_share`` of training images (seeded) that have them. Likes: ``like_examples``
    training queries (at most ``like_share`` of them), each liking the ``liked_per_example`` training
    images nearest to its target by image features (the model's own embedding does not exist yet).
    """
    train_rows = [i for i, s in enumerate(g.image_split) if s == "train"]
    ranked = attributes_by_frequency(truth, [g.ids["Image"][r] for r in train_rows])
    stop = None if config.tag_attributes is None else config.tag_skip + config.tag_attributes
    tagged = ranked[config.tag_skip : stop]
    tag_rows = train_rows
    if config.tag_share < 1.0:
        tag_rows = sorted(random.Random(config.seed).sample(train_rows, round(config.tag_share * len(train_rows))))
    batch = tag_edges(g, truth, tagged, tag_rows)
    liked_queries = None
    if config.like_examples > 0 and "train" in g.queries:
        # A small catalog must not learn that most queries come with likes (they leak the target).
        examples = min(config.like_examples, max(1, round(config.like_share * len(g.queries["train"]))))
        liked_queries = g.queries["train"].with_targets(examples, config.seed)
        pool_rows = train_rows
        if config.like_pool is not None and len(pool_rows) > config.like_pool:
            pool_rows = sorted(random.Random(config.seed + 1).sample(pool_rows, config.like_pool))
        pool = torch.tensor(pool_rows, dtype=torch.long)
        liked = nearest_images(
            g.features["Image"], liked_queries.target, pool, config.liked_per_example, liked_queries.candidate
        )
        likes = like_edges(g, liked_queries, liked)
        for relation, (s, d) in likes.edges.items():
            batch.edges[relation] = (s, d)
    return TrainingInteractions(with_edges(g, batch), liked_queries, tagged, batch.counts())
