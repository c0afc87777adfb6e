// Curator: remove an attribute from an image, as one statement.
//
// Parameters: $image_id, $name (the attribute value, as stored: lower case, single spaces), $source
// (null: every tag of that attribute on the image; else only edges of that source: HAS_ATTRIBUTE's
// source, e.g. 'catalog' or 'predicted', or a USER_TAGGED edge's, 'user' or 'curator').
// Neo4j Browser:
//   :params {image_id: 'B00006M009', name: 'long sleeves', source: null}
// The attribute node stays (other images and captions may use it); the image is marked updated so
// that `tailor sync` re-embeds it.
MATCH (i:Image {id: $image_id})-[r:HAS_ATTRIBUTE|USER_TAGGED]->(a:Attribute {name: $name})
WHERE $source IS NULL
   OR coalesce(r.source, CASE type(r) WHEN 'USER_TAGGED' THEN 'user' ELSE 'catalog' END) = $source
WITH i, a, collect(r) AS tags
FOREACH (r IN tags | DELETE r)
SET i.updated_at = datetime(), a.updated_at = datetime()
RETURN i.id AS image_id, a.name AS name, size(tags) AS removed;
