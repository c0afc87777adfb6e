"""A catalog that changes: which products the graph holds, and retiring the ones a shop removed.

Rules for a retired product (one transaction, so a failure leaves the graph as it was):

- its Image node goes, with every relationship it has: HAS_ATTRIBUTE, USER_TAGGED, LIKED_WITH, LIKED_FROM,
  LIKED_FOR, and the MODIFIES / TARGETS edges that point at it;
- composed queries built from the catalog (captions whose split is not ``query``) that name it as
  candidate or target go too: they were derived from products that no longer exist;
- a stored user query (split ``query``) whose candidate it was keeps its node and text (what someone asked
  is history), loses its MODIFIES edge and records the id in ``retired_candidates``; answering it again
  says its candidate was retired;
- attributes stay, even when no product has them any more (they are vocabulary: captions are parsed
  against them, and a product loaded later may have them again);
- every node whose base-graph edges change (the retired image's attributes, the images liked with it, the
  captions it was liked for) gets ``updated_at``, so an incremental ``tailor sync`` re-reads exactly those.

All Cypher here is fixed text with parameters.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from neo4j import Driver, ManagedTransaction

from readers.graph_records import INTERACTION_TYPES

QUERY_SPLIT = "query"  # the split of captions users typed (graphdb.interactions.QUERY_SPLIT)


class UnknownImagesError(LookupError):
    """Ids to retire that the graph does not hold; nothing was written."""

    def __init__(self, ids: list[str]):
        self.ids = ids
        shown = ", ".join(repr(i) for i in ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
        super().__init__(f"unknown image id{'s' if len(ids) > 1 else ''} {shown} (not in the graph); "
                         "nothing retired")

    def __str__(self) -> str:  # LookupError would quote the message like a KeyError
        return str(self.args[0])


@dataclass
class RetireReport:
    images: list[str] = field(default_factory=list)  # the ids retired
    relationships_deleted: int = 0
    captions_deleted: int = 0  # composed catalog queries that named a retired product
    user_queries_kept: int = 0  # stored user queries whose candidate was retired (text kept)


_IMAGE_IDS = "MATCH (i:Image) RETURN collect(i.id) AS ids"
_IMAGE_COUNT = "MATCH (i:Image) RETURN count(i) AS n"
_EXISTING = "UNWIND $ids AS id MATCH (i:Image {id: id}) RETURN collect(id) AS ids"

# Neighbours whose base edges change; marked first, while the edges still lead to them.
_MARK_NEIGHBOURS = """
UNWIND $ids AS id
MATCH (i:Image {id: id})
CALL (i) {
  MATCH (i)-[r]-(n)
  WHERE (type(r) IN $types OR type(r) = 'HAS_ATTRIBUTE') AND (n:Attribute OR NOT n.id IN $ids)
  SET n.updated_at = datetime()
}
"""
_KEEP_USER_QUERIES = """
UNWIND $ids AS id
MATCH (c:Caption {split: $query_split})-[:MODIFIES]->(:Image {id: id})
SET c.retired_candidates = coalesce(c.retired_candidates, []) + id, c.updated_at = datetime()
RETURN count(DISTINCT c) AS kept
"""
_DELETE_CATALOG_QUERIES = """
UNWIND $ids AS id
MATCH (c:Caption)-[:MODIFIES|TARGETS]->(:Image {id: id})
WHERE coalesce(c.split, '') <> $query_split
WITH DISTINCT c
DETACH DELETE c
"""
_DELETE_IMAGES = """
UNWIND $ids AS id
MATCH (i:Image {id: id})
DETACH DELETE i
"""


def image_ids(driver: Driver, database: str | None = None) -> set[str]:
    """Every product id in the graph."""
    records, _, _ = driver.execute_query(_IMAGE_IDS, database_=database)
    return set(records[0]["ids"])


def image_count(driver: Driver, database: str | None = None) -> int:
    records, _, _ = driver.execute_query(_IMAGE_COUNT, database_=database)
    return int(records[0]["n"])


def existing_images(driver: Driver, ids: Iterable[str], database: str | None = None) -> set[str]:
    """Those of ``ids`` that the graph holds."""
    records, _, _ = driver.execute_query(_EXISTING, ids=list(dict.fromkeys(ids)), database_=database)
    return set(records[0]["ids"])


def retire_images(driver: Driver, ids: Iterable[str], database: str | None = None) -> RetireReport:
    """Retire products by id, in one transaction (rules in the module doc). An id the graph does not
    hold raises :class:`UnknownImagesError` and nothing is written."""
    wanted = sorted(dict.fromkeys(ids))
    report = RetireReport(images=wanted)
    if not wanted:
        return report

    def work(tx: ManagedTransaction) -> RetireReport:
        found = set(tx.run(_EXISTING, ids=wanted).single(strict=True)["ids"])
        unknown = [i for i in wanted if i not in found]
        if unknown:
            raise UnknownImagesError(unknown)
        tx.run(_MARK_NEIGHBOURS, ids=wanted, types=list(INTERACTION_TYPES)).consume()
        kept = tx.run(_KEEP_USER_QUERIES, ids=wanted, query_split=QUERY_SPLIT).single(strict=True)["kept"]
        captions = tx.run(_DELETE_CATALOG_QUERIES, ids=wanted, query_split=QUERY_SPLIT).consume().counters
        images = tx.run(_DELETE_IMAGES, ids=wanted).consume().counters
        return RetireReport(wanted, captions.relationships_deleted + images.relationships_deleted,
                            captions.nodes_deleted, kept)

    with driver.session(database=database) as session:
        return session.execute_write(work)
