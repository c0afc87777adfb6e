"""Reads behind the page: products by words or attributes, one product's attributes and tags, attributes
with their counts (the curator view), and an image's file path by its id. Read-only, parameterised."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from neo4j import Driver

__all__ = ["FoundProduct", "attribute_counts", "find_products", "image_path", "product"]


@dataclass(frozen=True)
class FoundProduct:
    id: str
    title: str
    score: int  # terms matched: an attribute phrase counts 2, a title word 1, the exact id 10
    attributes: list[str] = field(default_factory=list)  # the query's attribute phrases it has


# A phrase is an attribute value the shopper named ("navy blue"); a word is matched in the title.
# Images are scanned once (a catalog of ~10^4-10^5 titles); each phrase is an index seek on its node.
_FIND = """
CALL () {
  UNWIND $phrases AS p
  MATCH (:Attribute {name: p})<-[:HAS_ATTRIBUTE|USER_TAGGED]-(i:Image)
  RETURN i, p AS has
  UNION
  MATCH (i:Image)
  WHERE i.id = $exact OR any(w IN $words WHERE toLower(i.title) CONTAINS w)
  RETURN i, null AS has
}
WITH i, collect(DISTINCT has) AS has
RETURN i.id AS id, coalesce(i.title, '') AS title, has,
       size(has) * 2 + size([w IN $words WHERE toLower(i.title) CONTAINS w])
       + CASE WHEN i.id = $exact THEN 10 ELSE 0 END AS score
ORDER BY score DESC, id
LIMIT $limit
"""


def find_products(driver: Driver, phrases: list[str], words: list[str], exact: str = "", limit: int = 24,
                  database: str | None = None) -> list[FoundProduct]:
    """Products that have the attribute ``phrases`` or whose titles contain ``words`` (lower case), most
    terms matched first; ``exact`` (an id) ranks that product first."""
    if not phrases and not words and not exact:
        return []
    records, _, _ = driver.execute_query(_FIND, phrases=sorted(set(phrases)), words=sorted(set(words)),
                                         exact=exact, limit=int(limit), database_=database)
    return [FoundProduct(r["id"], r["title"], int(r["score"]), sorted(r["has"])) for r in records]


_PRODUCT = """
MATCH (i:Image {id: $id})
RETURN i.id AS id, coalesce(i.title, '') AS title,
  [(i)-[r:HAS_ATTRIBUTE]->(a:Attribute) |
     {name: a.name, kind: coalesce(a.kind, 'unknown'), edge: 'HAS_ATTRIBUTE', source: coalesce(r.source, 'catalog'),
      who: null, phrase: null}] +
  [(i)-[t:USER_TAGGED]->(a:Attribute) |
     {name: a.name, kind: coalesce(a.kind, 'unknown'), edge: 'USER_TAGGED', source: coalesce(t.source, 'user'),
      who: t.who, phrase: t.phrase}] AS attributes
"""


def product(driver: Driver, image_id: str, database: str | None = None) -> dict[str, Any] | None:
    """``{"id", "title", "attributes": [{"name", "kind", "edge", "source", "who", "phrase"}]}`` (attributes
    sorted by name), or ``None`` for an unknown id."""
    records, _, _ = driver.execute_query(_PRODUCT, id=image_id, database_=database)
    if not records:
        return None
    r = records[0]
    attributes = sorted(r["attributes"], key=lambda a: (a["name"], a["edge"], a["source"], a["who"] or ""))
    return {"id": r["id"], "title": r["title"], "attributes": attributes}


_ATTRIBUTE_COUNTS = """
MATCH (a:Attribute)
RETURN a.name AS name, coalesce(a.kind, 'unknown') AS kind, coalesce(a.kinds, []) AS kinds,
       COUNT { (a)<-[:HAS_ATTRIBUTE|USER_TAGGED]-(:Image) } AS images,
       COUNT { (a)<-[:USER_TAGGED]-(:Image) } AS tags,
       COUNT { (a)<-[:MENTIONS]-(:Caption) } AS captions
ORDER BY images DESC, name
"""


def attribute_counts(driver: Driver, database: str | None = None) -> list[dict[str, Any]]:
    """Every attribute with its kind and how many image edges (catalog, predicted, tags), tags and
    caption mentions it has: ``[{"name", "kind", "kinds", "images", "tags", "captions"}]``, most used first."""
    records, _, _ = driver.execute_query(_ATTRIBUTE_COUNTS, database_=database)
    return [dict(r) for r in records]


def image_path(driver: Driver, image_id: str, database: str | None = None) -> str | None:
    """The stored file path of a known image id (``None`` when the id or its path is unknown)."""
    records, _, _ = driver.execute_query("MATCH (i:Image {id: $id}) RETURN i.image_path AS path", id=image_id,
                                         database_=database)
    return records[0]["path"] if records and records[0]["path"] else None
