"""The graph as plain records, and the names of its relationships: what graphdb/ reads out of Neo4j and
gnn/ turns into tensors. No Neo4j, no tensors here, so both sides import this and neither imports the other.

Relationship names are defined once, here:

- ``HAS_ATTRIBUTE`` (image -> attribute, with a ``source``: catalog | predicted | caption | user),
  ``MODIFIES`` (caption -> its candidate image), ``MENTIONS`` (caption -> attribute, with a ``role``),
  ``TARGETS`` (caption -> target image; supervision only, never a message);
- the interactions people add (:data:`INTERACTION_TYPES`), with the node kinds at their ends
  (:data:`INTERACTION_ENDS`).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

# Node kinds, in the order they are stacked in the model's global node index.
NODE_KINDS = ("Image", "Caption", "Attribute")

# The catalog's relationships.
HAS_ATTRIBUTE = "HAS_ATTRIBUTE"  # image -> attribute {source, confidence}
MODIFIES = "MODIFIES"  # caption -> the candidate image it modifies
MENTIONS = "MENTIONS"  # caption -> attribute {role}
TARGETS = "TARGETS"  # caption -> target image: supervision only, never a message
# MENTIONS {role}: what a caption does with an attribute it names.
CAPTION_ROLES = ("added", "removed", "mentioned")

# Interactions people add (see graphdb.interactions), and the node kinds at their ends.
USER_TAGGED = "USER_TAGGED"  # more metadata: someone says an image has an attribute
LIKED_WITH = "LIKED_WITH"  # images liked together (lower id -> higher id): derived, never stored (below)
LIKED_FOR = "LIKED_FOR"  # a liked image -> the query it was liked for
LIKED_FROM = "LIKED_FROM"  # a liked image -> that query's candidate
INTERACTION_ENDS: dict[str, tuple[str, str]] = {
    USER_TAGGED: ("Image", "Attribute"),
    LIKED_WITH: ("Image", "Image"),
    LIKED_FOR: ("Image", "Caption"),
    LIKED_FROM: ("Image", "Image"),
}
INTERACTION_TYPES: tuple[str, ...] = tuple(INTERACTION_ENDS)
LIKE_TYPES: tuple[str, ...] = (LIKED_WITH, LIKED_FOR, LIKED_FROM)
# What a like writes to Neo4j: one edge per liked image. LIKED_WITH, one per pair, is derived from the set of
# images one person liked for one query when the graph is read (graphdb.export), so a like stays linear.
STORED_LIKE_TYPES: tuple[str, ...] = (LIKED_FOR, LIKED_FROM)

# R-GCN relation names: a relationship read forwards is its type (HAS_ATTRIBUTE and MENTIONS qualified by
# source or role, "HAS_ATTRIBUTE:catalog"), read backwards the same with this suffix.
REVERSE = "~rev"


def reverse(relation: str) -> str:
    """The R-GCN relation of ``relation`` read from its end node to its start node."""
    return relation + REVERSE


@dataclass
class ImageRow:
    id: str
    image_path: str
    title: str
    split: str
    group: str


@dataclass
class CaptionRow:
    id: str
    text: str
    split: str
    group: str
    candidate: str | None
    target: str | None


@dataclass
class TypedEdge:
    """An edge between two nodes given by (kind, id); ``relation`` names its R-GCN relation type
    (``HAS_ATTRIBUTE:<source>``, ``MENTIONS:<role>``, ``MODIFIES`` or an interaction type).

    ``weight`` is the edge's share in its relation's weighted mean of messages: the confidence of a
    predicted attribute, 1 for every edge that is simply there. ``confidence``: a HAS_ATTRIBUTE edge's
    (predicted edges carry the classifier's; None: a plain fact), what the second stage reads."""

    relation: str
    src_kind: str
    src: str
    dst_kind: str
    dst: str
    weight: float = 1.0
    confidence: float | None = None


@dataclass
class GraphExport:
    """Nodes and typed edges of a graph, nodes sorted by id within each kind (a stable id map)."""

    images: list[ImageRow] = field(default_factory=list)
    captions: list[CaptionRow] = field(default_factory=list)
    attributes: dict[str, str] = field(default_factory=dict)  # name -> kind
    edges: list[TypedEdge] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def edges_per_second(self) -> float:
        return len(self.edges) / self.seconds if self.seconds else 0.0

    def image_attributes(self, sources: tuple[str, ...] = ("catalog",)) -> dict[str, set[str]]:
        """Image id -> attribute names, from HAS_ATTRIBUTE edges of the given sources."""
        wanted = {f"HAS_ATTRIBUTE:{s}" for s in sources}
        out: dict[str, set[str]] = {}
        for e in self.edges:
            if e.relation in wanted:
                out.setdefault(e.src, set()).add(e.dst)
        return out

    def attribute_sources(self) -> set[str]:
        """The HAS_ATTRIBUTE sources present (catalog, predicted, caption, ...)."""
        return {e.relation.split(":", 1)[1] for e in self.edges if e.relation.startswith("HAS_ATTRIBUTE:")}

    def caption_roles(self) -> dict[str, dict[str, set[str]]]:
        """Caption id -> role (added/removed/mentioned) -> attribute names."""
        out: dict[str, dict[str, set[str]]] = {}
        for e in self.edges:
            if e.relation.startswith("MENTIONS:"):
                role = e.relation.split(":", 1)[1]
                out.setdefault(e.src, {}).setdefault(role, set()).add(e.dst)
        return out


@dataclass
class BaseDelta:
    """The base graph around some changed nodes as it is now (read by ``graphdb.export.read_base_delta``):
    what a local refresh needs, instead of the whole base graph."""

    images: list[str]  # the changed images: their HAS_ATTRIBUTE and interaction edges are all in ``edges``
    captions: list[str]  # the changed captions: every base edge of those still liked is in ``edges``
    edges: list[TypedEdge] = field(default_factory=list)  # one per relationship
    liked_captions: list[CaptionRow] = field(default_factory=list)  # changed captions that are liked
    still_liked: set[str] = field(default_factory=set)  # of the captions asked about, those still liked
    attributes: dict[str, str] = field(default_factory=dict)  # every attribute: name -> kind
    image_count: int = 0


@dataclass
class EdgeColumn:
    """Edges of one relation as two columns of row numbers into the end kinds' tables."""

    src_kind: str
    dst_kind: str
    src: array = field(default_factory=lambda: array("i"))
    dst: array = field(default_factory=lambda: array("i"))

    def __len__(self) -> int:
        return len(self.src)


@dataclass
class GraphColumns:
    """A graph as columns: node tables (sorted by id within each kind, as :class:`GraphExport`) and, per
    relation, edges as row numbers. What a graph of a million products is read into: a record per node
    and edge would take several times the memory."""

    image_ids: list[str] = field(default_factory=list)
    image_paths: list[str] = field(default_factory=list)
    image_titles: list[str] = field(default_factory=list)
    image_splits: list[str] = field(default_factory=list)
    image_groups: list[str] = field(default_factory=list)
    caption_ids: list[str] = field(default_factory=list)
    caption_texts: list[str] = field(default_factory=list)
    caption_splits: list[str] = field(default_factory=list)
    caption_groups: list[str] = field(default_factory=list)
    caption_candidate: array = field(default_factory=lambda: array("i"))  # image row, -1: none
    caption_target: array = field(default_factory=lambda: array("i"))  # image row, -1: none
    attributes: dict[str, str] = field(default_factory=dict)  # name -> kind, sorted by name
    edges: dict[str, EdgeColumn] = field(default_factory=dict)  # relation name -> its edges
    seconds: float = 0.0

    @property
    def num_edges(self) -> int:
        return sum(len(e) for e in self.edges.values())

    def edge_column(self, relation: str, src_kind: str, dst_kind: str) -> EdgeColumn:
        column = self.edges.get(relation)
        if column is None:
            column = self.edges[relation] = EdgeColumn(src_kind, dst_kind)
        return column

    @classmethod
    def from_export(cls, export: GraphExport) -> GraphColumns:
        """The same graph as columns (unknown end nodes dropped, as tensors drop them)."""
        out = cls(attributes=dict(export.attributes), seconds=export.seconds)
        for r in export.images:
            out.image_ids.append(r.id)
            out.image_paths.append(r.image_path)
            out.image_titles.append(r.title)
            out.image_splits.append(r.split)
            out.image_groups.append(r.group)
        image_row = {i: n for n, i in enumerate(out.image_ids)}
        for c in export.captions:
            out.caption_ids.append(c.id)
            out.caption_texts.append(c.text)
            out.caption_splits.append(c.split)
            out.caption_groups.append(c.group)
            out.caption_candidate.append(image_row.get(c.candidate, -1) if c.candidate else -1)
            out.caption_target.append(image_row.get(c.target, -1) if c.target else -1)
        rows = {"Image": image_row, "Caption": {c: n for n, c in enumerate(out.caption_ids)},
                "Attribute": {a: n for n, a in enumerate(out.attributes)}}
        for e in export.edges:
            s, d = rows[e.src_kind].get(e.src), rows[e.dst_kind].get(e.dst)
            if s is None or d is None:
                continue
            column = out.edge_column(e.relation, e.src_kind, e.dst_kind)
            column.src.append(s)
            column.dst.append(d)
        return out
