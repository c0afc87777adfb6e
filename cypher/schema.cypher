// tailor graph schema: applied idempotently by `tailor db init` and on first use.
// Uniqueness constraints also create the indexes that id lookups and MERGE need.
CREATE CONSTRAINT image_id IF NOT EXISTS FOR (n:Image) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT caption_id IF NOT EXISTS FOR (n:Caption) REQUIRE n.id IS UNIQUE;
CREATE CONSTRAINT attribute_name IF NOT EXISTS FOR (n:Attribute) REQUIRE n.name IS UNIQUE;
// Lookups by split (training/evaluation reads) and by kind (attribute vocabularies).
CREATE INDEX image_split IF NOT EXISTS FOR (n:Image) ON (n.split);
CREATE INDEX caption_split IF NOT EXISTS FOR (n:Caption) ON (n.split);
CREATE INDEX attribute_kind IF NOT EXISTS FOR (n:Attribute) ON (n.kind);
// `tailor sync` finds what changed since the last index by these timestamps.
CREATE INDEX image_updated IF NOT EXISTS FOR (n:Image) ON (n.updated_at);
CREATE INDEX caption_updated IF NOT EXISTS FOR (n:Caption) ON (n.updated_at);
// Shopping sessions of the page (graphdb/sessions.py): one node per session, its steps are Captions.
CREATE CONSTRAINT session_id IF NOT EXISTS FOR (n:Session) REQUIRE n.id IS UNIQUE;
