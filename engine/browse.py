"""What the page does, on top of the interactive session: multi-turn steps, finding products, the
explanation as a drawing, and the curator's actions. Each method returns a JSON-ready dict.

A *step* is one turn of a shopping session: a candidate and a change in words. Its query knows the
steps before it: :func:`accumulate_roles` carries the parent step's added / removed / mentioned
attributes into the new step unless the new text undoes them, so "in black" then "with long sleeves"
asks for both. How the graph records it is in :mod:`graphdb.sessions`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.config import PageConfig
from engine.errors import InvalidRequestError, UnknownIdError, database_calls
from engine.session import InteractiveSession
from readers.captions import CaptionRoles, find_mentions
from readers.records import normalise_value

__all__ = ["BrowseSession", "accumulate_roles", "browser_link"]

IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
               ".gif": "image/gif"}
_WORD = re.compile(r"[\w'-]+")


def _neo4j(method: Callable[..., Any]) -> Callable[..., Any]:
    """Neo4j unreachable or too slow inside ``method`` becomes a DatabaseUnavailableError (a 503)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with database_calls():
            return method(*args, **kwargs)

    return wrapper


def accumulate_roles(parent: CaptionRoles | None, own: CaptionRoles, kinds: dict[str, tuple[str, ...]],
                     exclusive_kinds: Iterable[str]) -> CaptionRoles:
    """The roles of a step whose own text gives ``own`` and whose parent step held ``parent``.

    - What the new text adds, removes or mentions comes first and wins.
    - A parent's *added* attribute is kept unless the new text removes it, or adds another attribute
      of the same exclusive kind (one colour, one article type: "in black" then "in red" asks for red,
      not both); such a superseded attribute becomes *removed* ("replace black with red").
    - A parent's *removed* attribute stays removed unless the new text adds it back.
    - A parent's *mentioned* attributes stay mentioned unless the new text gives them a role.
    ``kinds``: the kinds of each attribute (from the graph); an attribute without one never conflicts.
    """
    if parent is None:
        return own
    exclusive = set(exclusive_kinds)

    def exclusive_of(name: str) -> set[str]:
        return set(kinds.get(name, ())) & exclusive

    own_added, own_removed = list(own.added), list(own.removed)
    touched = set(own_added) | set(own_removed) | set(own.mentioned)
    added, removed = list(own_added), list(own_removed)
    for name in parent.added:
        if name in touched:
            continue
        if any(exclusive_of(name) & exclusive_of(new) for new in own_added if new != name):
            removed.append(name)  # superseded by a new value of the same kind
        else:
            added.append(name)
    removed += [name for name in parent.removed if name not in touched and name not in added]
    taken = set(added) | set(removed)
    mentioned = [name for name in (*own.mentioned, *parent.mentioned) if name not in taken]
    return CaptionRoles(tuple(dict.fromkeys(added)), tuple(dict.fromkeys(removed)),
                        tuple(dict.fromkeys(mentioned)))


def roles_dict(roles: CaptionRoles) -> dict[str, list[str]]:
    return {"added": list(roles.added), "removed": list(roles.removed), "mentioned": list(roles.mentioned)}


def browser_link(base: str, browser_text: str, bolt_uri: str | None = None) -> str:
    """A Neo4j Browser address that opens with ``browser_text`` in its editor (Browser's ``cmd=edit``
    URL parameter; ``dbms`` fills in the connect form). The text travels URL-encoded, as data."""
    url = base.rstrip("/") + "/?cmd=edit&arg=" + quote(browser_text, safe="")
    if bolt_uri:
        url += "&dbms=" + quote(bolt_uri, safe="")
    return url


class BrowseSession:
    """The page's operations over an :class:`InteractiveSession` (same engine, driver and lock)."""

    def __init__(self, session: InteractiveSession, config: PageConfig | None = None,
                 browser_base: str | None = None, bolt_uri: str | None = None):
        """``browser_base``: where Neo4j Browser is (``http://127.0.0.1:<http-port>/browser/``), for the
        explanation's link; ``None`` when unknown (then the page shows the query to copy instead)."""
        self.session = session
        self.config = config or PageConfig()
        self.browser_base = browser_base
        self.bolt_uri = bolt_uri

    @property
    def driver(self):
        return self.session.driver

    @property
    def engine(self):
        return self.session.engine

    # --- finding products ---------------------------------------------------------------------------
    @_neo4j
    def find(self, text: str, limit: int | None = None) -> dict[str, Any]:
        """Products by title words or attribute phrases ("black kurta", "navy blue shirts", an id)."""
        from graphdb.browse import find_products

        limit = min(limit or self.config.find_limit, self.config.find_limit)
        norm = normalise_value(text)
        matches = find_mentions(norm, self.engine.vocabulary)
        phrases = [value for _, _, value in matches]
        rest, last = [], 0
        for start, end, _ in matches:
            rest.append(norm[last:start])
            last = end
        rest.append(norm[last:])
        words = [w for w in _WORD.findall(" ".join(rest)) if len(w) >= 2]
        found = find_products(self.driver, phrases, words, exact=text.strip(), limit=limit)
        return {"text": text, "phrases": phrases, "words": words,
                "products": [{"id": p.id, "title": p.title, "score": p.score, "attributes": p.attributes}
                             for p in found]}

    @_neo4j
    def product(self, image_id: str) -> dict[str, Any]:
        """A product's title and attributes (catalog, predicted, tags with who said them)."""
        from graphdb.browse import product

        found = product(self.driver, image_id)
        if found is None:
            raise UnknownIdError(f"unknown image id {image_id!r}")
        found["indexed"] = image_id in self.engine.bundle.image_row
        return found

    @_neo4j
    def image_file(self, image_id: str) -> tuple[Path, str] | None:
        """(file, media type) of a known image id, or ``None``. The path comes from the published index
        or the graph, never from the request, and only image files are served."""
        from graphdb.browse import image_path

        b = self.engine.bundle
        row = b.image_row.get(image_id)
        stored = b.image_paths[row] if row is not None and row < len(b.image_paths) else None
        stored = stored or image_path(self.driver, image_id)
        if not stored:
            return None
        path = Path(stored)
        media = IMAGE_TYPES.get(path.suffix.lower())
        if media is None or not path.is_file():
            return None
        return path, media

    # --- steps of a session ---------------------------------------------------------------------------
    def step(self, candidate: str, text: str, session_id: str | None = None, parent: str | None = None,
             k: int | None = None, who: str = "web") -> dict[str, Any]:
        """A new step: ``candidate`` + ``text``, knowing the ``parent`` step's roles; stored (one
        transaction), answered with reasons, with the session's history."""
        from graphdb.interactions import UnknownNodeError
        from graphdb.sessions import attribute_kinds, read_step, store_step

        k = self._k(k)
        if not text.strip():
            raise InvalidRequestError("say what to change (the text is empty); nothing written")
        engine = self.engine  # one snapshot for the request (a sync swaps in a new one)
        if candidate not in engine.bundle.image_row:
            raise UnknownIdError(f"unknown image id {candidate!r} (not in the published index); nothing written")
        own = engine.parse(text)
        try:
            with database_calls():
                parent_step = read_step(self.driver, parent) if parent else None
                if parent_step is not None and session_id is not None and parent_step.session_id != session_id:
                    raise UnknownIdError(f"{parent!r} is not a step of session {session_id!r}; nothing written")
                if parent_step is not None:
                    session_id = parent_step.session_id
                carried = parent_step.roles if parent_step is not None else CaptionRoles()
                names = [*own.added, *own.removed, *own.mentioned, *carried.added, *carried.removed,
                         *carried.mentioned]
                roles = accumulate_roles(parent_step.roles if parent_step else None, own,
                                         attribute_kinds(self.driver, names), self.config.exclusive_kinds)
                ref = store_step(self.driver, candidate, text, roles, who=who, session_id=session_id,
                                 parent_id=parent)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        with database_calls(done=f"the step is stored as {ref.query_id}"):
            out = self.show(ref.query_id, k)
        out["own_roles"] = roles_dict(own)
        return out

    @_neo4j
    def show(self, query_id: str, k: int | None = None) -> dict[str, Any]:
        """A step answered again with what the graph knows now (its likes and tags included), with the
        session's history: going back to an earlier step is showing it."""
        from graphdb.interactions import UnknownNodeError
        from graphdb.sessions import read_step

        try:
            step = read_step(self.driver, query_id)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        results = self._with_reasons(step.query_id, step.roles, self.session.answer(step.query_id, self._k(k)))
        return self._shown(step, results)

    def _shown(self, step, results: list[dict[str, Any]]) -> dict[str, Any]:
        from graphdb.sessions import read_step

        parent_roles = read_step(self.driver, step.parent).roles if step.parent else None
        return {"step": {**step.as_dict(), "carried": _carried(parent_roles, step.roles)}, "results": results,
                "history": self.history(step.session_id)["steps"]}

    @_neo4j
    def history(self, session_id: str) -> dict[str, Any]:
        """Every step of a session in order (``n``, text, candidate, accumulated roles, parent)."""
        from graphdb.interactions import UnknownNodeError
        from graphdb.sessions import session_steps

        try:
            steps = session_steps(self.driver, session_id)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        return {"session": session_id, "steps": [s.as_dict() for s in steps]}

    @_neo4j
    def like(self, query_id: str, images: list[str], who: str = "web", k: int | None = None) -> dict[str, Any]:
        """I like that, on a step: written and synced by the session, which answers the step again (no
        liked image lower than it was); shown with reasons and the history."""
        from graphdb.interactions import UnknownNodeError
        from graphdb.sessions import read_step

        try:
            step = read_step(self.driver, query_id)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        liked = self.session.like(query_id, images, who=who, k=self._k(k))
        shown = self._shown(read_step(self.driver, query_id),
                            self._with_reasons(query_id, step.roles, liked["results"]))
        return {**shown, "liked": liked["liked"], "created": liked["created"], "refresh": liked["refresh"],
                "changed_images": liked["changed_images"], "ranks_before": liked.get("ranks_before", {})}

    @_neo4j
    def tag(self, image: str, sentence: str, who: str = "web") -> dict[str, Any]:
        """More metadata about a product; returns the tags written and the product as it is now."""
        tagged = self.session.tag(sentence, image, who=who)
        return {**tagged, "product": self.product(image)}

    # --- why this result --------------------------------------------------------------------------------
    @_neo4j
    def explain(self, query_id: str, result_id: str) -> dict[str, Any]:
        """The explanation in words, the subgraph to draw (nodes and edges of the same Cypher that
        Neo4j Browser runs), and the Browser link with that query ready."""
        from graphdb.explain import explain, explain_graph
        from graphdb.interactions import UnknownNodeError

        try:
            explanation = explain(self.driver, query_id, result_id)
            graph = explain_graph(self.driver, query_id, result_id, limit=self.config.explain_nodes)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        link = (browser_link(self.browser_base, explanation.browser_query(), self.bolt_uri)
                if self.browser_base else None)
        return {"query_id": query_id, "result": result_id, "facts": explanation.facts,
                "cypher": explanation.cypher, "params": explanation.params,
                "browser": explanation.browser_text(), "browser_query": explanation.browser_query(),
                "browser_url": link, "graph": graph}

    # --- curators -----------------------------------------------------------------------------------------
    @_neo4j
    def attributes(self) -> dict[str, Any]:
        from graphdb.browse import attribute_counts

        return {"attributes": attribute_counts(self.driver)}

    @_neo4j
    def merge_attributes(self, keep: str, drop: str) -> dict[str, Any]:
        """``cypher/curator/merge_attributes.cypher``, then a sync."""
        from graphdb.interactions import merge_attributes

        moved = self._curate(merge_attributes, self.driver, keep, drop)
        return {"kept": normalise_value(keep), "dropped": normalise_value(drop), "moved": moved,
                **self.session.sync()}

    @_neo4j
    def remove_tag(self, image: str, name: str, source: str | None = None) -> dict[str, Any]:
        """``cypher/curator/remove_tag.cypher``, then a sync."""
        from graphdb.interactions import remove_tag

        removed = self._curate(remove_tag, self.driver, image, name, source)
        if not removed:
            raise InvalidRequestError(f"{image!r} has no attribute {normalise_value(name)!r}"
                                      + (f" from source {source!r}" if source else "") + "; nothing removed")
        return {"image": image, "name": normalise_value(name), "removed": removed, **self.session.sync(),
                "product": self.product(image)}

    @_neo4j
    def add_attribute(self, images: list[str], name: str, kind: str, who: str) -> dict[str, Any]:
        """``cypher/curator/add_attribute.cypher`` on each product (one transaction), then a sync."""
        from graphdb.curator import add_attribute_to_images

        added = self._curate(add_attribute_to_images, self.driver, images, name, kind, who)
        return {**added, "images": sorted(set(images)), **self.session.sync()}

    # --- helpers ----------------------------------------------------------------------------------------
    def _k(self, k: int | None) -> int:
        return max(1, min(k or self.config.results, self.config.max_results))

    @staticmethod
    def _curate(action, *args: Any) -> Any:
        from graphdb.interactions import UnknownNodeError

        try:
            return action(*args)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc

    def _with_reasons(self, query_id: str, roles: CaptionRoles, answer: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A step's answer (``{"id", "score", "title", "liked"}`` in rank order) with each result's rank and
        reasons (the explanation's facts; what was asked and the title when the graph has none)."""
        from graphdb.explain import explain_facts

        facts = explain_facts(self.driver, query_id, [hit["id"] for hit in answer])
        results = []
        for rank, hit in enumerate(answer, 1):
            reasons = facts[hit["id"]]
            if not reasons:
                reasons = [f"asked for: {', '.join(roles.added)}"] if roles.added else []
                reasons.append(f"title: {hit['title']}")
            results.append({**hit, "rank": rank, "liked": bool(hit.get("liked")), "reasons": reasons})
        return results


def _carried(parent: CaptionRoles | None, roles: CaptionRoles) -> dict[str, list[str]]:
    """Which of a step's roles came from earlier steps (same role in the parent)."""
    if parent is None:
        return {"added": [], "removed": [], "mentioned": []}
    return {role: [n for n in getattr(roles, role) if n in getattr(parent, role)]
            for role in ("added", "removed", "mentioned")}
