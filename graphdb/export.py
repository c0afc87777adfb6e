"""Streaming reads of the graph into plain records (readers.graph_records); no tensors here.

Every read here runs in read transactions (``READ_ACCESS`` sessions, ``RoutingControl.READ``), so that with
a ``neo4j://`` URI to a cluster the driver sends them to read replicas and the writes to the leader; they
share the driver's bookmark manager with the writes (:mod:`graphdb.interactions`), so a read after a write
waits for a replica that has it (causal consistency).

The model side (``gnn.data.graph``) turns a :class:`GraphExport` into tensors. Node order is sorted by id
within each node kind, so the id map is stable across exports of the same graph.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from sys import intern
from typing import Any

from neo4j import READ_ACCESS, Driver, RoutingControl

from graphdb.predicted import PREDICTED
from readers.graph_records import (
    INTERACTION_TYPES,
    LIKED_WITH,
    MODIFIES,
    BaseDelta,
    CaptionRow,
    GraphColumns,
    GraphExport,
    ImageRow,
    TypedEdge,
)

# Interaction types stored as relationships; LIKED_WITH is derived from the liked sets (liked_with_edges).
_STORED_INTERACTIONS = [t for t in INTERACTION_TYPES if t != LIKED_WITH]

_IMAGES = "MATCH (i:Image) RETURN i.id AS id, coalesce(i.image_path, '') AS path, coalesce(i.title, '') AS title, coalesce(i.split, '') AS split, coalesce(i.group, '') AS grp ORDER BY id"
_CAPTIONS = """
MATCH (c:Caption)
OPTIONAL MATCH (c)-[:MODIFIES]->(cand:Image)
OPTIONAL MATCH (c)-[:TARGETS]->(t:Image)
RETURN c.id AS id, c.text AS text, coalesce(c.split, '') AS split, coalesce(c.group, '') AS grp,
       cand.id AS candidate, t.id AS target
ORDER BY id
"""
_ATTRIBUTES = "MATCH (a:Attribute) RETURN a.name AS name, coalesce(a.kind, 'unknown') AS kind ORDER BY name"
_HAS_ATTRIBUTE = """
MATCH (i:Image)-[r:HAS_ATTRIBUTE]->(a:Attribute)
WHERE r.confidence IS NULL OR r.confidence >= $min_confidence
RETURN i.id AS src, a.name AS dst, coalesce(r.source, 'catalog') AS source, r.confidence AS confidence
"""
_MODIFIES = "MATCH (c:Caption)-[:MODIFIES]->(i:Image) RETURN c.id AS src, i.id AS dst"
_MENTIONS = "MATCH (c:Caption)-[m:MENTIONS]->(a:Attribute) RETURN c.id AS src, a.name AS dst, coalesce(m.role, 'mentioned') AS role"
# Interactions: each type's end points are fixed by the schema (see graphdb.interactions).
_INTERACTIONS = """
MATCH (s)-[r]->(d)
WHERE type(r) IN $types
RETURN type(r) AS type, labels(s)[0] AS src_kind, s[CASE WHEN s:Attribute THEN 'name' ELSE 'id' END] AS src,
       labels(d)[0] AS dst_kind, d[CASE WHEN d:Attribute THEN 'name' ELSE 'id' END] AS dst
"""
# The liked sets: the images one person liked for one query.
_LIKED_SETS = """
MATCH (i:Image)-[r:LIKED_FOR]->(c:Caption)
RETURN c.id AS caption, coalesce(r.who, '') AS who, collect(i.id) AS images
"""


def liked_with_edges(pairs) -> list[TypedEdge]:
    """LIKED_WITH edges from ``(image, image, who)`` pairs liked together: one per pair and person,
    from the smaller id to the larger (the same person liking the pair for two queries is one edge, two
    people are two), in a stable order: what a stored pairwise edge per like would give."""
    unique = {(min(a, b), max(a, b), who) for a, b, who in pairs if a != b}
    return [TypedEdge(LIKED_WITH, "Image", a, "Image", b) for a, b, _ in sorted(unique)]


def _set_pairs(rows):
    for r in rows:
        images = sorted(set(r["images"]))
        for k, a in enumerate(images):
            for b in images[k + 1:]:
                yield a, b, r["who"]


def _attribute_edge(r) -> TypedEdge:
    """A HAS_ATTRIBUTE row as an edge. A predicted edge weighs its confidence (the R-GCN's messages are
    weighted means, so an uncertain prediction says less); every other source is a fact and weighs 1."""
    weight = 1.0
    if r["source"] == PREDICTED and r["confidence"] is not None:
        weight = float(r["confidence"])
    return TypedEdge(f"HAS_ATTRIBUTE:{r['source']}", "Image", r["src"], "Attribute", r["dst"], weight,
                     r["confidence"])


def _read_product_side(session, out: GraphExport, min_confidence: float) -> None:
    """Images, attributes, HAS_ATTRIBUTE and interaction edges: what both exports read."""
    for r in session.run(_IMAGES):
        out.images.append(ImageRow(r["id"], r["path"], r["title"], r["split"], r["grp"]))
    for r in session.run(_ATTRIBUTES):
        out.attributes[r["name"]] = r["kind"]
    for r in session.run(_HAS_ATTRIBUTE, min_confidence=min_confidence):
        out.edges.append(_attribute_edge(r))
    for r in session.run(_INTERACTIONS, types=_STORED_INTERACTIONS):
        out.edges.append(TypedEdge(r["type"], r["src_kind"], r["src"], r["dst_kind"], r["dst"]))
    out.edges.extend(liked_with_edges(_set_pairs(session.run(_LIKED_SETS))))


def export_graph(
    driver: Driver,
    min_confidence: float = 0.0,
    database: str | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> GraphExport:
    """Read nodes and typed edges. Relation names: ``HAS_ATTRIBUTE:<source>``, ``MODIFIES``,
    ``MENTIONS:<role>``, ``TARGETS`` (supervision) and the interaction types."""
    start = time.perf_counter()
    out = GraphExport()
    with driver.session(database=database, fetch_size=20000, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        _read_product_side(session, out, min_confidence)
        for r in session.run(_CAPTIONS):
            out.captions.append(
                CaptionRow(r["id"], r["text"], r["split"], r["grp"], r["candidate"], r["target"])
            )
        if progress:
            progress("nodes", len(out.images) + len(out.captions) + len(out.attributes))
        for r in session.run(_MODIFIES):
            out.edges.append(TypedEdge(MODIFIES, "Caption", r["src"], "Image", r["dst"]))
        for r in session.run(_MENTIONS):
            out.edges.append(TypedEdge(f"MENTIONS:{r['role']}", "Caption", r["src"], "Attribute", r["dst"]))
        if progress:
            progress("edges", len(out.edges))
    out.seconds = time.perf_counter() - start
    return out


# --- as columns: a million products ----------------------------------------------------------------

_IMAGE_COLUMNS = """
MATCH (i:Image)
RETURN i.id AS id, coalesce(i.image_path, '') AS path, coalesce(i.title, '') AS title,
       coalesce(i.split, '') AS split, coalesce(i.group, '') AS grp,
       [(i)-[r:HAS_ATTRIBUTE]->(a:Attribute) WHERE r.confidence IS NULL OR r.confidence >= $min_confidence
        | [a.name, coalesce(r.source, 'catalog')]] AS attrs
ORDER BY id
"""
_CAPTION_COLUMNS = """
MATCH (c:Caption)
WHERE NOT $liked_only OR EXISTS { (:Image)-[:LIKED_FOR]->(c) }
RETURN c.id AS id, c.text AS text, coalesce(c.split, '') AS split, coalesce(c.group, '') AS grp,
       [(c)-[:MODIFIES]->(x:Image) | x.id] AS candidates, [(c)-[:TARGETS]->(t:Image) | t.id] AS targets,
       [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]] AS mentions
ORDER BY id
"""


def export_graph_columns(driver: Driver, base_only: bool = False, min_confidence: float = 0.0,
                         database: str | None = None, progress: Callable[[str, int], None] | None = None
                         ) -> GraphColumns:
    """:func:`export_graph` (or, with ``base_only``, :func:`export_base`) read into columns: one record per
    node (its edges as a list), ids mapped to row numbers as they stream in. A million products read this
    way take a few hundred megabytes; as records they would take several gigabytes."""
    start = time.perf_counter()
    out = GraphColumns()
    with driver.session(database=database, fetch_size=20000, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        for r in session.run(_ATTRIBUTES):
            out.attributes[r["name"]] = r["kind"]
        attribute_row = {a: n for n, a in enumerate(out.attributes)}
        by_source: dict[str, Any] = {}
        for n, r in enumerate(session.run(_IMAGE_COLUMNS, min_confidence=min_confidence)):
            out.image_ids.append(r["id"])
            out.image_paths.append(intern(r["path"]))  # repeated values held once (splits, groups, shared photos)
            out.image_titles.append(r["title"])
            out.image_splits.append(intern(r["split"]))
            out.image_groups.append(intern(r["grp"]))
            for name, source in r["attrs"]:
                column = by_source.get(source)
                if column is None:
                    column = by_source[source] = out.edge_column(f"HAS_ATTRIBUTE:{source}", "Image", "Attribute")
                column.src.append(n)
                column.dst.append(attribute_row[name])
        if progress:
            progress("images", len(out.image_ids))
        image_row = {i: n for n, i in enumerate(out.image_ids)}
        for n, r in enumerate(session.run(_CAPTION_COLUMNS, liked_only=base_only)):
            out.caption_ids.append(r["id"])
            out.caption_texts.append(intern(r["text"]))
            out.caption_splits.append(intern(r["split"]))
            out.caption_groups.append(intern(r["grp"]))
            candidates = sorted(r["candidates"])
            out.caption_candidate.append(image_row.get(candidates[0], -1) if candidates else -1)
            targets = r["targets"]
            out.caption_target.append(image_row.get(targets[0], -1) if targets and not base_only else -1)
            for candidate in candidates:
                if candidate in image_row:
                    column = out.edge_column(MODIFIES, "Caption", "Image")
                    column.src.append(n)
                    column.dst.append(image_row[candidate])
            for name, role in r["mentions"]:
                column = out.edge_column(f"MENTIONS:{role}", "Caption", "Attribute")
                column.src.append(n)
                column.dst.append(attribute_row[name])
        if progress:
            progress("captions", len(out.caption_ids))
        rows = {"Image": image_row, "Caption": {c: n for n, c in enumerate(out.caption_ids)},
                "Attribute": attribute_row}
        for r in session.run(_INTERACTIONS, types=_STORED_INTERACTIONS):
            s, d = rows[r["src_kind"]].get(r["src"]), rows[r["dst_kind"]].get(r["dst"])
            if s is None or d is None:
                continue
            column = out.edge_column(r["type"], r["src_kind"], r["dst_kind"])
            column.src.append(s)
            column.dst.append(d)
        for e in liked_with_edges(_set_pairs(session.run(_LIKED_SETS))):
            s, d = image_row.get(e.src), image_row.get(e.dst)
            if s is not None and d is not None:
                column = out.edge_column(LIKED_WITH, "Image", "Image")
                column.src.append(s)
                column.dst.append(d)
    out.seconds = time.perf_counter() - start
    return out


# A liked caption, as the base graph holds it: one row per caption, its candidates and mentions as lists.
_LIKED_CAPTION_ROW = """
RETURN c.id AS id, c.text AS text, coalesce(c.split, '') AS split, coalesce(c.group, '') AS grp,
       [(c)-[:MODIFIES]->(x:Image) | x.id] AS candidates,
       [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]] AS mentions
"""
_LIKED_CAPTIONS = """
MATCH (:Image)-[:LIKED_FOR]->(c:Caption)
WITH DISTINCT c
""" + _LIKED_CAPTION_ROW


def _add_liked_captions(out: GraphExport, rows) -> None:
    """Liked captions with their MODIFIES and MENTIONS edges (captions that speak, so they are base)."""
    for r in rows:
        candidates = sorted(r["candidates"])
        out.captions.append(CaptionRow(r["id"], r["text"], r["split"], r["grp"],
                                       candidates[0] if candidates else None, None))
        for candidate in candidates:
            out.edges.append(TypedEdge(MODIFIES, "Caption", r["id"], "Image", candidate))
        for name, role in r["mentions"]:
            out.edges.append(TypedEdge(f"MENTIONS:{role}", "Caption", r["id"], "Attribute", name))


def export_base(driver: Driver, database: str | None = None) -> GraphExport:
    """What image and attribute embeddings depend on: images, attributes, HAS_ATTRIBUTE edges, the
    interaction edges, and the captions that interactions link to (with their own edges). Captions that
    only listen are left out, which makes this a fraction of a full export (used after interactions)."""
    start = time.perf_counter()
    out = GraphExport()
    with driver.session(database=database, fetch_size=20000, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        _read_product_side(session, out, min_confidence=0.0)
        _add_liked_captions(out, session.run(_LIKED_CAPTIONS))
    out.seconds = time.perf_counter() - start
    return out


# --- keeping a base export current without re-reading it -------------------------------------------

_COUNT_IMAGES = "MATCH (i:Image) RETURN count(i) AS n"
_IMAGE_IDS = "MATCH (i:Image) RETURN collect(i.id) AS ids"
_DELTA_IMAGES = """
UNWIND $ids AS id
MATCH (i:Image {id: id})
RETURN i.id AS id, coalesce(i.image_path, '') AS path, coalesce(i.title, '') AS title,
       coalesce(i.split, '') AS split, coalesce(i.group, '') AS grp
"""
# Everything an Image or an interaction Caption sends or receives in the base graph, re-read for the
# nodes whose updated_at moved (every write of an interaction or curator script marks the nodes it
# touches, see graphdb.interactions, deletions included): the image count, the attribute list, which of
# the asked captions are still liked (a deleted query leaves no updated_at to find it by), the changed
# images' attributes, the interactions of the changed images and captions, the pairs liked together
# that involve a changed image (found from both ends when both changed) and the liked captions with
# their edges. One statement: one round trip, where seven took most of a like's read at a few
# milliseconds each.
_BASE_DELTA = """
CALL () { MATCH (i:Image) RETURN count(i) AS image_count }
CALL () { MATCH (a:Attribute) RETURN collect([a.name, coalesce(a.kind, 'unknown')]) AS attributes }
CALL () {
  UNWIND $asked AS id
  MATCH (c:Caption {id: id})
  WHERE EXISTS { (:Image)-[:LIKED_FOR]->(c) }
  RETURN collect(c.id) AS still_liked
}
CALL () {
  UNWIND $images AS id
  MATCH (i:Image {id: id})-[r:HAS_ATTRIBUTE]->(a:Attribute)
  RETURN collect({src: i.id, dst: a.name, source: coalesce(r.source, 'catalog'), confidence: r.confidence})
         AS image_attributes
}
CALL () {
  CALL () {
    UNWIND $images AS id MATCH (:Image {id: id})-[r]-() WHERE type(r) IN $types RETURN r
    UNION
    UNWIND $captions AS id MATCH (:Caption {id: id})-[r]-() WHERE type(r) IN $types RETURN r
  }
  WITH r, startNode(r) AS s, endNode(r) AS d
  RETURN collect({type: type(r), src_kind: labels(s)[0], src: s[CASE WHEN s:Attribute THEN 'name' ELSE 'id' END],
                  dst_kind: labels(d)[0], dst: d[CASE WHEN d:Attribute THEN 'name' ELSE 'id' END]}) AS interactions
}
CALL () {
  UNWIND $images AS id
  MATCH (x:Image {id: id})-[r:LIKED_FOR]->(:Caption)<-[s:LIKED_FOR]-(y:Image)
  WHERE y <> x AND coalesce(s.who, '') = coalesce(r.who, '')
  WITH DISTINCT x.id AS a, y.id AS b, coalesce(r.who, '') AS who
  RETURN collect([a, b, who]) AS liked_with
}
CALL () {
  UNWIND $captions AS id
  MATCH (c:Caption {id: id})
  WHERE EXISTS { (:Image)-[:LIKED_FOR]->(c) }
  RETURN collect({id: c.id, text: c.text, split: coalesce(c.split, ''), grp: coalesce(c.group, ''),
                  candidates: [(c)-[:MODIFIES]->(x:Image) | x.id],
                  mentions: [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]]})
         AS liked_captions
}
RETURN image_count, attributes, still_liked, image_attributes, interactions, liked_with, liked_captions
"""
_PRODUCT_SIDE = ("HAS_ATTRIBUTE:", *INTERACTION_TYPES)


def server_time(driver: Driver, database: str | None = None):
    """The database server's clock (what ``updated_at`` and ``created_at`` are written with)."""
    with driver.session(database=database, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        return session.run("RETURN datetime() AS now").single(strict=True)["now"].to_native()


def update_base(
    driver: Driver,
    base: GraphExport,
    images: list[str],
    captions: list[str],
    database: str | None = None,
) -> GraphExport:
    """``base`` (an :func:`export_base`) brought up to date for changed ``images`` and ``captions``.

    Changed images (new products among them: a load marks what it creates or changes) have their rows
    and base edges re-read (so removed tags, merged attributes and changed catalog rows show, new ones
    appear); the attribute list is re-read whole (a few hundred rows), and the base's captions are
    checked to still be liked (a deleted query leaves no node to mark). Deleted images (retired products)
    leave no node to mark either: when the image count says some went, the id list is read to find them,
    and their rows and edges are dropped.
    """
    start = time.perf_counter()
    known = {r.id for r in base.images}
    images = sorted(set(images))
    with driver.session(database=database, fetch_size=20000, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        count = session.run(_COUNT_IMAGES).single(strict=True)["n"]
        gone: set[str] = set()
        if count != len(known | set(images)):  # some went (or hand-written Cypher made some unmarked)
            now = set(session.run(_IMAGE_IDS).single(strict=True)["ids"])
            gone = known - now
            images = sorted(set(images) & now | (now - known))
        rows = {r["id"]: ImageRow(r["id"], r["path"], r["title"], r["split"], r["grp"])
                for r in session.run(_DELTA_IMAGES, ids=images)}
        gone |= {i for i in images if i not in rows}  # marked, then deleted before this read
        out = GraphExport(images=sorted([r for r in base.images if r.id not in gone and r.id not in rows]
                                        + list(rows.values()), key=lambda r: r.id))
        images = sorted(rows)
        changed = ({("Image", i) for i in images} | {("Image", i) for i in gone}
                   | {("Caption", c) for c in captions})
        parts = _DeltaParts.read(session, images, captions, {c.id for c in base.captions})
        out.attributes = parts.attributes
        unliked = {("Caption", c.id) for c in base.captions if c.id not in parts.still_liked}
        changed |= unliked  # their edges are dropped and nothing is re-read for them
        kept_captions = [c for c in base.captions if ("Caption", c.id) not in changed]
        for e in base.edges:
            src_changed, dst_changed = (e.src_kind, e.src) in changed, (e.dst_kind, e.dst) in changed
            if (src_changed or dst_changed) and e.relation.startswith(_PRODUCT_SIDE):
                continue  # re-read below
            if src_changed and e.src_kind == "Caption":  # the caption's MODIFIES / MENTIONS, re-read below
                continue
            if (e.src_kind == "Image" and e.src in gone) or (e.dst_kind == "Image" and e.dst in gone):
                continue  # a retired product's
            if (e.dst_kind == "Attribute" and e.dst not in out.attributes) or (
                e.src_kind == "Attribute" and e.src not in out.attributes
            ):
                continue  # an attribute merged away
            out.edges.append(e)
        parts.add_to(out)
        out.captions = sorted(kept_captions + out.captions, key=lambda c: c.id)
    out.seconds = time.perf_counter() - start
    return out


def image_paths(driver: Driver, ids: list[str], database: str | None = None) -> dict[str, str]:
    """The stored image path of each of ``ids`` that is in the graph (by index: a few rows)."""
    if not ids:
        return {}
    records, _, _ = driver.execute_query(_DELTA_IMAGES, ids=sorted(set(ids)), database_=database,
                                         routing_=RoutingControl.READ)
    return {r["id"]: r["path"] for r in records}


# Neo4j plans a statement again for each size class of its list parameters (measured: lists of 1, of 3 to
# 5 and of 12 ids each took a new plan, of 0.6 to 1.8 s for the delta read at 100k products, where a
# planned run takes 10 to 30 ms). Padded with nulls, which match no node, to this length, the lists of a
# like or a tag stay in one size class, planned once (LiveEngine.warm_up).
PADDED_IDS = 20


def _padded(ids: list[str]) -> list[str | None]:
    return ids + [None] * (PADDED_IDS - len(ids))


@dataclass
class _DeltaParts:
    """What :data:`_BASE_DELTA` reads around changed images and captions."""

    image_count: int
    attributes: dict[str, str]
    still_liked: set[str]
    record: Any

    @classmethod
    def read(cls, session, images: list[str], captions: list[str], asked: set[str]) -> _DeltaParts:
        r = session.run(_BASE_DELTA, images=_padded(sorted(images)), captions=_padded(sorted(captions)),
                        asked=_padded(sorted(asked)), types=_STORED_INTERACTIONS).single(strict=True)
        return cls(r["image_count"], dict(sorted((name, kind) for name, kind in r["attributes"])),
                   set(r["still_liked"]), r)

    def add_to(self, out: GraphExport) -> None:
        """The changed nodes' base edges and liked captions, appended to ``out``."""
        r = self.record
        out.edges.extend(_attribute_edge(row) for row in r["image_attributes"])
        # One row per relationship (UNION: an edge between two changed nodes is found from both ends);
        # two people's equal tags stay two edges, as in a full export.
        out.edges.extend(TypedEdge(row["type"], row["src_kind"], row["src"], row["dst_kind"], row["dst"])
                         for row in r["interactions"])
        out.edges.extend(liked_with_edges((a, b, who) for a, b, who in r["liked_with"]))
        _add_liked_captions(out, r["liked_captions"])


def read_base_delta(
    driver: Driver,
    images: list[str],
    captions: list[str],
    known_captions: list[str] | set[str] = (),
    database: str | None = None,
) -> BaseDelta:
    """The base graph around changed ``images`` and ``captions`` as it is now, for a local refresh: their
    base edges (an image's attributes and interactions; every base edge of a caption that is liked), the
    liked ones among the captions, which of ``known_captions`` (the liked captions a refresh knows) are
    still liked, the attribute list and the number of images. Every read is by index or from the count
    store, so its cost follows what changed, not the catalog (the attribute list is a few hundred rows)."""
    start = time.perf_counter()
    delta = BaseDelta(sorted(images), sorted(captions))
    out = GraphExport()
    with driver.session(database=database, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        parts = _DeltaParts.read(session, delta.images, delta.captions, set(captions) | set(known_captions))
    delta.image_count, delta.attributes, delta.still_liked = parts.image_count, parts.attributes, parts.still_liked
    parts.add_to(out)
    delta.edges, delta.liked_captions = out.edges, out.captions
    out.seconds = time.perf_counter() - start
    return delta


_COMPOSED_QUERIES = """
MATCH (c:Caption {split: $split})-[:MODIFIES]->(cand:Image)
OPTIONAL MATCH (c)-[:TARGETS]->(t:Image)
RETURN c.id AS id, c.text AS text, cand.id AS candidate, t.id AS target
ORDER BY id
"""


def composed_queries(driver: Driver, split: str, database: str | None = None) -> list[CaptionRow]:
    """The composed queries of one split (id order), with candidate and target."""
    records, _, _ = driver.execute_query(_COMPOSED_QUERIES, split=split, database_=database,
                                         routing_=RoutingControl.READ)
    return [CaptionRow(r["id"], r["text"], split, "", r["candidate"], r["target"]) for r in records]
