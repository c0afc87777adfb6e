"""Shopping sessions as the graph records them: a (:Session) with ordered steps, each step a query Caption.

::

    (:Session {id, who, created_at, updated_at})
    (:Session)-[:HAS_STEP {n, created_at}]->(:Caption {id, text, split: 'query', who, session, step})
    (:Caption)-[:FOLLOWS {created_at}]->(:Caption)    a step -> the step it continued from
    (:Caption)-[:MODIFIES]->(:Image)                   the step's candidate
    (:Caption)-[:MENTIONS {role}]->(:Attribute)        the step's roles: its own text's and those it carries

A step is an ordinary stored query (split ``query``), so likes, explanations, ``remove_interactions``
and the base-graph export treat it like any other; it only knows more. Its MENTIONS hold the
*accumulated* roles: what its own text adds, removes or mentions, plus what its parent step held, less
what this step undoes (:func:`engine.browse.accumulate_roles` decides that). So "in black" then "with
long sleeves" gives a second caption that MENTIONS {added} both *black* and *long sleeves*, and
answering that caption again (after a like, say) needs no memory outside the graph. ``FOLLOWS`` points
at the parent, which need not be the previous step: going back to step 2 and asking again makes step 4
follow step 2, and step 3 stays in the history. ``n`` counts steps within the session from 1.

Neither HAS_STEP nor FOLLOWS is an R-GCN relation (the export reads relation types by name), and
Session nodes are never exported: sessions are history, not evidence.

Every write is one transaction (``execute_write``) of fixed, parameterised Cypher; unknown ids raise
:class:`~graphdb.interactions.UnknownNodeError` inside it, so nothing of the step is written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from neo4j import Driver, ManagedTransaction

from graphdb.interactions import QUERY_SPLIT, UnknownNodeError
from readers.captions import CaptionRoles
from readers.records import normalise_value

__all__ = ["Step", "StepRef", "attribute_kinds", "read_step", "session_steps", "store_step"]

HAS_STEP = "HAS_STEP"
FOLLOWS = "FOLLOWS"


@dataclass(frozen=True)
class StepRef:
    session_id: str
    query_id: str
    n: int


@dataclass(frozen=True)
class Step:
    """One step as stored: its caption, candidate, accumulated roles, parent and likes."""

    session_id: str
    query_id: str
    n: int
    text: str
    candidate: str
    candidate_title: str
    parent: str | None  # the query id of the step it continued from
    roles: CaptionRoles
    liked: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"session": self.session_id, "query_id": self.query_id, "n": self.n, "text": self.text,
                "candidate": self.candidate, "candidate_title": self.candidate_title, "parent": self.parent,
                "roles": {"added": list(self.roles.added), "removed": list(self.roles.removed),
                          "mentioned": list(self.roles.mentioned)},
                "liked": list(self.liked)}


def _mentions(roles: CaptionRoles) -> list[list[str]]:
    pairs: dict[tuple[str, str], None] = {}
    for role in ("added", "removed", "mentioned"):
        for value in getattr(roles, role):
            if name := normalise_value(value):
                pairs[(name, role)] = None
    return [list(p) for p in sorted(pairs)]  # sorted: concurrent writers lock attributes in one order


_CHECK_SESSION = """
OPTIONAL MATCH (s:Session {id: $session_id})
OPTIONAL MATCH (s)-[:HAS_STEP]->(p:Caption {id: $parent_id})
OPTIONAL MATCH (cand:Image {id: $candidate_id})
RETURN s IS NOT NULL AS session_found, p IS NOT NULL AS parent_found, cand IS NOT NULL AS candidate_found
"""

# MERGE on the session first: its write lock orders concurrent steps of one session, so each reads the
# committed max(n) of the others and no two steps share a number.
_STORE_STEP = """
MERGE (s:Session {id: $session_id})
  ON CREATE SET s.who = $who, s.created_at = datetime()
SET s.updated_at = datetime()
WITH s
MATCH (cand:Image {id: $candidate_id})
OPTIONAL MATCH (s)-[h:HAS_STEP]->(:Caption)
WITH s, cand, coalesce(max(h.n), 0) + 1 AS n
CREATE (c:Caption {id: $id, text: $text, split: $split, group: '', who: $who, session: s.id, step: n,
                   updated_at: datetime()})
CREATE (s)-[:HAS_STEP {n: n, created_at: datetime()}]->(c)
CREATE (c)-[:MODIFIES {created_at: datetime()}]->(cand)
WITH c, n
CALL (c) {
  OPTIONAL MATCH (p:Caption {id: $parent_id})
  FOREACH (_ IN CASE WHEN p IS NULL THEN [] ELSE [1] END | CREATE (c)-[:FOLLOWS {created_at: datetime()}]->(p))
}
CALL (c) {
  UNWIND $mentions AS m
  MERGE (a:Attribute {name: m[0]})
    ON CREATE SET a.kind = 'unknown', a.kinds = [], a.updated_at = datetime()
  CREATE (c)-[:MENTIONS {role: m[1], created_at: datetime()}]->(a)
}
RETURN n
"""


def store_step(driver: Driver, candidate_id: str, text: str, roles: CaptionRoles, who: str = "web",
               session_id: str | None = None, parent_id: str | None = None,
               database: str | None = None) -> StepRef:
    """A new step: a query Caption with its candidate and (accumulated) ``roles``, numbered next in the
    session. ``session_id=None`` starts a new session; ``parent_id`` (a step of that session) is the
    step it continues from. One transaction; unknown ids raise :class:`UnknownNodeError`."""
    if parent_id is not None and session_id is None:
        raise UnknownNodeError(f"step {parent_id!r} has no session given; nothing written")
    new_session = session_id is None
    sid = session_id or f"s-{uuid.uuid4().hex}"
    query_id = f"q-{uuid.uuid4().hex}"

    def work(tx: ManagedTransaction) -> int:
        found = tx.run(_CHECK_SESSION, session_id=sid, parent_id=parent_id or "",
                       candidate_id=candidate_id).single(strict=True)
        if not found["candidate_found"]:
            raise UnknownNodeError(f"unknown image id {candidate_id!r}; nothing written")
        if not new_session and not found["session_found"]:
            raise UnknownNodeError(f"unknown session id {sid!r}; nothing written")
        if parent_id is not None and not found["parent_found"]:
            raise UnknownNodeError(f"{parent_id!r} is not a step of session {sid!r}; nothing written")
        record = tx.run(_STORE_STEP, session_id=sid, candidate_id=candidate_id, id=query_id, text=text,
                        split=QUERY_SPLIT, who=who, parent_id=parent_id, mentions=_mentions(roles)).single()
        return int(record["n"])

    with driver.session(database=database) as session:
        n = session.execute_write(work)
    return StepRef(sid, query_id, n)


_STEP_ROW = """
OPTIONAL MATCH (c)-[:MODIFIES]->(cand:Image)
OPTIONAL MATCH (c)-[:FOLLOWS]->(p:Caption)
RETURN s.id AS session, c.id AS id, h.n AS n, c.text AS text, cand.id AS candidate,
       coalesce(cand.title, '') AS candidate_title, p.id AS parent,
       [(c)-[m:MENTIONS]->(a:Attribute) | [a.name, coalesce(m.role, 'mentioned')]] AS mentions,
       [(i:Image)-[:LIKED_FOR]->(c) | i.id] AS liked
"""
_READ_STEP = "MATCH (s:Session)-[h:HAS_STEP]->(c:Caption {id: $query_id})" + _STEP_ROW
_SESSION_STEPS = "MATCH (s:Session {id: $session_id})-[h:HAS_STEP]->(c:Caption)" + _STEP_ROW + " ORDER BY n"


def _step(record: Any) -> Step:
    by_role: dict[str, list[str]] = {"added": [], "removed": [], "mentioned": []}
    for name, role in sorted(record["mentions"]):
        by_role.setdefault(role, []).append(name)
    roles = CaptionRoles(tuple(by_role["added"]), tuple(by_role["removed"]), tuple(by_role["mentioned"]))
    return Step(record["session"], record["id"], int(record["n"]), record["text"], record["candidate"],
                record["candidate_title"], record["parent"], roles, tuple(sorted(set(record["liked"]))))


def read_step(driver: Driver, query_id: str, database: str | None = None) -> Step:
    """One step by its query id; :class:`UnknownNodeError` when it is no session's step."""
    records, _, _ = driver.execute_query(_READ_STEP, query_id=query_id, database_=database)
    if not records:
        raise UnknownNodeError(f"{query_id!r} is not a step of any session")
    return _step(records[0])


def session_steps(driver: Driver, session_id: str, database: str | None = None) -> list[Step]:
    """Every step of a session in order; :class:`UnknownNodeError` for an unknown session."""
    records, _, _ = driver.execute_query(_SESSION_STEPS, session_id=session_id, database_=database)
    if not records:
        exists, _, _ = driver.execute_query("MATCH (s:Session {id: $id}) RETURN count(s) AS n", id=session_id,
                                            database_=database)
        if not exists[0]["n"]:
            raise UnknownNodeError(f"unknown session id {session_id!r}")
    return [_step(r) for r in records]


def attribute_kinds(driver: Driver, names: list[str], database: str | None = None) -> dict[str, tuple[str, ...]]:
    """The kinds of each named attribute (``kind`` and ``kinds`` together; unknown names are left out)."""
    if not names:
        return {}
    records, _, _ = driver.execute_query(
        "UNWIND $names AS n MATCH (a:Attribute {name: n}) "
        "RETURN a.name AS name, coalesce(a.kinds, []) + coalesce(a.kind, []) AS kinds",
        names=sorted(set(names)), database_=database)
    return {r["name"]: tuple(sorted({k for k in r["kinds"] if k})) for r in records}
