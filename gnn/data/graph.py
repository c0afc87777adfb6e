"""From a graph export and node features to the tensors the R-GCN trains on.

Every Neo4j relationship ``(s)-[r]->(d)`` becomes two relation types: ``r`` (message s -> d) and
``r~rev`` (d -> s), except where the config turns a direction off. Both directions carry the edge's
weight (a predicted attribute's confidence; 1 otherwise) unless ``GraphConfig.edge_weights`` is off. The relation vocabulary comes
from the config, not the data, so a checkpoint's weights match any graph built with that config
(interaction types exist from the start, even before the first interaction).
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gnn.config import NODE_KINDS, GraphConfig
from gnn.features.rows import FeatureRows
from gnn.nn.layers import RelationalAdjacency
from readers.graph_records import (
    CAPTION_ROLES,
    HAS_ATTRIBUTE,
    MENTIONS,
    MODIFIES,
    GraphColumns,
    GraphExport,
    reverse,
)


def relation_vocabulary(config: GraphConfig) -> list[str]:
    """The R-GCN relation types for a config, in a fixed order."""
    rels: list[str] = []
    for source in config.attribute_sources:
        rels += [f"{HAS_ATTRIBUTE}:{source}", reverse(f"{HAS_ATTRIBUTE}:{source}")]
    roles = CAPTION_ROLES if config.caption_roles else ("any",)
    for role in roles:
        if config.caption_to_attribute:
            rels.append(f"{MENTIONS}:{role}")
        rels.append(reverse(f"{MENTIONS}:{role}"))
    rels.append(reverse(MODIFIES))  # candidate image -> caption: the query sees its candidate
    if config.caption_to_image:
        rels.append(MODIFIES)
    for name in config.interactions:
        rels += [name, reverse(name)]
    return rels


@dataclass
class QuerySet:
    """Composed queries of one split, as indices into the per-kind node tables."""

    ids: list[str]
    caption: Tensor  # index into captions
    candidate: Tensor  # index into images
    target: Tensor  # index into images; -1 where unknown
    groups: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def with_targets(self, limit: int | None = None, seed: int = 0) -> QuerySet:
        """The queries whose target is known; at most ``limit`` of them, chosen with a fixed seed."""
        rows = [i for i, t in enumerate(self.target.tolist()) if t >= 0]
        if limit is not None and len(rows) > limit:
            rows = sorted(random.Random(seed).sample(rows, limit))
        return self.subset(rows)

    def subset(self, rows: np.ndarray | list[int]) -> QuerySet:
        rows_t = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return QuerySet(
            [self.ids[i] for i in rows_t.tolist()],
            self.caption[rows_t],
            self.candidate[rows_t],
            self.target[rows_t],
            [self.groups[i] for i in rows_t.tolist()],
        )


@dataclass
class GraphTensors:
    ids: dict[str, list[str]]  # kind -> node ids in table order
    features: dict[str, Tensor | FeatureRows]  # kind -> [n, d] float32 (or rows of a smaller table)
    edge_index: Tensor  # [2, E] in the global index (kinds stacked in NODE_KINDS order)
    edge_type: Tensor  # [E]
    relations: list[str]
    image_split: list[str]
    image_title: list[str]
    image_group: list[str]
    # [E] each edge's weight in its relation's mean of messages; None: every edge weighs 1
    edge_weight: Tensor | None = None
    queries: dict[str, QuerySet] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    index: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> id -> row
    attribute_kind: list[str] = field(default_factory=list)  # per attribute row: colour, gender, ...
    _adjacency: RelationalAdjacency | None = field(default=None, repr=False)

    @property
    def num_nodes(self) -> int:
        return sum(len(v) for v in self.ids.values())

    def global_index(self, kind: str, rows: Tensor) -> Tensor:
        return rows + self.offsets[kind]

    def relation_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.edge_type, minlength=len(self.relations)).tolist()
        return dict(zip(self.relations, counts, strict=True))

    @property
    def adjacency(self) -> RelationalAdjacency:
        """The relations' aggregation matrix, prepared once per graph (the R-GCN layers read it)."""
        if self._adjacency is None:
            self._adjacency = RelationalAdjacency.build(
                self.edge_index, self.edge_type, len(self.relations), self.num_nodes, self.edge_weight
            )
        return self._adjacency

    def speaking_captions(self) -> Tensor:
        """Caption rows that send messages to non-caption nodes (e.g. through likes)."""
        lo, hi = self.offsets["Caption"], self.offsets["Caption"] + len(self.ids["Caption"])
        src, dst = self.edge_index
        speaks = (src >= lo) & (src < hi) & ~((dst >= lo) & (dst < hi))
        return torch.unique(src[speaks]) - lo

    def restrict_captions(self, rows: Tensor) -> tuple[GraphTensors, Tensor]:
        """The graph with only captions ``rows`` (plus those that speak to other nodes).

        Captions that only listen cannot change any other node's embedding, so dropping them leaves
        the embeddings of everything kept unchanged. Returns the smaller graph and the new caption
        index of each of ``rows``.
        """
        keep = torch.unique(torch.cat([rows, self.speaking_captions()]))
        n_img, n_cap = len(self.ids["Image"]), len(self.ids["Caption"])
        n_attr = len(self.ids["Attribute"])
        remap = torch.full((self.num_nodes,), -1, dtype=torch.long)
        remap[:n_img] = torch.arange(n_img)
        remap[n_img + keep] = n_img + torch.arange(len(keep))
        new_attr_off = n_img + len(keep)
        remap[n_img + n_cap :] = new_attr_off + torch.arange(n_attr)
        ends = remap[self.edge_index]
        ok = (ends >= 0).all(dim=0)
        sub = GraphTensors(
            ids={**self.ids, "Caption": [self.ids["Caption"][i] for i in keep.tolist()]},
            features={**self.features, "Caption": self.features["Caption"][keep]},
            edge_index=ends[:, ok],
            edge_type=self.edge_type[ok],
            relations=self.relations,
            image_split=self.image_split,
            image_title=self.image_title,
            image_group=self.image_group,
            edge_weight=None if self.edge_weight is None else self.edge_weight[ok],
            offsets={"Image": 0, "Caption": n_img, "Attribute": new_attr_off},
            attribute_kind=self.attribute_kind,
        )
        return sub, torch.searchsorted(keep, rows)

    def mention_relations(self) -> tuple[list[int], list[int]]:
        """Per caption role (added, removed, mentioned): the relation id of MENTIONS read caption ->
        attribute and attribute -> caption (-1 where the config has none)."""
        rel = {r: i for i, r in enumerate(self.relations)}
        fwd, bwd = [], []
        for role in CAPTION_ROLES:
            name = f"{MENTIONS}:{role}" if f"{MENTIONS}:{role}" in rel or reverse(f"{MENTIONS}:{role}") in rel \
                else f"{MENTIONS}:any"
            fwd.append(rel.get(name, -1))
            bwd.append(rel.get(reverse(name), -1))
        return fwd, bwd

    def caption_mentions(self) -> dict[int, dict[int, list[int]]]:
        """Caption row -> role index (0 added, 1 removed, 2 mentioned) -> attribute rows, from the MENTIONS
        edges (empty where the graph does not keep roles apart)."""
        fwd, bwd = self.mention_relations()
        if len(set(bwd) - {-1}) < len(CAPTION_ROLES):
            return {}
        c_off, a_off = self.offsets["Caption"], self.offsets["Attribute"]
        out: dict[int, dict[int, list[int]]] = {}
        src, dst = self.edge_index
        for role, r in enumerate(bwd):
            sel = self.edge_type == r
            for a, c in zip((src[sel] - a_off).tolist(), (dst[sel] - c_off).tolist(), strict=True):
                out.setdefault(c, {}).setdefault(role, []).append(a)
        return out

    def with_caption_inputs(self, rows: Tensor, features: Tensor, mention_pos: Tensor, mention_role: Tensor,
                            mention_attr: Tensor) -> GraphTensors:
        """The graph with captions ``rows`` given new text ``features`` and new MENTIONS edges instead of their
        own: mention ``j`` links ``rows[mention_pos[j]]`` to attribute row ``mention_attr[j]`` in role
        ``mention_role[j]`` (0 added, 1 removed, 2 mentioned). A batch's captions in another phrasing, or
        with no parse at all. ``self`` is unchanged."""
        fwd, bwd = self.mention_relations()
        c_off, a_off = self.offsets["Caption"], self.offsets["Attribute"]
        nodes = rows + c_off
        kinds = torch.tensor([r for r in (*fwd, *bwd) if r >= 0], dtype=torch.long)
        src, dst = self.edge_index
        touches = torch.isin(src, nodes) | torch.isin(dst, nodes)
        keep = ~(touches & torch.isin(self.edge_type, kinds))
        cap = nodes[mention_pos]
        attr = mention_attr + a_off
        new_src, new_dst, new_type = [src[keep]], [dst[keep]], [self.edge_type[keep]]
        for table, forward in ((bwd, False), (fwd, True)):
            types = torch.tensor(table, dtype=torch.long)[mention_role]
            ok = types >= 0
            new_src.append((cap if forward else attr)[ok])
            new_dst.append((attr if forward else cap)[ok])
            new_type.append(types[ok])
        edge_weight = None
        if self.edge_weight is not None:  # the new MENTIONS weigh 1, like the ones they replace
            added = sum(len(t) for t in new_type[1:])
            edge_weight = torch.cat([self.edge_weight[keep], torch.ones(added, dtype=self.edge_weight.dtype)])
        caption_features = self.features["Caption"].clone()
        caption_features[rows] = features.to(caption_features.dtype)
        return dataclasses.replace(
            self, features={**self.features, "Caption": caption_features},
            edge_index=torch.stack([torch.cat(new_src), torch.cat(new_dst)]), edge_type=torch.cat(new_type),
            edge_weight=edge_weight, _adjacency=None,
        )


def as_features(values) -> Tensor | FeatureRows:
    """Node features as the model reads them: a float32 tensor, or :class:`FeatureRows` as they are."""
    if isinstance(values, FeatureRows):
        return values
    return torch.as_tensor(np.ascontiguousarray(values), dtype=torch.float32)


def _node_offsets(ids: dict[str, list], features: dict[str, Any]) -> tuple[dict[str, int], int]:
    """Where each kind's nodes start in the one node numbering (images, captions, attributes), and the
    total; every kind must have one feature row per node."""
    offsets, total = {}, 0
    for kind in NODE_KINDS:
        if features[kind].shape[0] != len(ids[kind]):
            raise ValueError(f"{kind}: {features[kind].shape[0]} feature rows for {len(ids[kind])} nodes")
        offsets[kind] = total
        total += len(ids[kind])
    return offsets, total


def _relation_of(name: str, config: GraphConfig) -> str:
    if name.startswith("MENTIONS:") and not config.caption_roles:
        return "MENTIONS:any"
    return name


def relation_pair(relation: str, config: GraphConfig, rel_id: dict[str, int]) -> tuple[int, int]:
    """The R-GCN relation ids of an edge of type ``relation`` read forwards and backwards (-1: not a
    message in this config)."""
    name = _relation_of(relation, config)
    return rel_id.get(name, -1), rel_id.get(reverse(name), -1)


def build_graph_tensors(
    export: GraphExport, features: dict[str, np.ndarray], config: GraphConfig
) -> GraphTensors:
    """Tensors for the R-GCN. ``features[kind]`` rows follow the export's node order for that kind."""
    ids = {
        "Image": [r.id for r in export.images],
        "Caption": [r.id for r in export.captions],
        "Attribute": list(export.attributes),
    }
    offsets, total = _node_offsets(ids, features)
    index = {kind: {node_id: i for i, node_id in enumerate(ids[kind])} for kind in NODE_KINDS}

    relations = relation_vocabulary(config)
    rel_id = {r: i for i, r in enumerate(relations)}
    pairs: dict[str, tuple[int, int]] = {}  # relation name -> (forward id, backward id); -1: not used
    src, dst, fwd, bwd, weight = [], [], [], [], []
    for e in export.edges:  # the one per-edge Python loop: kept to lookups and appends
        pair = pairs.get(e.relation)
        if pair is None:
            pair = pairs[e.relation] = relation_pair(e.relation, config, rel_id)
        if pair == (-1, -1):
            continue  # a relation this model does not use (e.g. predicted edges in the catalog model)
        s = index[e.src_kind].get(e.src)
        d = index[e.dst_kind].get(e.dst)
        if s is None or d is None:
            continue
        src.append(s + offsets[e.src_kind])
        dst.append(d + offsets[e.dst_kind])
        fwd.append(pair[0])
        bwd.append(pair[1])
        if e.weight <= 0:
            raise ValueError(f"edge {e.src} -[{e.relation}]-> {e.dst} has weight {e.weight}: weights must be "
                             "positive (a confidence of 0 is no edge)")
        weight.append(e.weight)
    s_t, d_t = torch.tensor(src, dtype=torch.long), torch.tensor(dst, dtype=torch.long)
    f_t, b_t = torch.tensor(fwd, dtype=torch.long), torch.tensor(bwd, dtype=torch.long)
    has_f, has_b = f_t >= 0, b_t >= 0
    edge_index = torch.cat([torch.stack([s_t[has_f], d_t[has_f]]), torch.stack([d_t[has_b], s_t[has_b]])], dim=1)
    edge_type = torch.cat([f_t[has_f], b_t[has_b]])
    edge_weight = None
    w_t = torch.tensor(weight, dtype=torch.float32)
    if config.edge_weights and bool((w_t != 1.0).any()):
        edge_weight = torch.cat([w_t[has_f], w_t[has_b]])

    tensors = GraphTensors(
        ids=ids,
        features={k: as_features(features[k]) for k in NODE_KINDS},
        edge_index=edge_index,
        edge_type=edge_type,
        relations=relations,
        image_split=[r.split for r in export.images],
        image_title=[r.title for r in export.images],
        image_group=[r.group for r in export.images],
        edge_weight=edge_weight,
        offsets=offsets,
        index=index,
        attribute_kind=[export.attributes[a] for a in ids["Attribute"]],
    )
    tensors.queries = build_query_sets(export, index)
    return tensors


def build_graph_tensors_from_columns(columns: GraphColumns, features: dict, config: GraphConfig) -> GraphTensors:
    """:func:`build_graph_tensors` for a graph read as columns (the same tensors, edges grouped by
    relation): vectorised per relation, for graphs of millions of edges."""
    ids = {"Image": columns.image_ids, "Caption": columns.caption_ids, "Attribute": list(columns.attributes)}
    offsets, total = _node_offsets(ids, features)
    relations = relation_vocabulary(config)
    rel_id = {r: i for i, r in enumerate(relations)}
    forward, backward = [], []
    for relation, column in columns.edges.items():
        fwd, bwd = relation_pair(relation, config, rel_id)
        if (fwd, bwd) == (-1, -1) or not len(column):
            continue
        src = torch.from_numpy(np.frombuffer(column.src, dtype=np.int32).astype(np.int64)) + offsets[column.src_kind]
        dst = torch.from_numpy(np.frombuffer(column.dst, dtype=np.int32).astype(np.int64)) + offsets[column.dst_kind]
        if fwd >= 0:
            forward.append((torch.stack([src, dst]), torch.full_like(src, fwd)))
        if bwd >= 0:
            backward.append((torch.stack([dst, src]), torch.full_like(src, bwd)))
    parts = forward + backward
    edge_index = torch.cat([p[0] for p in parts], dim=1) if parts else torch.zeros((2, 0), dtype=torch.long)
    edge_type = torch.cat([p[1] for p in parts]) if parts else torch.zeros(0, dtype=torch.long)
    # Attributes and images by name / id (what simulated interactions look up); captions are found by row.
    index = {kind: {node_id: i for i, node_id in enumerate(ids[kind])} for kind in ("Image", "Attribute")}
    index["Caption"] = {}
    tensors = GraphTensors(
        ids=ids,
        features={k: as_features(features[k]) for k in NODE_KINDS},
        edge_index=edge_index,
        edge_type=edge_type,
        relations=relations,
        image_split=columns.image_splits,
        image_title=columns.image_titles,
        image_group=columns.image_groups,
        offsets=offsets,
        index=index,
    )
    candidate = np.frombuffer(columns.caption_candidate, dtype=np.int32)
    target = np.frombuffer(columns.caption_target, dtype=np.int32)
    by_split: dict[str, list[int]] = {}
    for row in np.nonzero(candidate >= 0)[0].tolist():
        by_split.setdefault(columns.caption_splits[row] or "unassigned", []).append(row)
    for split, rows in by_split.items():
        r = np.asarray(rows, dtype=np.int64)
        tensors.queries[split] = QuerySet(
            ids=[columns.caption_ids[i] for i in rows], caption=torch.from_numpy(r),
            candidate=torch.from_numpy(candidate[r].astype(np.int64)),
            target=torch.from_numpy(target[r].astype(np.int64)),
            groups=[columns.caption_groups[i] for i in rows])
    return tensors


def build_query_sets(export: GraphExport, index: dict[str, dict[str, int]]) -> dict[str, QuerySet]:
    """Captions with a candidate, grouped by split. Target -1 where the split has none."""
    by_split: dict[str, list] = {}
    for c in export.captions:
        if c.candidate is None or c.candidate not in index["Image"]:
            continue
        target = index["Image"].get(c.target, -1) if c.target else -1
        by_split.setdefault(c.split or "unassigned", []).append(
            (c.id, index["Caption"][c.id], index["Image"][c.candidate], target, c.group)
        )
    out = {}
    for split, rows in by_split.items():
        out[split] = QuerySet(
            ids=[r[0] for r in rows],
            caption=torch.tensor([r[1] for r in rows], dtype=torch.long),
            candidate=torch.tensor([r[2] for r in rows], dtype=torch.long),
            target=torch.tensor([r[3] for r in rows], dtype=torch.long),
            groups=[r[4] for r in rows],
        )
    return out
