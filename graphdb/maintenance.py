"""Whole-database operations, kept apart so that nothing calls them by accident."""

from __future__ import annotations

from neo4j import Driver


def delete_everything(driver: Driver, database: str | None = None, batch: int = 10000) -> None:
    """Delete all relationships, then all nodes, in batches of ``batch`` (the schema stays).

    Relationships go first: ``DETACH DELETE`` of a dense node (an attribute with 100,000 images) deletes
    all its relationships in one inner transaction and ran out of transaction memory on a 1.1M-edge graph.
    ``CALL ... IN TRANSACTIONS`` needs an auto-commit transaction, hence ``session.run``.
    """
    with driver.session(database=database) as session:
        session.run("MATCH ()-[r]->() CALL (r) { DELETE r } IN TRANSACTIONS OF $batch ROWS", batch=batch).consume()
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF $batch ROWS", batch=batch).consume()
