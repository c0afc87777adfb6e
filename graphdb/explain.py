"""Why a result answers a query, in words and as a subgraph to draw in Neo4j Browser.

The words come from one structured read (below); the drawing is ``cypher/explain.cypher``, returned
with its parameters so that a user can paste both into Browser (:meth:`Explanation.browser_text`).
Both read the same evidence: attributes the result shares with the candidate, the query's added /
removed / mentioned attributes it has or lacks, tags by users and curators, and likes (for this query,
from its candidate, or together with images liked for similar queries: the same text, the same
candidate, or an added attribute in common).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from neo4j import Driver, ManagedTransaction
from neo4j.graph import Node, Path, Relationship

from graphdb.interactions import UnknownNodeError, cypher_script
from graphdb.schema import CYPHER_DIR

__all__ = ["Explanation", "cypher_literal", "explain", "explain_cypher", "explain_facts", "explain_graph"]

_SHOWN = 8  # attributes named in one fact; the rest are counted

# "Similar" captions, as in cypher/explain.cypher.
_SIMILAR = """(s.text = c.text OR EXISTS { (s)-[:MODIFIES]->(:Image)<-[:MODIFIES]-(c) }
     OR EXISTS { (s)-[:MENTIONS {role: 'added'}]->(:Attribute)<-[:MENTIONS {role: 'added'}]-(c) })"""

# The evidence of one result r for the query c, as columns (the facts below are made of them).
_FACT_COLUMNS = f"""c.text AS text, r IS NOT NULL AS result_found,
  [(c)-[:MODIFIES]->(x:Image) | x.id] AS candidates,
  [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]] AS roles,
  [(r)-[:HAS_ATTRIBUTE|USER_TAGGED]->(a:Attribute) | a.name] AS result_attrs,
  [(c)-[:MODIFIES]->(x:Image)-[:HAS_ATTRIBUTE|USER_TAGGED]->(a:Attribute) WHERE x <> r | a.name] AS cand_attrs,
  [(r)-[t:USER_TAGGED]->(a:Attribute) | [a.name, t.who, t.phrase, coalesce(t.source, 'user')]] AS tags,
  [(r)-[l:LIKED_FOR]->(c) | l.who] AS liked_for,
  [(r)-[l:LIKED_FROM]->(x:Image)<-[:MODIFIES]-(c) | [x.id, l.who, l.query]] AS liked_from,
  [(r)-[l:LIKED_FOR]->(s:Caption)<-[m:LIKED_FOR]-(o:Image) WHERE o <> r AND m.who = l.who AND (s = c OR {_SIMILAR})
     | [o.id, s.id, s.text, l.who]] AS liked_with,
  [(r)-[l:LIKED_FOR]->(s:Caption) WHERE s <> c AND {_SIMILAR} | [s.id, s.text, l.who]] AS liked_for_similar
"""
_FACTS = "MATCH (c:Caption {id: $query_id})\nOPTIONAL MATCH (r:Image {id: $result_id})\nRETURN " + _FACT_COLUMNS
# Every result of an answer in one read (a query's ten results: one round trip, not ten).
_FACTS_MANY = ("MATCH (c:Caption {id: $query_id})\nUNWIND $result_ids AS result_id\n"
               "OPTIONAL MATCH (r:Image {id: result_id})\nRETURN result_id, " + _FACT_COLUMNS)


@dataclass
class Explanation:
    """Facts in words, and a parameterised query that draws them in Neo4j Browser."""

    facts: list[str]
    cypher: str
    params: dict[str, Any] = field(default_factory=dict)

    def browser_params(self) -> str:
        """A ``:params`` line for Neo4j Browser (sets all the query's parameters at once)."""
        inner = ", ".join(f"{k}: {cypher_literal(v)}" for k, v in self.params.items())
        return f":params {{{inner}}}"

    def browser_text(self) -> str:
        """What to paste into Browser: the ``:params`` line, then the query. The ``;`` makes them two
        statements (Browser 5 runs a ``:params`` line and a query together only when separated so)."""
        return f"{self.browser_params()};\n{self.cypher}"

    def browser_query(self) -> str:
        """The query with its parameters written in as escaped Cypher literals: one statement, for a
        Neo4j Browser link. Browser's URL carries one command, and a ``:params`` line with a query runs
        in multi-statement mode, which reports a summary instead of drawing the graph. The values are
        ids the graph has (:func:`explain` checked them), and :func:`cypher_literal` quotes them."""
        names = "|".join(re.escape(k) for k in sorted(self.params, key=len, reverse=True))
        if not names:
            return self.cypher
        return re.sub(rf"\$({names})\b", lambda m: cypher_literal(self.params[m.group(1)]), self.cypher)


def cypher_literal(value: Any) -> str:
    """A Cypher literal for a ``:params`` line (strings single-quoted with backslash escapes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(cypher_literal(v) for v in value) + "]"
    raise TypeError(f"no Cypher literal for {type(value).__name__}")


def explain_cypher() -> str:
    """The text of ``cypher/explain.cypher`` (without its final ';', so drivers accept it too)."""
    return cypher_script("explain", CYPHER_DIR)


def _quoted(names: Iterable[str]) -> str:
    names = list(names)
    shown = ", ".join(f"'{n}'" for n in names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _people(whos: Iterable[str | None]) -> str:
    return ", ".join(sorted({w or "someone" for w in whos}))


def _facts(record: Any, query_id: str, result_id: str) -> list[str]:
    candidates: list[str] = record["candidates"]
    roles: dict[str, list[str]] = {"added": [], "removed": [], "mentioned": []}
    for name, role in record["roles"]:
        roles.setdefault(role, []).append(name)
    has = set(record["result_attrs"])
    facts: list[str] = []
    caveats: list[str] = []  # evidence against the result: said last, but said
    if result_id in candidates:
        facts.append(f"{result_id} is the query's candidate itself")
    for name in sorted(roles["added"]):
        if name in has:
            facts.append(f"has '{name}', which the query adds")
        else:
            caveats.append(f"does not have '{name}', which the query adds")
    for name in sorted(roles["removed"]):
        if name in has:
            caveats.append(f"still has '{name}', which the query removes")
        else:
            facts.append(f"does not have '{name}', which the query removes")
    mentioned = sorted(has & set(roles["mentioned"]))
    if mentioned:
        facts.append(f"has {_quoted(mentioned)}, which the query mentions")
    asked = set(roles["added"]) | set(roles["removed"])
    shared = sorted((has & set(record["cand_attrs"])) - asked)
    if shared and candidates and result_id not in candidates:
        cand = ", ".join(candidates)
        facts.append(f"shares {len(shared)} attribute{'s' if len(shared) > 1 else ''} with the candidate "
                     f"{cand}: {_quoted(shared)}")
    tagged: dict[str, list[tuple[str | None, str | None, str]]] = {}
    for name, who, phrase, source in record["tags"]:
        tagged.setdefault(name, []).append((who, phrase, source))
    for name in sorted(tagged):
        who_list = _people(w for w, _, _ in tagged[name])
        phrases = sorted({p for _, p, _ in tagged[name] if p})
        said = f" (\"{phrases[0]}\")" if phrases else ""
        what = "curated" if all(s == "curator" for _, _, s in tagged[name]) else "tagged"
        facts.append(f"was {what} '{name}' by {who_list}{said}")
    if record["liked_for"]:
        facts.append(f"was liked for this query by {_people(record['liked_for'])}")
    liked_from: dict[str, list[str | None]] = {}
    for cand, who, liked_query in record["liked_from"]:
        if liked_query != query_id:  # a like for this very query is said above
            liked_from.setdefault(cand, []).append(who)
    for cand in sorted(liked_from):
        facts.append(f"was liked from the same candidate {cand}, for another query, by {_people(liked_from[cand])}")
    together: dict[tuple[str, str], tuple[str, list[str | None]]] = {}
    for other, caption_id, text, who in record["liked_with"]:
        together.setdefault((other, caption_id), (text, []))[1].append(who)
    for (other, caption_id), (text, whos) in sorted(together.items()):
        why = "this query" if caption_id == query_id else f"the similar query {text!r} ({caption_id})"
        facts.append(f"is liked together with {other}, which was liked for {why} (by {_people(whos)})")
    similar: dict[str, tuple[str, list[str | None]]] = {}
    for caption_id, text, who in record["liked_for_similar"]:
        similar.setdefault(caption_id, (text, []))[1].append(who)
    for caption_id, (text, whos) in sorted(similar.items()):
        facts.append(f"was liked for the similar query {text!r} ({caption_id}) by {_people(whos)}")
    if not facts:
        facts.append("no attribute, tag or like links it to this query: it ranks by embedding similarity alone")
    return facts + caveats


def explain(driver: Driver, query_id: str, result_id: str, database: str | None = None) -> Explanation:
    """Why ``result_id`` fits query ``query_id``: facts in words and the Browser query that draws them.

    An unknown query or image raises :class:`~graphdb.interactions.UnknownNodeError`.
    """

    def work(tx: ManagedTransaction) -> Any:
        return tx.run(_FACTS, query_id=query_id, result_id=result_id).single()

    with driver.session(database=database) as session:
        record = session.execute_read(work)
    if record is None:
        raise UnknownNodeError(f"unknown query id {query_id!r}")
    if not record["result_found"]:
        raise UnknownNodeError(f"unknown image id {result_id!r}")
    params = {"query_id": query_id, "result_id": result_id}
    return Explanation(_facts(record, query_id, result_id), explain_cypher(), params)


def explain_facts(driver: Driver, query_id: str, result_ids: list[str], database: str | None = None
                  ) -> dict[str, list[str]]:
    """The facts of :func:`explain` for several results of one query, read at once: ``{result id: facts}``.

    An unknown query or image raises :class:`~graphdb.interactions.UnknownNodeError`.
    """
    ids = list(dict.fromkeys(result_ids))
    if not ids:
        return {}

    def work(tx: ManagedTransaction) -> list[Any]:
        return list(tx.run(_FACTS_MANY, query_id=query_id, result_ids=ids))

    with driver.session(database=database) as session:
        records = session.execute_read(work)
    if not records:
        raise UnknownNodeError(f"unknown query id {query_id!r}")
    missing = [r["result_id"] for r in records if not r["result_found"]]
    if missing:
        raise UnknownNodeError(f"unknown image id {missing[0]!r}")
    return {r["result_id"]: _facts(r, query_id, r["result_id"]) for r in records}


# Node kinds drawn, in the order a label is chosen when a node has several.
_DRAWN_LABELS = ("Image", "Caption", "Attribute")


def _node(node: Any) -> dict[str, Any]:
    label = next((x for x in _DRAWN_LABELS if x in node.labels), next(iter(node.labels), "Node"))
    out: dict[str, Any] = {"key": node.element_id, "label": label}
    for prop in ("id", "name", "text", "title"):
        if node.get(prop) is not None:
            out[prop] = node.get(prop)
    return out


def _walk(value: Any, nodes: dict[str, dict[str, Any]], edges: dict[str, dict[str, Any]]) -> None:
    """Collect the nodes and relationships inside a value of an explanation row (paths, lists, nodes)."""
    if isinstance(value, Path):
        for node in value.nodes:
            nodes.setdefault(node.element_id, _node(node))
        for rel in value.relationships:
            _walk(rel, nodes, edges)
    elif isinstance(value, Relationship):
        for node in (value.start_node, value.end_node):
            if node is not None:
                nodes.setdefault(node.element_id, _node(node))
        edges.setdefault(value.element_id, {
            "key": value.element_id, "type": value.type, "from": value.start_node.element_id,
            "to": value.end_node.element_id,
            **{p: value.get(p) for p in ("role", "who", "source") if value.get(p) is not None}})
    elif isinstance(value, Node):
        nodes.setdefault(value.element_id, _node(value))
    elif isinstance(value, list | tuple):
        for item in value:
            _walk(item, nodes, edges)


def explain_graph(driver: Driver, query_id: str, result_id: str, limit: int = 40,
                  database: str | None = None) -> dict[str, Any]:
    """The explanation subgraph as plain data for a drawing: the nodes and relationships of the paths
    that ``cypher/explain.cypher`` returns (what Neo4j Browser draws for the same query).

    ``{"nodes": [{"key", "label", "id"|"name"|"text", "title"?, "role"?}], "edges": [{"key", "type",
    "from", "to", "role"?, "who"?, "source"?}], "hidden": n}``; the query is marked ``role: "query"``, the
    result ``"result"`` and the candidate ``"candidate"``; past ``limit`` nodes the rest are counted
    in ``hidden`` (the query, result and candidate are always kept)."""

    def work(tx: ManagedTransaction) -> Any:
        return tx.run(explain_cypher(), query_id=query_id, result_id=result_id).single()

    with driver.session(database=database) as session:
        record = session.execute_read(work)
    if record is None:
        raise UnknownNodeError(f"unknown query id {query_id!r} or image id {result_id!r}")
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[str, dict[str, Any]] = {}
    query, result = record["query"], record["result"]
    _walk([query, result, *record.values()], nodes, edges)
    nodes[query.element_id]["role"] = "query"
    nodes[result.element_id]["role"] = "result"
    for edge in edges.values():
        if edge["type"] == "MODIFIES" and edge["from"] == query.element_id:
            nodes[edge["to"]].setdefault("role", "candidate")
    seen = {key: i for i, key in enumerate(nodes)}  # the query's own order: what it found first
    ordered = sorted(nodes.values(), key=lambda n: ("role" not in n, n["label"] != "Image", seen[n["key"]]))
    kept = ordered[:max(limit, 3)]
    keys = {n["key"] for n in kept}
    drawn = [e for e in edges.values() if e["from"] in keys and e["to"] in keys]
    return {"nodes": kept, "edges": drawn, "hidden": len(nodes) - len(kept)}
