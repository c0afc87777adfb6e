"""Local refresh: after an interaction, recompute only the embeddings within the model's reach of what
changed, so a like costs the same at ten thousand and at a million products.

An R-GCN layer computes a node from its own previous layer and the per-relation mean of its in-neighbours'
previous layer. A change of edges changes, at layer 1, the nodes that receive those edges (the *seeds*);
at layer l, also every out-neighbour of a node changed at layer l-1. With L layers only nodes within
L-1 hops downstream of the seeds can move, and only those are recomputed, layer by layer, from the
stored per-layer embeddings of their neighbours (:class:`LocalState` keeps them for every node of the
base graph: images and attributes in the search bundle, liked captions here).

**Hubs.** An attribute with more than ``hub_degree`` incoming messages ("men", "casual"; at a million
products every colour) would put most of the catalog within two hops of any product. A hub keeps, per
layer and relation, the *sum* of its senders' stored embeddings and their count; a refresh adds the change
of every sender it recomputed (and the senders of edges added or removed), so the hub's mean is brought up
to date without reading its other neighbours. Its change is then *held*: the products and captions that
read the hub are not recomputed, as long as the hub's held changes at that layer add up to no more than
``hub_tolerance`` (largest change of one coordinate). Past that, the hub is passed on: all its readers are
recomputed (in chunks) and its held change starts again from zero; a full sync resets every hub. A live
sync defers that pass (``retrieval.defer_hub_readers``): the interaction is answered first and the readers
are recomputed right after (:meth:`LocalState.catch_up`), before the next sync reads anything. A like
moves a hub's mean by about 1/degree of what its liked products moved, so likes are held for a long time
and cost the same at any size; the first tags of a popular attribute move it by a whole message, so they
are passed on to its readers (the cost a tag of "black" has at a million products). The readers of a held
hub differ from a full refresh by less than the tolerance in the tests and ``benchmarks/scale``, which
measure it (max |difference| of the final embeddings).

Everything else is exact: with ``hub_degree`` larger than every in-degree a local refresh equals a full
one up to float rounding (see the tests).

The base graph is kept as message edges (``src -> dst`` with an R-GCN relation id, as in
:class:`~gnn.data.graph.GraphTensors`): the edges of the last full sync in two CSR indexes (by destination
and by source), edges removed since then marked dead, edges added since then in a small overlay. A change
is applied from a :class:`~readers.graph_records.BaseDelta` (the current base edges of the changed nodes,
read from Neo4j by index), so neither the read nor the refresh touches the rest of the catalog.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gnn.config import NODE_KINDS, GraphConfig
from gnn.data.graph import GraphTensors, relation_pair
from readers.graph_records import INTERACTION_TYPES, REVERSE, BaseDelta

KIND = {kind: i for i, kind in enumerate(NODE_KINDS)}
IMAGE, CAPTION, ATTRIBUTE = KIND["Image"], KIND["Caption"], KIND["Attribute"]
# The base edges a changed node's delta re-reads, by relationship family and node kind (graphdb.export):
# an image's attributes and interactions, every base edge of a liked caption.
_IMAGE_FAMILIES = frozenset({"HAS_ATTRIBUTE", *INTERACTION_TYPES})


def relation_family(relation: str) -> str:
    """``HAS_ATTRIBUTE:catalog~rev`` -> ``HAS_ATTRIBUTE``."""
    return relation.removesuffix(REVERSE).split(":", 1)[0]


def _ranges(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Every index of the ranges ``[start, start + count)``, and which range each came from."""
    owner = torch.repeat_interleave(torch.arange(len(counts)), counts)
    if len(owner) == 0:
        return owner, owner
    first = torch.cumsum(counts, 0) - counts
    return starts[owner] + (torch.arange(len(owner)) - first[owner]), owner


class LocalGraph:
    """Message edges of the base graph, editable in place (see the module docstring)."""

    def __init__(self, num_nodes: int, src: Tensor, dst: Tensor, rel: Tensor):
        self.num_nodes = num_nodes
        self.src, self.dst = src.to(torch.int32), dst.to(torch.int32)
        self.rel = rel.to(torch.int16)
        self.dead = torch.zeros(len(src), dtype=torch.bool)
        self.in_perm, self.in_ptr = self._index(self.dst, num_nodes)
        self.out_perm, self.out_ptr = self._index(self.src, num_nodes)
        self.base_nodes = num_nodes
        # Edges added since the last full sync: (src, dst, rel, alive), and who has them.
        self.extra: list[list[int]] = []
        self.extra_in: dict[int, list[int]] = {}
        self.extra_out: dict[int, list[int]] = {}

    @staticmethod
    def _index(key: Tensor, n: int) -> tuple[Tensor, Tensor]:
        perm = torch.argsort(key.long(), stable=True).to(torch.int32)
        ptr = torch.zeros(n + 1, dtype=torch.long)
        ptr[1:] = torch.cumsum(torch.bincount(key.long(), minlength=n), 0)
        return perm, ptr

    def add_node(self) -> int:
        self.num_nodes += 1
        return self.num_nodes - 1

    def _base(self, nodes: Tensor, ptr: Tensor, perm: Tensor) -> tuple[Tensor, Tensor]:
        known = nodes < self.base_nodes
        at = torch.nonzero(known).flatten()
        inside = nodes[known]
        idx, owner = _ranges(ptr[inside], ptr[inside + 1] - ptr[inside])
        eids = perm[idx].long()
        alive = ~self.dead[eids]
        return eids[alive], at[owner[alive]]

    def _extra(self, nodes: Tensor, index: dict[int, list[int]]) -> tuple[list[int], list[int]]:
        ks, owners = [], []
        if not index:
            return ks, owners
        for pos, node in enumerate(nodes.tolist()):
            for k in index.get(node, ()):
                if self.extra[k][3]:
                    ks.append(k)
                    owners.append(pos)
        return ks, owners

    def in_edges(self, nodes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(source, position in ``nodes`` of the destination, relation) of every live edge into ``nodes``."""
        eids, pos = self._base(nodes, self.in_ptr, self.in_perm)
        src, rel = self.src[eids].long(), self.rel[eids].long()
        ks, owners = self._extra(nodes, self.extra_in)
        if ks:
            src = torch.cat([src, torch.tensor([self.extra[k][0] for k in ks])])
            rel = torch.cat([rel, torch.tensor([self.extra[k][2] for k in ks])])
            pos = torch.cat([pos, torch.tensor(owners)])
        return src, pos, rel

    def out_edges(self, nodes: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(destination, position in ``nodes`` of the source, relation) of every live edge out of ``nodes``."""
        eids, pos = self._base(nodes, self.out_ptr, self.out_perm)
        dst, rel = self.dst[eids].long(), self.rel[eids].long()
        ks, owners = self._extra(nodes, self.extra_out)
        if ks:
            dst = torch.cat([dst, torch.tensor([self.extra[k][1] for k in ks])])
            rel = torch.cat([rel, torch.tensor([self.extra[k][2] for k in ks])])
            pos = torch.cat([pos, torch.tensor(owners)])
        return dst, pos, rel

    def incident(self, node: int) -> list[tuple[tuple[int, int, int], tuple[str, int]]]:
        """Every live edge into or out of ``node``: ((src, dst, rel), handle)."""
        out = []
        t = torch.tensor([node])
        for ptr, perm in ((self.in_ptr, self.in_perm), (self.out_ptr, self.out_perm)):
            eids, _ = self._base(t, ptr, perm)
            for e in eids.tolist():
                out.append(((int(self.src[e]), int(self.dst[e]), int(self.rel[e])), ("b", e)))
        for index in (self.extra_in, self.extra_out):
            for k in index.get(node, ()):
                s, d, r, alive = self.extra[k]
                if alive:
                    out.append(((s, d, r), ("x", k)))
        return out

    def remove(self, handle: tuple[str, int]) -> None:
        kind, i = handle
        if kind == "b":
            self.dead[i] = True
        else:
            self.extra[i][3] = 0

    def add(self, src: int, dst: int, rel: int) -> None:
        k = len(self.extra)
        self.extra.append([src, dst, rel, 1])
        self.extra_in.setdefault(dst, []).append(k)
        self.extra_out.setdefault(src, []).append(k)

    def live_edges(self) -> int:
        return int((~self.dead).sum()) + sum(e[3] for e in self.extra)


@dataclass
class Change:
    """A delta applied to the graph: what the refresh must recompute from."""

    seeds: set[int] = field(default_factory=set)  # nodes whose incoming edges changed
    added: list[tuple[int, int, int]] = field(default_factory=list)
    removed: list[tuple[int, int, int]] = field(default_factory=list)
    new_nodes: dict[int, Tensor] = field(default_factory=dict)  # node -> its layer-0 embedding
    new_attributes: int = 0
    full: str = ""  # why only a full refresh is right (the catalog's images changed, an attribute vanished)


@dataclass
class LocalReport:
    changed_images: list[int]  # image rows whose final embedding moved
    recomputed: list[int]  # nodes recomputed at each layer
    held_hubs: int  # hubs that changed, whose readers wait for the next full sync
    seconds: float


def change_beyond_rounding(new: Tensor, stored: Tensor, dtype: torch.dtype) -> Tensor:
    """Per row, the largest coordinate change from ``stored`` (a value as kept in ``dtype``) to ``new``
    (float32) that is not the storage's own rounding: ``stored`` differs from the value it rounds by up to
    half a unit in the last place, in float16 2^-11 of the value: for coordinates of a few units, as large
    as the default hub tolerance, and the drift adds it up refresh after refresh. Without this every
    recomputed hub looked moved and was passed on (measured at a million products with float16 layers: a
    like took 17 s, recomputing the readers of every hub it reached)."""
    change = (new - stored).abs()
    if dtype != torch.float32:
        info = torch.finfo(dtype)
        change = (change - (stored.abs() * (info.eps / 2) + info.tiny * info.eps)).clamp(min=0)
    return change.amax(dim=1).double()


class LocalState:
    """The base graph's message edges, every base node's per-layer embeddings (images and attributes in the
    search bundle, liked captions here) and each hub's sums: what :meth:`refresh` needs."""

    def __init__(self, graph: LocalGraph, relations: list[str], config: GraphConfig, kinds: Tensor,
                 rows: Tensor, attribute_nodes: dict[str, int], caption_nodes: dict[str, int],
                 caption_layers: Tensor, hub_degree: int, hub_tolerance: float):
        self.graph = graph
        self.relations = list(relations)
        self.config = config
        self.rel_id = {r: i for i, r in enumerate(self.relations)}
        self.family = [relation_family(r) for r in self.relations]
        self.kinds = kinds  # int8 [N]: NODE_KINDS code
        self.rows = rows  # int64 [N]: row in its kind's store
        self.attribute_nodes = attribute_nodes
        self.caption_nodes = caption_nodes
        self.caption_layers = caption_layers  # [L+1, n_captions, hidden] float32
        self.hub_degree = hub_degree
        self.hub_tolerance = hub_tolerance
        self.hub_row: dict[int, int] = {}
        self.hub_nodes = torch.zeros(0, dtype=torch.long)  # sorted
        self.hub_sums = torch.zeros(0)  # [L, H, R, hidden] float64
        self.hub_counts = torch.zeros(0, dtype=torch.long)  # [H, R]
        self.hub_drift = torch.zeros(0, dtype=torch.float64)  # [L, H]: held change per layer, not yet passed on
        # Hubs passed on by a refresh that deferred it: layer -> hubs whose readers that layer recomputes.
        self.deferred: dict[int, Tensor] = {}
        self.topology_id = uuid.uuid4().hex  # names the edges of the last full sync (saved once per full sync)
        self._pairs: dict[str, tuple[int, int]] = {}

    # --- building, from a full pass ---------------------------------------------------------------
    @classmethod
    def build(cls, g: GraphTensors, layers: Tensor, config: GraphConfig, hub_degree: int = 256,
              hub_tolerance: float = 1e-3) -> LocalState:
        """From the base graph ``g`` (images, attributes, captions that speak) and every layer of its nodes'
        embeddings ``[L+1, N, hidden]`` (the full pass a publish or full sync just made)."""
        n = g.num_nodes
        kinds = torch.empty(n, dtype=torch.int8)
        rows = torch.empty(n, dtype=torch.long)
        for kind in NODE_KINDS:
            lo, count = g.offsets[kind], len(g.ids[kind])
            kinds[lo : lo + count] = KIND[kind]
            rows[lo : lo + count] = torch.arange(count)
        graph = LocalGraph(n, g.edge_index[0], g.edge_index[1], g.edge_type)
        lo, count = g.offsets["Caption"], len(g.ids["Caption"])
        state = cls(graph, g.relations, config, kinds, rows,
                    {a: g.offsets["Attribute"] + i for i, a in enumerate(g.ids["Attribute"])},
                    {c: lo + i for i, c in enumerate(g.ids["Caption"])},
                    layers[:, lo : lo + count].float().clone(), hub_degree, hub_tolerance)
        state._build_hubs(layers)
        return state

    def _build_hubs(self, layers: Tensor) -> None:
        g = self.graph
        indegree = g.in_ptr[1:] - g.in_ptr[:-1]
        hubs = torch.nonzero((indegree > self.hub_degree) & (self.kinds[: g.base_nodes] == ATTRIBUTE)).flatten()
        self._set_hubs(hubs)
        L, R, hidden = layers.shape[0] - 1, len(self.relations), layers.shape[-1]
        sums = torch.zeros((L, len(hubs), R, hidden), dtype=torch.float64)
        counts = torch.zeros((len(hubs), R), dtype=torch.long)
        if len(hubs):
            src, pos, rel = g.in_edges(hubs)
            counts.index_put_((pos, rel), torch.ones_like(pos), accumulate=True)
            step = 1 << 17  # a chunk of edges at a time: they are most of the graph
            for a in range(0, len(src), step):
                s, p, r = src[a : a + step], pos[a : a + step], rel[a : a + step]
                key = p * R + r
                for layer in range(L):
                    sums[layer].view(-1, hidden).index_add_(0, key, layers[layer, s].double())
        self.hub_sums, self.hub_counts = sums, counts
        self.hub_drift = torch.zeros((L, len(hubs)), dtype=torch.float64)

    # --- saving ------------------------------------------------------------------------------------
    _TOPOLOGY = ("src", "dst", "rel", "in_perm", "in_ptr", "out_perm", "out_ptr")

    def topology_blob(self) -> dict[str, Any]:
        """The edges of the last full sync (unchanged until the next one: saved once, then linked)."""
        g = self.graph
        return {"id": self.topology_id, "base_nodes": g.base_nodes, **{k: getattr(g, k) for k in self._TOPOLOGY}}

    def state_blob(self) -> dict[str, Any]:
        """Everything else: what changed since, the node tables, caption layers and hub sums (small)."""
        g = self.graph
        return {"topology": self.topology_id, "num_nodes": g.num_nodes, "dead": g.dead, "extra": g.extra,
                "relations": self.relations, "config": dataclasses.asdict(self.config), "kinds": self.kinds,
                "rows": self.rows, "attribute_nodes": self.attribute_nodes, "caption_nodes": self.caption_nodes,
                "caption_layers": self.caption_layers, "hub_degree": self.hub_degree,
                "hub_tolerance": self.hub_tolerance, "hub_nodes": self.hub_nodes, "hub_sums": self.hub_sums,
                "hub_counts": self.hub_counts, "hub_drift": self.hub_drift, "deferred": self.deferred}

    @classmethod
    def from_blobs(cls, topology: dict[str, Any], state: dict[str, Any]) -> LocalState:
        if topology["id"] != state["topology"]:
            raise ValueError("the local refresh state belongs to other edges than the topology file")
        graph = LocalGraph.__new__(LocalGraph)
        for k in cls._TOPOLOGY:
            setattr(graph, k, topology[k])
        graph.base_nodes, graph.num_nodes, graph.dead = topology["base_nodes"], state["num_nodes"], state["dead"]
        graph.extra, graph.extra_in, graph.extra_out = [list(e) for e in state["extra"]], {}, {}
        for k, (src, dst, _, _) in enumerate(graph.extra):
            graph.extra_in.setdefault(dst, []).append(k)
            graph.extra_out.setdefault(src, []).append(k)
        config = GraphConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in state["config"].items()})
        out = cls(graph, state["relations"], config, state["kinds"], state["rows"], state["attribute_nodes"],
                  state["caption_nodes"], state["caption_layers"], state["hub_degree"], state["hub_tolerance"])
        out._set_hubs(state["hub_nodes"])
        out.hub_sums, out.hub_counts, out.hub_drift = state["hub_sums"], state["hub_counts"], state["hub_drift"]
        out.deferred = dict(state.get("deferred", {}))
        out.topology_id = topology["id"]
        return out

    # --- per-layer values ------------------------------------------------------------------------
    def get(self, bundle: Any, layer: int, nodes: Tensor) -> Tensor:
        """Layer ``layer`` of ``nodes`` (float32)."""
        out = torch.empty((len(nodes), bundle.image_layers.shape[-1]))
        kinds, rows = self.kinds[nodes], self.rows[nodes]
        for code, store in ((IMAGE, bundle.image_layers), (ATTRIBUTE, bundle.attribute_layers),
                            (CAPTION, self.caption_layers)):
            sel = kinds == code
            if bool(sel.any()):
                out[sel] = store[layer, rows[sel]].float()
        return out

    def set(self, bundle: Any, layer: int, nodes: Tensor, values: Tensor) -> None:
        kinds, rows = self.kinds[nodes], self.rows[nodes]
        for code, store in ((IMAGE, bundle.image_layers), (ATTRIBUTE, bundle.attribute_layers),
                            (CAPTION, self.caption_layers)):
            sel = kinds == code
            if bool(sel.any()):
                store[layer, rows[sel]] = values[sel].to(store.dtype)

    def _set_hubs(self, hubs: Tensor) -> None:
        """The hub tables: ``hubs`` sorted, a mask over the base nodes, and each hub's links to hubs."""
        g = self.graph
        self.hub_nodes = hubs
        self.hub_row = {int(h): i for i, h in enumerate(hubs.tolist())}
        self.hub_mask = torch.zeros(g.base_nodes, dtype=torch.bool)
        self.hub_mask[hubs] = True
        # A hub sends to most of the catalog, but its sums change only through its links to other hubs:
        # those base edges, by sending hub, so that a moved hub is not followed down all its edges.
        eids, owner = g._base(hubs, g.out_ptr, g.out_perm)
        into = self.hub_mask[g.dst[eids].long()]
        self.hub_link_eids, counts = eids[into], torch.bincount(owner[into], minlength=len(hubs))
        self.hub_link_ptr = torch.zeros(len(hubs) + 1, dtype=torch.long)
        self.hub_link_ptr[1:] = torch.cumsum(counts, 0)

    def is_hub(self, nodes: Tensor) -> Tensor:
        """Per node, whether it is a hub (only base attributes are; nodes added since never are)."""
        out = torch.zeros(len(nodes), dtype=torch.bool)
        base = nodes < len(self.hub_mask)
        out[base] = self.hub_mask[nodes[base]]
        return out

    def _edges_to_hubs(self, senders: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(destination, position in ``senders`` of the source, relation) of every live edge from
        ``senders`` into a hub; a hub sender is read from its hub links, not from all its edges."""
        g = self.graph
        from_hub = self.is_hub(senders)
        plain = torch.nonzero(~from_hub).flatten()
        dst, pos, rel = g.out_edges(senders[plain])
        into = self.is_hub(dst)
        parts = [(dst[into], plain[pos[into]], rel[into])]
        hubs = torch.nonzero(from_hub).flatten()
        if len(hubs):
            rows = torch.searchsorted(self.hub_nodes, senders[hubs])
            idx, owner = _ranges(self.hub_link_ptr[rows], self.hub_link_ptr[rows + 1] - self.hub_link_ptr[rows])
            eids = self.hub_link_eids[idx]
            alive = ~g.dead[eids]
            parts.append((g.dst[eids[alive]].long(), hubs[owner[alive]], g.rel[eids[alive]].long()))
            ks, owners = g._extra(senders[hubs], g.extra_out)
            if ks:
                d = torch.tensor([g.extra[k][1] for k in ks])
                r = torch.tensor([g.extra[k][2] for k in ks])
                into = self.is_hub(d)
                parts.append((d[into], hubs[torch.tensor(owners)][into], r[into]))
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))

    # --- applying a delta ------------------------------------------------------------------------
    def _node(self, kind: str, node_id: str, bundle: Any) -> int | None:
        if kind == "Image":
            return bundle.image_row.get(node_id)
        if kind == "Attribute":
            return self.attribute_nodes.get(node_id)
        return self.caption_nodes.get(node_id)

    def _new_node(self, kind: str, row: int) -> int:
        node = self.graph.add_node()
        self.kinds = torch.cat([self.kinds, torch.tensor([KIND[kind]], dtype=torch.int8)])
        self.rows = torch.cat([self.rows, torch.tensor([row])])
        return node

    def apply(self, delta: BaseDelta, bundle: Any, model: Any, text_features: Any) -> Change:
        """Bring the graph in line with ``delta`` (new attributes and liked captions become nodes; the
        changed nodes' edges are replaced by the delta's). Returns what the refresh must recompute, or a
        :class:`Change` whose ``full`` says why only a full refresh is right (nothing is changed then)."""
        change = Change()
        if delta.image_count != len(bundle.image_ids):
            change.full = f"the catalog holds {delta.image_count:,} images, the engine {len(bundle.image_ids):,}"
            return change
        gone = set(self.attribute_nodes) - set(delta.attributes)
        if gone:
            change.full = f"attribute(s) {', '.join(sorted(gone)[:3])} left the graph"
            return change
        encoder = model.encoder
        new_attrs = [a for a in delta.attributes if a not in self.attribute_nodes]
        if new_attrs:
            feats = torch.as_tensor(np.asarray(text_features.encode_texts(new_attrs)), dtype=torch.float32)
            with torch.no_grad():
                x0 = encoder.proj["Attribute"](feats)
            start = len(bundle.attribute_names)
            extra = torch.zeros((bundle.attribute_layers.shape[0], len(new_attrs), bundle.attribute_layers.shape[-1]),
                                dtype=bundle.attribute_layers.dtype)
            bundle.attribute_layers = torch.cat([bundle.attribute_layers, extra], dim=1)
            for i, name in enumerate(new_attrs):
                bundle.attribute_names.append(name)
                bundle.attribute_row[name] = start + i
                node = self.attribute_nodes[name] = self._new_node("Attribute", start + i)
                change.new_nodes[node] = x0[i]
            change.new_attributes = len(new_attrs)
        new_caps = [c for c in delta.liked_captions if c.id not in self.caption_nodes]
        if new_caps:
            feats = torch.as_tensor(np.asarray(text_features.encode_texts([c.text for c in new_caps])),
                                    dtype=torch.float32)
            with torch.no_grad():
                x0 = encoder.proj["Caption"](feats)
            start = self.caption_layers.shape[1]
            self.caption_layers = torch.cat([self.caption_layers, torch.zeros(
                (self.caption_layers.shape[0], len(new_caps), self.caption_layers.shape[-1]))], dim=1)
            for i, c in enumerate(new_caps):
                node = self.caption_nodes[c.id] = self._new_node("Caption", start + i)
                change.new_nodes[node] = x0[i]
        # The nodes whose edges the delta holds; captions no longer liked lose all their edges.
        changed: dict[int, str] = {}
        for image in delta.images:
            node = bundle.image_row.get(image)
            if node is not None:
                changed[node] = "Image"
        gone_captions = []
        for caption in delta.captions:
            node = self.caption_nodes.get(caption)
            if node is not None:
                changed[node] = "Caption"
                if caption not in delta.still_liked:
                    gone_captions.append(caption)
        for caption in gone_captions:
            del self.caption_nodes[caption]
        old: dict[tuple[str, int], tuple[int, int, int]] = {}
        for node in changed:
            for key, handle in self.graph.incident(node):
                if self._covered(key, changed):
                    old[handle] = key
        new: Counter[tuple[int, int, int]] = Counter()
        for e in delta.edges:
            s, d = self._node(e.src_kind, e.src, bundle), self._node(e.dst_kind, e.dst, bundle)
            if s is None or d is None:
                continue
            pair = self._pairs.get(e.relation)
            if pair is None:
                pair = self._pairs[e.relation] = relation_pair(e.relation, self.config, self.rel_id)
            if pair[0] >= 0:
                new[(s, d, pair[0])] += 1
            if pair[1] >= 0:
                new[(d, s, pair[1])] += 1
        have: dict[tuple[int, int, int], list[tuple[str, int]]] = {}
        for handle, key in old.items():
            have.setdefault(key, []).append(handle)
        for key in set(have) | set(new):
            handles, wanted = have.get(key, []), new.get(key, 0)
            for handle in handles[wanted:]:
                self.graph.remove(handle)
                change.removed.append(key)
            for _ in range(wanted - len(handles)):
                self.graph.add(*key)
                change.added.append(key)
        for edges, step in ((change.added, 1), (change.removed, -1)):
            for _, d, r in edges:
                change.seeds.add(d)
                row = self.hub_row.get(d)
                if row is not None:
                    self.hub_counts[row, r] += step
        change.seeds |= set(change.new_nodes)
        return change

    def _covered(self, key: tuple[int, int, int], changed: dict[int, str]) -> bool:
        """Whether the delta re-read the edge ``key``: it touches a changed node of a family that node's
        delta holds (every family for a liked caption)."""
        s, d, r = key
        for node in (s, d):
            kind = changed.get(node)
            if kind == "Caption" or (kind == "Image" and self.family[r] in _IMAGE_FAMILIES):
                return True
        return False

    # --- the refresh -----------------------------------------------------------------------------
    @torch.no_grad()
    def refresh(self, model: Any, bundle: Any, change: Change, defer: bool = False) -> LocalReport:
        """Recompute the nodes within reach of ``change`` layer by layer (see the module docstring) and
        write them into the bundle and this state. Returns the image rows whose final embedding moved.

        ``defer``: a hub passed on is not followed to its readers here but kept for :meth:`catch_up` (the
        readers of a hub like *men* are a third of the catalog: seconds at a million products, which the
        answer to a like need not wait for; until then they differ from a full refresh by that hub's held
        change, a little past ``hub_tolerance``)."""
        start = time.perf_counter()
        new_nodes = torch.tensor(sorted(change.new_nodes), dtype=torch.long)
        # Layer 0: only new nodes move (their features are new); every other node's projection is stored.
        if len(new_nodes):
            self.set(bundle, 0, new_nodes, torch.stack([change.new_nodes[int(n)] for n in new_nodes]))
        seeds = torch.tensor(sorted(change.seeds), dtype=torch.long)
        return self._propagate(model, bundle, change, new_nodes, seeds, 0, {}, defer, start)

    @torch.no_grad()
    def catch_up(self, model: Any, bundle: Any) -> LocalReport | None:
        """Recompute the readers of the hubs a deferring :meth:`refresh` passed on, and what they reach;
        ``None`` when there are none. Nothing else may change the graph or the layers in between."""
        if not self.deferred:
            return None
        deferred, self.deferred = self.deferred, {}
        empty = torch.zeros(0, dtype=torch.long)
        return self._propagate(model, bundle, Change(), empty, empty, min(deferred), deferred, False,
                               time.perf_counter())

    def _propagate(self, model: Any, bundle: Any, change: Change, new_nodes: Tensor, seeds: Tensor,
                   first: int, passed_on: dict[int, Tensor], defer: bool, start: float,
                   chunk: int = 1 << 15) -> LocalReport:
        """Layers ``first`` on: the nodes changed at the layer before (``new_nodes`` at layer 0), the seeds,
        and the readers of the hubs ``passed_on`` at each layer."""
        encoder = model.encoder
        convs, norms = list(encoder.convs), list(encoder.norms)
        hidden = bundle.image_layers.shape[-1]
        prev = new_nodes if first == 0 else torch.zeros(0, dtype=torch.long)
        prev_old = torch.zeros((len(prev), hidden))
        added_keys = self._keys(change.added)
        recomputed, held_hubs = [], set()
        pushed = torch.zeros(0, dtype=torch.long)
        for layer in range(first, len(convs)):
            conv, norm = convs[layer], norms[layer]
            if layer in passed_on:
                pushed = torch.unique(torch.cat([pushed, passed_on[layer]]))
            spread = torch.cat([prev[~self.is_hub(prev)], pushed])
            dst, _, _ = self.graph.out_edges(spread)
            active = torch.unique(torch.cat([prev, seeds, dst]))
            hub_mask = self.is_hub(active)
            if bool(hub_mask.any()):
                self._update_hub_sums(bundle, layer, prev, prev_old, new_nodes, added_keys, change)
            weights = conv.weights()
            new = torch.empty((len(active), hidden))
            for a in range(0, len(active), chunk):
                part, hubs_here = active[a : a + chunk], hub_mask[a : a + chunk]
                means = self._means(bundle, layer, part, hubs_here)
                x = self.get(bundle, layer, part)
                new[a : a + chunk] = x + F.relu(norm(conv.root(x) + torch.einsum("krh,rho->ko", means, weights)))
            prev_old = self.get(bundle, layer + 1, active)
            self.set(bundle, layer + 1, active, new)
            # A hub's change is passed on only once its held changes add up past the tolerance.
            pushed = torch.zeros(0, dtype=torch.long)
            if bool(hub_mask.any()):
                hubs = active[hub_mask]
                rows = torch.tensor([self.hub_row[int(h)] for h in hubs])
                moved = change_beyond_rounding(new[hub_mask], prev_old[hub_mask], bundle.attribute_layers.dtype)
                drift = self.hub_drift[layer, rows] + moved
                push = drift > self.hub_tolerance
                self.hub_drift[layer, rows] = torch.where(push, torch.zeros_like(drift), drift)
                if layer + 1 < len(convs) and bool(push.any()):
                    if defer:
                        before = self.deferred.get(layer + 1, torch.zeros(0, dtype=torch.long))
                        self.deferred[layer + 1] = torch.unique(torch.cat([before, hubs[push]]))
                    else:
                        pushed = hubs[push]
                held_hubs.update(hubs[~push & (moved > 0)].tolist())
            prev = active
            recomputed.append(len(active))
        images = prev[self.kinds[prev] == IMAGE]
        return LocalReport(images.tolist(), recomputed, len(held_hubs), time.perf_counter() - start)

    def _means(self, bundle: Any, layer: int, nodes: Tensor, hub_mask: Tensor) -> Tensor:
        """``[k, R, hidden]``: each node's mean over its in-neighbours' layer ``layer``, per relation (zero
        where it has none), from the neighbours for ordinary nodes and from the sums for hubs."""
        R, hidden = len(self.relations), bundle.image_layers.shape[-1]
        means = torch.zeros((len(nodes), R, hidden))
        plain = nodes[~hub_mask]
        if len(plain):
            src, pos, rel = self.graph.in_edges(plain)
            key = pos * R + rel
            total = torch.zeros((len(plain) * R, hidden)).index_add_(0, key, self.get(bundle, layer, src))
            count = torch.bincount(key, minlength=len(plain) * R).clamp(min=1)[:, None]
            means[~hub_mask] = (total / count).reshape(len(plain), R, hidden)
        if bool(hub_mask.any()):
            rows = torch.tensor([self.hub_row[int(h)] for h in nodes[hub_mask]])
            count = self.hub_counts[rows].clamp(min=1)[:, :, None].double()
            means[hub_mask] = (self.hub_sums[layer, rows] / count).float()
        return means

    def _keys(self, edges: list[tuple[int, int, int]]) -> Tensor:
        """One int64 per (src, dst, rel), to find edges among many."""
        if not edges:
            return torch.zeros(0, dtype=torch.long)
        t = torch.tensor(edges, dtype=torch.long)
        return self._key(t[:, 0], t[:, 1], t[:, 2])

    def _key(self, src: Tensor, dst: Tensor, rel: Tensor) -> Tensor:
        n = self.graph.num_nodes + 1
        return (src * n + dst) * len(self.relations) + rel

    def _update_hub_sums(self, bundle: Any, layer: int, prev: Tensor, prev_old: Tensor, new_nodes: Tensor,
                         added_keys: Tensor, change: Change, chunk: int = 1 << 18) -> None:
        """Hub sums of layer ``layer`` after the senders in ``prev`` moved (``prev_old``: their values before)
        and ``change``'s edges were added and removed."""
        if len(prev):
            dst, pos, rel = self._edges_to_hubs(prev)
            src = prev[pos]
            # An edge added this time contributes its sender whole (below), not a change; so does a new node.
            kept = ~torch.isin(self._key(src, dst, rel), added_keys) & ~torch.isin(src, new_nodes)
            dst, pos, rel, src = dst[kept], pos[kept], rel[kept], src[kept]
            for a in range(0, len(dst), chunk):
                sl = slice(a, a + chunk)
                delta = (self.get(bundle, layer, src[sl]) - prev_old[pos[sl]]).double()
                self._add_to_hubs(layer, dst[sl], rel[sl], delta)
        into = [k for k in change.added if k[1] in self.hub_row]
        if into:
            t = torch.tensor(into)
            self._add_to_hubs(layer, t[:, 1], t[:, 2], self.get(bundle, layer, t[:, 0]).double())
        gone = [k for k in change.removed if k[1] in self.hub_row]
        if gone:
            t = torch.tensor(gone)
            values = self.get(bundle, layer, t[:, 0])
            in_prev = torch.isin(t[:, 0], prev)
            if bool(in_prev.any()):  # senders recomputed this time: their value before
                values[in_prev] = prev_old[torch.searchsorted(prev, t[:, 0][in_prev])]
            self._add_to_hubs(layer, t[:, 1], t[:, 2], -values.double())

    def _add_to_hubs(self, layer: int, hubs: Tensor, rel: Tensor, values: Tensor) -> None:
        R = len(self.relations)
        rows = torch.searchsorted(self.hub_nodes, hubs.contiguous())
        self.hub_sums[layer].view(-1, self.hub_sums.shape[-1]).index_add_(0, rows * R + rel, values)
