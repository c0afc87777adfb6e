"""What the graph holds: node counts by label, relationship counts by type, attributes by kind."""

from __future__ import annotations

from dataclasses import dataclass, field

from neo4j import Driver


@dataclass
class GraphSummary:
    nodes: dict[str, int] = field(default_factory=dict)
    relationships: dict[str, int] = field(default_factory=dict)
    attributes_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def total_nodes(self) -> int:
        return sum(self.nodes.values())

    @property
    def total_relationships(self) -> int:
        return sum(self.relationships.values())


def graph_summary(driver: Driver, database: str | None = None) -> GraphSummary:
    """Counts from the count store (labels, types) and one aggregation for attribute kinds."""
    summary = GraphSummary()
    labels, _, _ = driver.execute_query("CALL db.labels() YIELD label RETURN label", database_=database)
    for record in labels:
        # Labels come from the database itself, but we still pass them as parameters.
        rows, _, _ = driver.execute_query(
            "MATCH (n) WHERE $label IN labels(n) RETURN count(n) AS c",
            label=record["label"],
            database_=database,
        )
        summary.nodes[record["label"]] = rows[0]["c"]
    rows, _, _ = driver.execute_query(
        "MATCH ()-[r]->() RETURN type(r) AS t, count(r) AS c ORDER BY t", database_=database
    )
    summary.relationships = {r["t"]: r["c"] for r in rows}
    rows, _, _ = driver.execute_query(
        "MATCH (a:Attribute) RETURN coalesce(a.kind, 'unknown') AS k, count(a) AS c ORDER BY k",
        database_=database,
    )
    summary.attributes_by_kind = {r["k"]: r["c"] for r in rows}
    return summary
