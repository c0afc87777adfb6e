"""`tailor demo`: the main job end to end on the local Neo4j."""

from __future__ import annotations

from cli.console import console, print_counts
from cli.db import connect
from graphdb.stats import graph_summary


def run_demo() -> None:
    console.rule("tailor demo")
    with connect() as driver:
        summary = graph_summary(driver)
    print_counts("nodes", summary.nodes, "label")
    print_counts("relationships", summary.relationships, "type")
