// Curator: merge attribute $drop into attribute $keep (e.g. 'long-sleeve' into 'long sleeve'), as one
// statement and so one transaction: every relationship of $drop moves onto $keep, an edge $keep already
// has is not duplicated, then $drop is deleted.
//
// Parameters: $keep, $drop (attribute names as stored: lower case, single spaces).
// Neo4j Browser:
//   :params {keep: 'long sleeve', drop: 'long-sleeve'}
// Plain Cypher (Neo4j Community has no APOC), one block per relationship type that can touch an
// attribute; each keeps that type's key (HAS_ATTRIBUTE: source, USER_TAGGED: who, MENTIONS: role).
// `DELETE drop` is deliberately not DETACH DELETE: a relationship type this script does not know makes
// it fail, and then nothing at all changes. Moved edges get created_at = now and every node touched
// gets updated_at = now, so `tailor sync` sees the change. Unknown names, or $keep = $drop: no change.
MATCH (keep:Attribute {name: $keep}), (drop:Attribute {name: $drop})
WHERE keep <> drop
CALL (keep, drop) {
  MATCH (i)-[r:HAS_ATTRIBUTE]->(drop)
  MERGE (i)-[n:HAS_ATTRIBUTE {source: coalesce(r.source, 'catalog')}]->(keep)
    ON CREATE SET n.confidence = r.confidence, n.created_at = datetime()
    ON MATCH SET n.confidence = CASE WHEN r.confidence > n.confidence THEN r.confidence ELSE n.confidence END
  SET i.updated_at = datetime()
  DELETE r
  RETURN count(*) AS has_attribute
}
CALL (keep, drop) {
  MATCH (i)-[r:USER_TAGGED]->(drop)
  MERGE (i)-[n:USER_TAGGED {who: coalesce(r.who, 'unknown')}]->(keep)
    ON CREATE SET n.at = r.at, n.phrase = r.phrase, n.source = r.source, n.created_at = datetime()
  SET i.updated_at = datetime()
  DELETE r
  RETURN count(*) AS user_tagged
}
CALL (keep, drop) {
  MATCH (c)-[r:MENTIONS]->(drop)
  MERGE (c)-[n:MENTIONS {role: coalesce(r.role, 'mentioned')}]->(keep)
    ON CREATE SET n.created_at = datetime()
  SET c.updated_at = datetime()
  DELETE r
  RETURN count(*) AS mentions
}
// The kept attribute takes the dropped one's kinds, and its kind when its own is unknown.
SET keep.kinds = reduce(acc = coalesce(keep.kinds, []), k IN coalesce(drop.kinds, []) |
                        CASE WHEN k IN acc THEN acc ELSE acc + k END),
    keep.kind = CASE WHEN coalesce(keep.kind, 'unknown') = 'unknown' THEN coalesce(drop.kind, keep.kind)
                     ELSE keep.kind END,
    keep.updated_at = datetime()
DELETE drop
RETURN keep.name AS kept, $drop AS dropped, has_attribute, user_tagged, mentions;
