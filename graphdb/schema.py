"""The graph schema (constraints and indexes) from ``cypher/schema.cypher``, applied idempotently."""

from __future__ import annotations

from pathlib import Path

from neo4j import Driver

CYPHER_DIR = Path(__file__).resolve().parents[1] / "cypher"
SCHEMA_FILE = CYPHER_DIR / "schema.cypher"


def split_statements(text: str) -> list[str]:
    """Statements of a Cypher script: ``//`` comment lines dropped, split on ``;`` at line ends."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("//")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def schema_statements(path: Path = SCHEMA_FILE) -> list[str]:
    return split_statements(path.read_text(encoding="utf-8"))


def apply_schema(driver: Driver, database: str | None = None) -> int:
    """Create the constraints and indexes that are missing; returns how many statements ran.

    Every statement is ``IF NOT EXISTS``, so a second call changes nothing.
    """
    statements = schema_statements()
    for statement in statements:
        # Schema statements cannot take parameters; they are fixed text from our own file.
        driver.execute_query(statement, database_=database)
    driver.execute_query("CALL db.awaitIndexes(300)", database_=database)
    return len(statements)


def schema_names(driver: Driver, database: str | None = None) -> set[str]:
    """Names of the constraints and indexes present, to check the schema is in place."""
    records, _, _ = driver.execute_query("SHOW CONSTRAINTS YIELD name RETURN name", database_=database)
    names = {r["name"] for r in records}
    records, _, _ = driver.execute_query("SHOW INDEXES YIELD name RETURN name", database_=database)
    return names | {r["name"] for r in records}
