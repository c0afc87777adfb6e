"""Embeddings written back to Neo4j (``embedding`` + ``embedding_version`` on each node), and the
change marker that ``tailor sync`` reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np
from neo4j import Driver

from graphdb.ingest import batched

# The label is chosen from this fixed set, never from user input.
_WRITE = {
    label: f"""
UNWIND $rows AS r
MATCH (n:{label} {{{key}: r.id}})
SET n.embedding = r.vector, n.embedding_version = $version, n.embedded_at = datetime()
"""
    for label, key in (("Image", "id"), ("Caption", "id"), ("Attribute", "name"))
}


def write_embeddings(
    driver: Driver,
    label: str,
    ids: Sequence[str],
    vectors: np.ndarray,
    version: str,
    batch_size: int = 2000,
    progress: Callable[[int], None] | None = None,
    database: str | None = None,
) -> int:
    """Set ``embedding`` (float list) and ``embedding_version`` on nodes; one transaction per batch."""
    if label not in _WRITE:
        raise ValueError(f"unknown label {label!r}")
    rows = [{"id": i, "vector": v.astype(np.float32).tolist()} for i, v in zip(ids, vectors, strict=True)]
    written = 0
    for batch in batched(rows, batch_size):
        driver.execute_query(_WRITE[label], rows=batch, version=version, database_=database)
        written += len(batch)
        if progress:
            progress(len(batch))
    return written


_CLEAR = """
UNWIND $ids AS id
MATCH (n:Image {id: id})
WHERE n.embedding IS NOT NULL
REMOVE n.embedding, n.embedding_version, n.embedded_at
"""


def clear_image_embeddings(driver: Driver, ids: Sequence[str], database: str | None = None) -> None:
    """Drop the stored embedding of images that left the index (their features went with their file)."""
    if ids:
        driver.execute_query(_CLEAR, ids=list(ids), database_=database)


def changed_since(driver: Driver, since: datetime | None, database: str | None = None) -> dict[str, int]:
    """How many nodes and interaction edges were written after ``since`` (None: everything)."""
    records, _, _ = driver.execute_query(
        """
        CALL () {
          MATCH (n) WHERE n.updated_at IS NOT NULL AND ($since IS NULL OR n.updated_at > $since)
          RETURN count(n) AS nodes
        }
        CALL () {
          MATCH ()-[r]->() WHERE r.created_at IS NOT NULL AND ($since IS NULL OR r.created_at > $since)
          RETURN count(r) AS relationships
        }
        RETURN nodes, relationships
        """,
        since=since,
        database_=database,
    )
    return {"nodes": records[0]["nodes"], "relationships": records[0]["relationships"]}
