// Curator: tag an image with an attribute (created when new), as one statement.
//
// Parameters: $image_id, $name (the attribute value; lower-cased and single-spaced here), $kind (colour,
// part, style, ...; given to a new attribute and added to an existing one's kinds), $who (the curator).
// Neo4j Browser:
//   :params {image_id: 'B00006M009', name: 'long sleeves', kind: 'part', who: 'alice'}
// The tag is a USER_TAGGED edge with source 'curator': an interaction relation the trained model already
// reads, so the attribute takes effect at the next `tailor sync` without retraining. One edge per
// (image, attribute, who): running this again changes nothing. An unknown image id changes nothing.
MATCH (i:Image {id: $image_id})
WITH i,
     reduce(s = '', w IN [w IN split(toLower(trim($name)), ' ') WHERE w <> ''] |
            s + CASE s WHEN '' THEN '' ELSE ' ' END + w) AS name,
     replace(toLower(trim(coalesce($kind, 'curated'))), ' ', '_') AS kind
WHERE name <> ''
MERGE (a:Attribute {name: name})
  ON CREATE SET a.kind = kind, a.kinds = [kind], a.updated_at = datetime()
// An existing attribute learns the new kind (kinds share one value space, as in ingest).
FOREACH (_ IN CASE WHEN kind IN coalesce(a.kinds, []) THEN [] ELSE [1] END |
  SET a.kinds = coalesce(a.kinds, []) + kind, a.updated_at = datetime())
MERGE (i)-[t:USER_TAGGED {who: $who}]->(a)
  ON CREATE SET t.at = datetime(), t.created_at = datetime(), t.source = 'curator',
                i.updated_at = datetime(), a.updated_at = datetime()
// datetime() is fixed for a statement, so equal timestamps mean "written just now".
RETURN i.id AS image_id, a.name AS name, a.kind AS kind, t.created_at = datetime() AS tagged_now;
