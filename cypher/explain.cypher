// Why does image $result_id answer query $query_id? Draws the explanation subgraph in Neo4j Browser.
//
// Parameters: $query_id (a Caption id), $result_id (an Image id). graphdb.explain.explain() returns this
// text with a ready :params line (Explanation.browser_text()); by hand:
//   :params {query_id: 'q-...', result_id: 'B00006M009'}
// Style: :style with cypher/browser-style.grass (images orange, captions green, attributes pink).
//
// One row of path lists (collected per part, so the parts do not multiply each other's rows):
//   candidate  caption -[:MODIFIES]-> candidate
//   asked      caption -[:MENTIONS {role}]-> attribute          (what the query adds/removes/mentions)
//   shared     candidate -> attribute <- result                 (what the result keeps of the candidate)
//   matched    caption -[:MENTIONS]-> attribute <- result       (query attributes the result has)
//   tags       result -[:USER_TAGGED]-> attribute               (more metadata by users and curators)
//   likes      result -[:LIKED_FOR|LIKED_FROM]-> this caption / its candidate, and
//              result and another image liked together (by one person) for this caption or a similar
//              one (same text, same candidate, or an added attribute in common), and
//              result -[:LIKED_FOR]-> such a caption
MATCH (c:Caption {id: $query_id})
MATCH (r:Image {id: $result_id})
CALL (c) {
  OPTIONAL MATCH p = (c)-[:MODIFIES]->(:Image)
  RETURN collect(p) AS candidate
}
CALL (c) {
  OPTIONAL MATCH p = (c)-[:MENTIONS]->(:Attribute)
  RETURN collect(p) AS asked
}
CALL (c, r) {
  OPTIONAL MATCH p = (c)-[:MODIFIES]->(cand:Image)-[:HAS_ATTRIBUTE|USER_TAGGED]->(:Attribute)
                     <-[:HAS_ATTRIBUTE|USER_TAGGED]-(r)
  WHERE cand <> r
  RETURN collect(p) AS shared
}
CALL (c, r) {
  OPTIONAL MATCH p = (c)-[:MENTIONS]->(:Attribute)<-[:HAS_ATTRIBUTE|USER_TAGGED]-(r)
  RETURN collect(p) AS matched
}
CALL (r) {
  OPTIONAL MATCH p = (r)-[:USER_TAGGED]->(:Attribute)
  RETURN collect(p) AS tags
}
CALL (c, r) {
  OPTIONAL MATCH p = (r)-[:LIKED_FOR]->(c)
  RETURN collect(p) AS liked_for
}
CALL (c, r) {
  OPTIONAL MATCH p = (r)-[:LIKED_FROM]->(:Image)<-[:MODIFIES]-(c)
  RETURN collect(p) AS liked_from
}
CALL (c, r) {
  OPTIONAL MATCH p = (r)-[l:LIKED_FOR]->(s:Caption)<-[m:LIKED_FOR]-(o:Image)
  WHERE o <> r AND m.who = l.who
    AND (s = c OR s.text = c.text OR EXISTS { (s)-[:MODIFIES]->(:Image)<-[:MODIFIES]-(c) }
     OR EXISTS { (s)-[:MENTIONS {role: 'added'}]->(:Attribute)<-[:MENTIONS {role: 'added'}]-(c) })
  RETURN collect(p) AS liked_with
}
CALL (c, r) {
  OPTIONAL MATCH p = (r)-[:LIKED_FOR]->(s:Caption)
  WHERE s <> c AND (s.text = c.text OR EXISTS { (s)-[:MODIFIES]->(:Image)<-[:MODIFIES]-(c) }
     OR EXISTS { (s)-[:MENTIONS {role: 'added'}]->(:Attribute)<-[:MENTIONS {role: 'added'}]-(c) })
  RETURN collect(p) AS liked_for_similar
}
RETURN c AS query, r AS result, candidate, asked, shared, matched, tags, liked_for, liked_from, liked_with,
       liked_for_similar;
