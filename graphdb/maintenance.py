"""Whole-database operations, kept apart so that nothing calls them by accident."""

from __future__ import annotations

from neo4j import Driver


def delete_everything(driver: Driver, database: str | None = None) -> None:
    """Delete all nodes and relationships in batches (the schema stays).

    ``CALL ... IN TRANSACTIONS`` needs an auto-commit transaction, hence ``session.run``.
    """
    with driver.session(database=database) as session:
        session.run("MATCH (n) CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS").consume()
