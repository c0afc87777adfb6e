"""Interactions written to Neo4j: user queries, "more metadata" tags, "I like that", curator edits.

The database is the source of truth; embeddings follow it (``tailor sync`` finds what changed by
``updated_at`` on nodes and ``created_at`` on relationships, see :func:`changes_since`).

Relationships an interaction writes (each an R-GCN relation type, read in both directions)::

    (:Image)-[:USER_TAGGED {who, at, phrase, source: user|curator, created_at}]->(:Attribute)
    (:Image)-[:LIKED_FOR   {who, at, rank, created_at}]->(:Caption)    liked image -> the query
    (:Image)-[:LIKED_FROM  {who, at, query, created_at}]->(:Image)     liked image -> the query's candidate

Design decisions:

- **A like is stored as a set**: one LIKED_FOR edge per liked image, so liking n images writes 2n edges,
  not one per pair. The images one person liked for one query are "liked together"; the R-GCN's
  image-image LIKED_WITH messages are derived from those sets when the graph is read
  (:func:`graphdb.export.liked_with_edges`: one edge per pair and person, smaller id first, as if
  stored). ``rank`` on LIKED_FOR is where the image ranked for the query when it was liked (the
  session keeps it from ranking lower afterwards).
- **``who`` is part of every interaction key**: MERGE on (endpoints, type, who). The same person
  repeating a like or a tag changes nothing (no duplicate, no property rewrite); two people agreeing
  leave two edges, which is evidence the model may weigh (a sum over messages) and which a curator
  can remove per person. ``query`` (on LIKED_FROM), ``rank`` (on LIKED_FOR) and ``phrase`` (on
  USER_TAGGED) record the first occasion and are not part of the key.
- Every relationship created gets ``created_at = datetime()``; the node it starts from (an Image, or
  the new query Caption) and, for tags and likes, the node it ends at get ``updated_at = datetime()``,
  only when something was created, so a repeated interaction is a true no-op. Starting nodes are
  always Image or Caption, whose ``updated_at`` is indexed: :func:`changes_since` seeks the changed
  nodes by index and expands their new edges, instead of scanning every relationship.
- Each public function is one transaction through ``session.execute_write``: concurrent writers that
  deadlock on the same nodes get a transient error and are retried by the driver. Unknown ids raise
  :class:`UnknownNodeError` inside the transaction, so nothing of the call is written.
- All Cypher is fixed text with parameters; user text only ever travels as a parameter value.
- The curator helpers run the scripts in ``cypher/curator/`` verbatim, so those scripts (which
  curators also run by hand in Neo4j Browser) are the single source of truth and are under test.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from neo4j import READ_ACCESS, Driver, ManagedTransaction, unit_of_work

from graphdb.schema import CYPHER_DIR
from readers.captions import CaptionRoles
from readers.graph_records import LIKE_TYPES, LIKED_FOR, LIKED_FROM, STORED_LIKE_TYPES, USER_TAGGED
from readers.records import normalise_value

__all__ = [
    "CURATOR_DIR",
    "LIKE_TYPES",
    "LikeResult",
    "TagResult",
    "UnknownNodeError",
    "add_attribute",
    "changed_nodes",
    "changes_since",
    "cypher_script",
    "like",
    "merge_attributes",
    "remove_interactions",
    "remove_tag",
    "store_query",
    "stored_query",
    "tag_image",
]

CURATOR_DIR = CYPHER_DIR / "curator"
QUERY_SPLIT = "query"  # the split of captions that users typed (never training or evaluation data)
# Server-side limit of one interaction's transaction: they are small, so one that runs longer is stuck
# (waiting on a lock) and is better refused than left to hold a client.
TRANSACTION_TIMEOUT_S = 15.0


class UnknownNodeError(LookupError):
    """An id or attribute name that is not in the graph; nothing was written."""

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class TagResult:
    created_attribute: bool
    created_edge: bool


@dataclass(frozen=True)
class LikeResult:
    """Relationships created by one like, by type (0 for what existed already)."""

    counts: dict[str, int] = field(default_factory=dict)
    candidate: str | None = None  # the query's candidate (ids joined by ',' for a caption with several)

    @property
    def created(self) -> int:
        return sum(self.counts.values())


@cache
def cypher_script(name: str, directory: Path = CURATOR_DIR) -> str:
    """A script's text as sent to the server: comments kept (Cypher allows them), final ';' dropped."""
    text = (directory / f"{name}.cypher").read_text(encoding="utf-8").strip()
    return text[:-1].rstrip() if text.endswith(";") else text


def _name(value: str, what: str = "attribute name") -> str:
    name = normalise_value(value)
    if not name:
        raise ValueError(f"an empty {what} is not allowed")
    return name


def _write(driver: Driver, work, *args: Any, database: str | None = None) -> Any:
    # The driver's bookmark manager: reads that follow (graphdb.export, on replicas) see this write.
    with driver.session(database=database, bookmark_manager=driver.execute_query_bookmark_manager) as session:
        return session.execute_write(unit_of_work(timeout=TRANSACTION_TIMEOUT_S)(work), *args)


def _read(driver: Driver, work, *args: Any, database: str | None = None) -> Any:
    # A read transaction (on a cluster, a replica), after this process's writes (the bookmark manager).
    with driver.session(database=database, default_access_mode=READ_ACCESS,
                        bookmark_manager=driver.execute_query_bookmark_manager) as session:
        return session.execute_read(unit_of_work(timeout=TRANSACTION_TIMEOUT_S)(work), *args)


def _missing_images(tx: ManagedTransaction, ids: list[str]) -> list[str]:
    record = tx.run(
        "UNWIND $ids AS id OPTIONAL MATCH (i:Image {id: id}) WITH id WHERE i IS NULL RETURN collect(id) AS m",
        ids=ids,
    ).single(strict=True)
    return record["m"]


def _require_images(tx: ManagedTransaction, ids: list[str]) -> None:
    missing = _missing_images(tx, ids)
    if missing:
        listed = ", ".join(repr(m) for m in missing)
        raise UnknownNodeError(f"unknown image id{'s' if len(missing) > 1 else ''} {listed}; nothing written")


# --- user queries ----------------------------------------------------------------------------------

_STORE_QUERY = """
MATCH (cand:Image {id: $candidate_id})
CREATE (c:Caption {id: $id, text: $text, split: $split, group: '', who: $who, updated_at: datetime()})
CREATE (c)-[:MODIFIES {created_at: datetime()}]->(cand)
WITH c
UNWIND $mentions AS m
MERGE (a:Attribute {name: m[0]})
  ON CREATE SET a.kind = 'unknown', a.kinds = [], a.updated_at = datetime()
CREATE (c)-[:MENTIONS {role: m[1], created_at: datetime()}]->(a)
"""


def store_query(driver: Driver, candidate_id: str, text: str, roles: CaptionRoles, who: str = "cli",
                database: str | None = None) -> str:
    """A user's query as a new Caption (split "query") that MODIFIES the candidate and MENTIONS {role}
    the attributes of ``roles``; returns its id ``q-<uuid4 hex>``. Attributes not yet in the graph are
    created with kind 'unknown' (as ingest does for caption-only values). The text is stored verbatim."""
    caption_id = f"q-{uuid.uuid4().hex}"
    pairs: dict[tuple[str, str], None] = {}
    for role, values in (("added", roles.added), ("removed", roles.removed), ("mentioned", roles.mentioned)):
        for value in values:
            if name := normalise_value(value):
                pairs[(name, role)] = None
    # Sorted by name: concurrent writers MERGE (and lock) attribute nodes in one order.
    mentions = [list(p) for p in sorted(pairs)]

    def work(tx: ManagedTransaction) -> None:
        _require_images(tx, [candidate_id])
        tx.run(_STORE_QUERY, candidate_id=candidate_id, id=caption_id, text=text, split=QUERY_SPLIT,
               who=who, mentions=mentions).consume()

    _write(driver, work, database=database)
    return caption_id


_STORED_QUERY = """
MATCH (c:Caption {id: $query_id})
RETURN c.text AS text, [(c)-[:MODIFIES]->(x:Image) | x.id] AS candidates,
       [(i:Image)-[l:LIKED_FOR]->(c) | [i.id, l.at, l.rank]] AS liked,
       [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]] AS mentions,
       coalesce(c.retired_candidates, []) AS retired
"""


@dataclass(frozen=True)
class StoredQuery:
    id: str
    text: str
    candidate: str
    liked: tuple[str, ...]  # images liked for it, by anyone (sorted, once each)
    # The same images in the order they were first liked (and, within one like, by the rank each had then).
    liked_in_order: tuple[str, ...] = ()
    # What its MENTIONS say it adds, removes, mentions (a session step's include earlier steps', see
    # graphdb.sessions): it is answered again with these, not with a fresh parse of its text.
    roles: CaptionRoles = CaptionRoles()


def stored_query(driver: Driver, query_id: str, database: str | None = None) -> StoredQuery:
    """A stored query's text, candidate and liked images (to answer it again after likes)."""
    record = _read(driver, lambda tx: tx.run(_STORED_QUERY, query_id=query_id).single(), database=database)
    if record is None:
        raise UnknownNodeError(f"unknown query id {query_id!r}")
    if not record["candidates"] and record["retired"]:
        raise UnknownNodeError(f"query {query_id!r}: its candidate {record['retired'][0]!r} was retired from "
                               "the catalog; ask again with another product")
    if not record["candidates"]:
        raise UnknownNodeError(f"query {query_id!r} modifies no image, so it has no candidate")
    first: dict[str, tuple] = {}  # image -> (first liked at, the rank it had then, id)
    for image_id, at, rank in record["liked"]:
        key = (at.to_native() if at is not None else datetime.max.replace(tzinfo=UTC),
               rank if isinstance(rank, int) else math.inf, image_id)
        first[image_id] = min(key, first.get(image_id, key))
    by_role: dict[str, list[str]] = {"added": [], "removed": [], "mentioned": []}
    for name, role in sorted(record["mentions"]):
        by_role.setdefault(role, []).append(name)
    roles = CaptionRoles(tuple(by_role["added"]), tuple(by_role["removed"]), tuple(by_role["mentioned"]))
    return StoredQuery(query_id, record["text"], sorted(record["candidates"])[0], tuple(sorted(first)),
                       tuple(sorted(first, key=first.__getitem__)), roles)


# --- more metadata ---------------------------------------------------------------------------------

_TAG_IMAGE = """
MATCH (i:Image {id: $image_id})
MERGE (a:Attribute {name: $name})
  ON CREATE SET a.kind = $new_kind, a.kinds = [$new_kind], a.updated_at = datetime()
FOREACH (_ IN CASE WHEN $kind IS NULL OR $kind IN coalesce(a.kinds, []) THEN [] ELSE [1] END |
  SET a.kinds = coalesce(a.kinds, []) + $kind, a.updated_at = datetime())
MERGE (i)-[t:USER_TAGGED {who: $who}]->(a)
  ON CREATE SET t.at = datetime(), t.created_at = datetime(), t.phrase = $phrase, t.source = 'user',
                i.updated_at = datetime(), a.updated_at = datetime()
"""


def tag_image(driver: Driver, image_id: str, attribute_name: str, who: str = "cli", phrase: str | None = None,
              kind: str | None = None, database: str | None = None) -> TagResult:
    """"More metadata": link an image to an attribute (created when new, with ``kind`` or 'user').

    ``phrase`` is the sentence the attribute came from. Idempotent per (image, attribute, who).
    """
    name = _name(attribute_name)
    kind_value = normalise_value(kind).replace(" ", "_") if kind else None

    def work(tx: ManagedTransaction) -> TagResult:
        _require_images(tx, [image_id])
        counters = tx.run(_TAG_IMAGE, image_id=image_id, name=name, kind=kind_value,
                          new_kind=kind_value or "user", who=who, phrase=phrase).consume().counters
        return TagResult(counters.nodes_created > 0, counters.relationships_created > 0)

    return _write(driver, work, database=database)


# --- I like that -----------------------------------------------------------------------------------

_QUERY_CANDIDATES = """
MATCH (c:Caption {id: $query_id})
RETURN [(c)-[:MODIFIES]->(x:Image) | x.id] AS candidates
"""

_LIKED_FOR = """
MATCH (c:Caption {id: $query_id})
UNWIND $images AS row
MATCH (i:Image {id: row[0]})
MERGE (i)-[r:LIKED_FOR {who: $who}]->(c)
  ON CREATE SET r.at = datetime(), r.created_at = datetime(), r.rank = row[1], i.updated_at = datetime(),
                c.updated_at = datetime()
"""

# The candidate itself may be among the liked images: no LIKED_FROM loop onto itself.
_LIKED_FROM = """
MATCH (cand:Image {id: $candidate_id})
UNWIND $images AS id
MATCH (i:Image {id: id})
WHERE i <> cand
MERGE (i)-[r:LIKED_FROM {who: $who}]->(cand)
  ON CREATE SET r.at = datetime(), r.created_at = datetime(), r.query = $query_id,
                i.updated_at = datetime(), cand.updated_at = datetime()
"""


def like(driver: Driver, query_id: str, image_ids: list[str] | tuple[str, ...], who: str = "cli",
         ranks: dict[str, int] | None = None, database: str | None = None) -> LikeResult:
    """"I like that": each liked image is linked to the query's caption (LIKED_FOR) and to its candidate
    (LIKED_FROM); the images ``who`` liked for the query are a set, liked together (LIKED_WITH is derived
    from it when the graph is read). Idempotent per ``who``. ``ranks``: where each image ranked for the
    query when it was liked (kept on LIKED_FOR).

    An unknown query or image id raises :class:`UnknownNodeError` and writes nothing.
    """
    images = sorted(dict.fromkeys(image_ids))  # sorted: concurrent likes lock nodes in one order
    if not images:
        raise ValueError("like needs at least one image id")
    rows = [[i, (ranks or {}).get(i)] for i in images]

    def work(tx: ManagedTransaction) -> LikeResult:
        record = tx.run(_QUERY_CANDIDATES, query_id=query_id).single()
        if record is None:
            raise UnknownNodeError(f"unknown query id {query_id!r}; nothing written")
        candidates = record["candidates"]
        if not candidates:
            raise UnknownNodeError(f"query {query_id!r} modifies no image, so it has no candidate; "
                                   "nothing written")
        _require_images(tx, images)
        counts = dict.fromkeys(STORED_LIKE_TYPES, 0)
        counts[LIKED_FOR] = tx.run(_LIKED_FOR, query_id=query_id, images=rows,
                                     who=who).consume().counters.relationships_created
        for candidate in sorted(candidates):  # one, unless a caption was ingested with several
            counts[LIKED_FROM] += tx.run(_LIKED_FROM, candidate_id=candidate, images=images, who=who,
                                           query_id=query_id).consume().counters.relationships_created
        return LikeResult(counts, candidates[0] if len(candidates) == 1 else ",".join(sorted(candidates)))

    return _write(driver, work, database=database)


# --- curators (the scripts in cypher/curator/) -----------------------------------------------------


def add_attribute(driver: Driver, image_id: str, name: str, kind: str, who: str,
                  database: str | None = None) -> TagResult:
    """Run ``cypher/curator/add_attribute.cypher``: a curator's USER_TAGGED {source: 'curator'} tag."""
    attribute = _name(name)

    def work(tx: ManagedTransaction) -> TagResult:
        _require_images(tx, [image_id])
        result = tx.run(cypher_script("add_attribute"), image_id=image_id, name=attribute, kind=kind,
                        who=who)
        record = result.single(strict=True)
        counters = result.consume().counters
        return TagResult(counters.nodes_created > 0, bool(record["tagged_now"]))

    return _write(driver, work, database=database)


def remove_tag(driver: Driver, image_id: str, name: str, source: str | None = None,
               database: str | None = None) -> int:
    """Run ``cypher/curator/remove_tag.cypher``; returns how many tag edges were removed (0: none)."""
    attribute = _name(name)

    def work(tx: ManagedTransaction) -> int:
        _require_images(tx, [image_id])
        record = tx.run(cypher_script("remove_tag"), image_id=image_id, name=attribute,
                        source=source).single()
        return 0 if record is None else record["removed"]

    return _write(driver, work, database=database)


def merge_attributes(driver: Driver, keep: str, drop: str, database: str | None = None) -> dict[str, int]:
    """Run ``cypher/curator/merge_attributes.cypher``: ``drop``'s relationships move onto ``keep`` (no
    duplicates) and ``drop`` is deleted. Returns the edges moved by type (before de-duplication)."""
    keep_name, drop_name = _name(keep), _name(drop)
    if keep_name == drop_name:
        raise ValueError(f"cannot merge attribute {keep_name!r} into itself")

    def work(tx: ManagedTransaction) -> dict[str, int]:
        found = tx.run("UNWIND $names AS n MATCH (a:Attribute {name: n}) RETURN collect(n) AS found",
                       names=[keep_name, drop_name]).single(strict=True)["found"]
        missing = [n for n in (keep_name, drop_name) if n not in found]
        if missing:
            raise UnknownNodeError(f"unknown attribute {', '.join(map(repr, missing))}; nothing changed")
        record = tx.run(cypher_script("merge_attributes"), keep=keep_name, drop=drop_name).single(strict=True)
        return {"HAS_ATTRIBUTE": record["has_attribute"], USER_TAGGED: record["user_tagged"],
                "MENTIONS": record["mentions"]}

    return _write(driver, work, database=database)


# --- undoing one user's interactions ---------------------------------------------------------------

# Touched nodes are marked updated, so an incremental `tailor sync` sees the removal.
_REMOVE_INTERACTIONS = """
MATCH (s)-[r]->(d)
WHERE type(r) IN $types AND r.who = $who
SET s.updated_at = datetime(), d.updated_at = datetime()
DELETE r
RETURN count(r) AS removed
"""
_REMOVE_QUERIES = """
MATCH (c:Caption {split: $split, who: $who})
OPTIONAL MATCH (c)-[:MODIFIES]->(cand:Image)
SET cand.updated_at = datetime()
WITH c
OPTIONAL MATCH (liked:Image)-[:LIKED_FOR]->(c)
SET liked.updated_at = datetime()
WITH DISTINCT c
DETACH DELETE c
RETURN count(DISTINCT c) AS removed
"""


def remove_interactions(driver: Driver, who: str, database: str | None = None) -> dict[str, int]:
    """Delete every tag, like and stored query of ``who`` (one transaction); returns what went.
    Attributes that tags created stay (other edges may use them)."""

    def work(tx: ManagedTransaction) -> dict[str, int]:
        edges = tx.run(_REMOVE_INTERACTIONS, types=[USER_TAGGED, *LIKE_TYPES], who=who).single(strict=True)
        queries = tx.run(_REMOVE_QUERIES, split=QUERY_SPLIT, who=who).single(strict=True)
        return {"relationships": edges["removed"], "queries": queries["removed"]}

    return _write(driver, work, database=database)


# --- what changed ----------------------------------------------------------------------------------

# Changed nodes by index seek on updated_at (Image, Caption); attributes are few, so a label scan.
_CHANGED_NODES = """
CALL () { MATCH (n:Image) WHERE n.updated_at > $since RETURN collect(n.id) AS images }
CALL () { MATCH (n:Caption) WHERE n.updated_at > $since RETURN collect(n.id) AS captions }
CALL () { MATCH (n:Attribute) WHERE n.updated_at > $since RETURN collect(n.name) AS attributes }
CALL () { MATCH (n:Image) RETURN count(n) AS image_count }
RETURN images, captions, attributes, image_count, datetime() AS until
"""

# Every relationship write marks its start node (an Image or Caption), so new edges are found from there.
_NEW_RELATIONSHIPS = """
CALL () {
  MATCH (n:Image) WHERE n.updated_at > $since RETURN n
  UNION
  MATCH (n:Caption) WHERE n.updated_at > $since RETURN n
}
MATCH (n)-[r]->(m)
WHERE r.created_at > $since
RETURN type(r) AS type, n.id AS src, CASE WHEN m:Attribute THEN m.name ELSE m.id END AS dst,
       r.who AS who
ORDER BY type, src, dst
"""


def _as_datetime(since: datetime | str) -> datetime:
    value = datetime.fromisoformat(since) if isinstance(since, str) else since
    # A naive time would become a LocalDateTime, which never compares with datetime(): read it as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def changed_nodes(driver: Driver, since: datetime | str, database: str | None = None) -> dict[str, Any]:
    """Only the nodes of :func:`changes_since` (what an incremental sync re-reads): ``{"Image": [ids],
    "Caption": [ids], "Attribute": [names], "image_count": images in the graph (a retired product leaves
    no node to mark), "until": server time}``."""
    with driver.session(database=database, bookmark_manager=driver.execute_query_bookmark_manager) as session:
        record = session.execute_read(
            lambda tx: tx.run(_CHANGED_NODES, since=_as_datetime(since)).single(strict=True))
    return {"Image": record["images"], "Caption": record["captions"], "Attribute": record["attributes"],
            "image_count": record["image_count"], "until": record["until"].to_native()}


def changes_since(driver: Driver, since: datetime | str, database: str | None = None) -> dict[str, Any]:
    """What changed after ``since``: ``{"since", "until", "nodes": {label: [id or name]},
    "relationships": {type: [{"src", "dst", "who"}]}}``. ``until`` is the server's time of the read,
    the ``since`` to pass next time. Timestamps are taken when a statement runs, not when it commits:
    a caller that must not miss a write still in flight at ``until`` passes a slightly earlier time
    (re-reading a change is harmless). Deletions (``remove_tag``, a merged-away attribute) show only
    as the nodes they touched."""
    since_dt = _as_datetime(since)

    def work(tx: ManagedTransaction) -> dict[str, Any]:
        nodes = tx.run(_CHANGED_NODES, since=since_dt).single(strict=True)
        rels: dict[str, list[dict[str, Any]]] = {}
        for r in tx.run(_NEW_RELATIONSHIPS, since=since_dt):
            rels.setdefault(r["type"], []).append({"src": r["src"], "dst": r["dst"], "who": r["who"]})
        return {
            "since": since_dt,
            "until": nodes["until"].to_native(),
            "nodes": {"Image": nodes["images"], "Caption": nodes["captions"], "Attribute": nodes["attributes"]},
            "relationships": rels,
        }

    with driver.session(database=database) as session:
        return session.execute_read(work)
