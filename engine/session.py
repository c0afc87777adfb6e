"""What `tailor query | tag | like | explain | sync` and `tailor serve` do, once: a session holds the live
engine and a driver, and answers each interaction with a JSON-ready dict.

The commands print these dicts (or render them); the server returns them.

Concurrency: reads never wait for writes. A request takes the engine once (:attr:`InteractiveSession.engine`)
and uses that snapshot throughout; a sync builds the next engine off to the side and swaps it in (copy on
write, :mod:`engine.live`), so a search never waits for a sync nor sees a half-updated index. Syncs run one
at a time; a write whose change a sync already started after it has read is answered with that sync
(:meth:`InteractiveSession._sync`), so a burst of likes costs fewer syncs than likes. Neo4j writes hold
nothing of the engine (each is one transaction). Neo4j being down or slow is a
:class:`~engine.errors.DatabaseUnavailableError` (:func:`engine.errors.database_calls`).

Limits (:class:`engine.config.ServeConfig`): k, text length and images per like are checked here too, so a
command gets the same answer as the server.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from neo4j import Driver

from engine.config import ServeConfig
from engine.errors import (
    ArtifactError,
    DatabaseUnavailableError,
    InvalidRequestError,
    UnknownIdError,
    database_calls,
)
from engine.live import LiveEngine
from engine.workspace import Workspace
from readers.progress import StartPhase


def explain_result(driver: Driver, query_id: str, result_id: str) -> dict[str, Any]:
    """Why a result answers a query: facts in words and the Cypher (with a Browser ``:params`` line)
    that draws them. Needs no model: the facts are in the graph."""
    from graphdb.explain import explain

    try:
        with database_calls():
            explanation = explain(driver, query_id, result_id)
    except LookupError as exc:
        raise UnknownIdError(str(exc)) from exc
    return {"query_id": query_id, "result": result_id, "facts": explanation.facts,
            "cypher": explanation.cypher, "params": explanation.params, "browser": explanation.browser_text()}


def never_demote(hits: list[tuple[str, float]], liked: list[str], k: int) -> list[tuple[str, float | None, bool]]:
    """A liked query's answer, ``(id, score or None, liked)``: the liked images first, in the order they were
    liked (``liked``), then the other hits in score order.

    Liked images are what the shopper said answers this query, so a like never demotes one: an image
    liked at rank r goes after the images liked before it, which held the first places, so it lands at or
    above r (likes of several images keep their ranks' order); and a later like only appends, so no image
    liked before it moves down. Images the search did not return keep their place with no score."""
    score = dict(hits)
    pinned = set(liked)
    rest = [(i, s, False) for i, s in hits if i not in pinned]
    return ([(i, score.get(i), True) for i in liked] + rest)[:max(k, len(liked))]


class InteractiveSession:
    """The interactions on the published model, each returning a JSON-ready dict (see module doc)."""

    def __init__(self, ws: Workspace, driver: Driver, background_save: bool = False,
                 limits: ServeConfig | None = None, repair: bool = False):
        """``background_save``: return as soon as the ranking changed and write the index files after
        (a server); otherwise wait for them, so a command's files are complete when it exits. ``repair``:
        accept an engine whose bundle or index is damaged, to be rebuilt by ``sync(full=True)``."""
        self.ws = ws
        self.driver = driver
        self.limits = limits or ServeConfig()
        self.live = LiveEngine(ws, repair=repair)
        self.background_save = background_save
        self._sync_lock = threading.Lock()  # one sync at a time; searches never take it
        self._sync_started = -math.inf  # time.monotonic() when the last sync began reading the database
        self._last_sync: dict[str, Any] | None = None
        self._extractor = None
        self._extractor_lock = threading.Lock()  # flair taggers are not meant for concurrent calls
        self._known_words: frozenset[str] | None = None

    @property
    def engine(self):
        """The searcher as it is now: take it once per request (a sync swaps in a new one, never changes it)."""
        engine = self.live.engine
        if engine is None:
            raise ArtifactError(f"{self.ws.engine}: the index is being rebuilt from the model and the database; "
                                "run `tailor sync --full` (or wait for the one running)")
        return engine

    def close(self) -> None:
        with self._sync_lock:
            self.live.close()

    def warm_up(self) -> list[str]:
        """Load now what the first requests would otherwise wait for: the text encoder (for query text
        that is not in the feature cache), when trained the attribute tagger, and the plans of the sync's
        reads (:meth:`LiveEngine.warm_up`). Returns what it loaded."""
        loaded = []
        with database_calls():
            if self.live.warm_up(self.driver):
                loaded.append("sync reads planned")
        encoder = getattr(self.engine.text_encoder, "load_encoder", None)
        if encoder is not None:
            encoder()
            loaded.append("text encoder")
        if self.extractor_trained:
            with self._extractor_lock:
                self.extractor(list(self.engine.bundle.attribute_names))
                self.known_words(self.engine)
            loaded.append("attribute tagger")
        return loaded

    # --- limits ------------------------------------------------------------------------------------
    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.limits.max_k:
            raise InvalidRequestError(f"k must be from 1 to {self.limits.max_k}, not {k}")

    def _check_text(self, text: str, what: str) -> None:
        if len(text) > self.limits.max_text_chars:
            raise InvalidRequestError(f"{what} has {len(text):,} characters; at most {self.limits.max_text_chars} "
                                      "are accepted; nothing written")

    def _check_image(self, engine, image: str) -> None:
        if image not in engine.bundle.image_row:
            raise UnknownIdError(self._not_indexed(image) + "; nothing written")

    # --- interactions ------------------------------------------------------------------------------
    def search(self, image: str, text: str, k: int = 10) -> dict[str, Any]:
        """Answer a composed query without storing anything and without reading Neo4j (reasons from the
        engine's memory: the second stage's facts, or what was asked)."""
        start = time.perf_counter()
        self._check_k(k)
        self._check_text(text, "text")
        engine = self.engine
        self._check_image(engine, image)
        result = engine.search(image, text, k)
        results = self._results(engine, result)
        return {"candidate": image, "text": text, "roles": _roles(result.roles), "fallback": result.fallback,
                "results": results,
                "seconds": round(time.perf_counter() - start, 4)}

    def query(self, image: str, text: str, k: int = 10, who: str = "cli") -> dict[str, Any]:
        """Store the query (a Caption node), answer it, give each result its reasons (the second stage's
        facts and their weights, from memory; from the graph in one read when the engine has no second
        stage)."""
        from graphdb.explain import explain_facts
        from graphdb.interactions import UnknownNodeError, store_query

        start = time.perf_counter()
        self._check_k(k)
        self._check_text(text, "text")
        engine = self.engine
        self._check_image(engine, image)
        roles = engine.parse(text)
        result = engine.search(image, text, k, roles=roles)
        try:
            with database_calls():
                query_id = store_query(self.driver, image, text, roles, who=who)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        facts: dict[str, list[str]] = {}
        if result.reasons is None and not result.fallback:
            with database_calls(done=f"the query is stored as {query_id}"):
                facts = explain_facts(self.driver, query_id, [hit for hit, _ in result.hits])  # one round trip
        results = self._results(engine, result, facts)
        return {"query_id": query_id, "candidate": image, "text": text, "roles": _roles(roles),
                "fallback": result.fallback,
                "results": results, "seconds": round(time.perf_counter() - start, 4)}

    def like(self, query_id: str, images: list[str], who: str = "cli", k: int = 10) -> dict[str, Any]:
        """I like that: the liked images (a set, linked to the query's caption and candidate), then the query
        answered again hearing them (``results``), where no liked image ranks lower than it did before."""
        from graphdb.interactions import UnknownNodeError, like

        self._check_k(k)
        images = list(dict.fromkeys(images))
        if not images:
            raise InvalidRequestError("like needs at least one image id; nothing written")
        if len(images) > self.limits.max_like_images:
            raise InvalidRequestError(f"a like takes at most {self.limits.max_like_images} images, not "
                                      f"{len(images)}; nothing written")
        stored = self._stored(query_id)
        ranks = self._ranks_now(stored, images)  # where they rank before the like: the floor they keep
        try:
            with database_calls():
                result = like(self.driver, query_id, images, who=who, ranks=ranks)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        synced = self._sync(written_at=time.monotonic(), done="the like is stored")
        results = self.answer(query_id, k)  # before the readers of hubs it passed on (LiveEngine.catch_up)
        self._catch_up()
        return {"query_id": query_id, "liked": images, "created": result.counts, "ranks_before": ranks,
                **synced, "results": results}

    def answer(self, query_id: str, k: int = 10) -> list[dict[str, Any]]:
        """A stored query answered again with what the graph knows now, its likes included (first, and
        never below the rank each had when liked: :func:`never_demote`), each with its reasons."""
        stored = self._stored(query_id)
        engine = self.engine
        ranked, result = self._ranked(engine, stored, k)
        reasons = dict(zip((h for h, _ in result.hits), self._results(engine, result), strict=True))
        b = engine.bundle
        out = []
        for i, score, liked in ranked:
            row = reasons.get(i) or {"reasons": self._fallback_reasons(engine, i, stored.roles), "facts": []}
            out.append({"id": i, "score": score, "title": b.image_titles[b.image_row[i]], "liked": liked,
                        "reasons": row["reasons"], "facts": row["facts"]})
        return out

    def tag(self, sentence: str, image: str, who: str = "cli") -> dict[str, Any]:
        """More metadata: the attributes a sentence names, linked to the image (USER_TAGGED). A phrase the
        graph does not know becomes a new attribute only if the tagger is sure of it and it reads like an
        attribute (:func:`gnn.attributes.extraction.implausible_attribute`); a sentence with none is refused
        and nothing is written. Curators add any attribute with ``cypher/curator/add_attribute.cypher``."""
        from gnn.attributes.extraction import implausible_attribute
        from graphdb.interactions import UnknownNodeError, tag_image

        self._check_text(sentence, "sentence")
        engine = self.engine
        vocabulary = list(engine.bundle.attribute_names)
        known = set(vocabulary)
        with self._extractor_lock:
            found = self.extractor(vocabulary).extract(sentence, vocabulary=vocabulary)
            words = self.known_words(engine)
        accepted, refused = [], []
        for item in found:
            why = None if item.phrase in known else implausible_attribute(
                item.phrase, item.score, words, self.limits.new_attribute_min_score)
            if why:
                refused.append({"phrase": item.phrase, "reason": why})
            else:
                accepted.append(item)
        if not accepted:
            detail = "; ".join(f"{r['phrase']!r}: {r['reason']}" for r in refused)
            raise InvalidRequestError(f"no attribute phrase found in {sentence!r}"
                                      + (f" ({detail})" if detail else "") + "; nothing written")
        written = []
        try:
            with database_calls():
                for item in accepted:
                    r = tag_image(self.driver, image, item.phrase, who=who, phrase=sentence)
                    written.append({"attribute": item.phrase, "source": item.source,
                                    "new_attribute": r.created_attribute, "new_edge": r.created_edge})
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        synced = self._sync(written_at=time.monotonic(), done="the tag is stored")
        self._catch_up()
        return {"image": image, "tags": written, "refused": refused, **synced}

    def explain(self, query_id: str, result_id: str) -> dict[str, Any]:
        return explain_result(self.driver, query_id, result_id)

    def sync(self, full: bool = False, start_phase: StartPhase | None = None) -> dict[str, Any]:
        """Embeddings and index in line with the database (curator edits, other processes' writes, new,
        changed and retired products); ``start_phase`` shows the featurising of new images."""
        synced = self._sync(full, start_phase=start_phase)
        self._catch_up()
        return synced

    def _catch_up(self) -> None:
        """The pass a local sync deferred, begun now that the interaction is answered; a command (not a
        server) waits for it, so its files are complete when it exits."""
        with self._sync_lock:  # the saver's job list is the syncs' too
            if self.live.catch_up() and not self.background_save:
                self.live.flush()

    def health(self) -> dict[str, Any]:
        """Whether Neo4j answers and the index is whole; ``status`` is "ok" only when both are."""
        try:
            with database_calls():
                self.driver.execute_query("RETURN 1 AS ok")
            neo4j: dict[str, Any] = {"ok": True}
        except DatabaseUnavailableError as exc:
            neo4j = {"ok": False, "error": str(exc)}
        engine = self.live.engine
        manifest = self.live.published.manifest
        if engine is None:
            index: dict[str, Any] = {"ok": False, "error": "being rebuilt: run `tailor sync --full`"}
        elif len(engine.index) != len(engine.bundle.image_ids) or engine.index.version != engine.bundle.version:
            index = {"ok": False, "error": f"the index holds {len(engine.index)} images of version "
                                           f"{engine.index.version!r}, the bundle {len(engine.bundle.image_ids)} "
                                           f"of {engine.bundle.version!r}: run `tailor sync --full`"}
        else:
            index = {"ok": True, "images": len(engine.index), "generation": manifest.generation}
        ok = neo4j["ok"] and index["ok"]
        return {"status": "ok" if ok else "unavailable", "model": manifest.version,
                "images": len(engine.bundle.image_ids) if engine is not None else 0, "neo4j": neo4j, "index": index}

    # --- reasons -----------------------------------------------------------------------------------
    @staticmethod
    def _fallback_reasons(engine, result_id: str, roles, text: str = "", fallback: str = "",
                          note: str = "") -> list[str]:
        """Reasons when the graph has no facts to give (e.g. an attribute-less product), or when nothing in
        the text was understood as a change and the answer is ranked by looks (``fallback="looks"``)."""
        b = engine.bundle
        out = []
        if fallback == "looks":
            heard = [c.text for c in roles.comparatives] + list(roles.mentioned)
            note = f" (heard: {', '.join(heard)}, but no attribute to change)" if heard else ""
            said = f" in {text!r}" if text else ""
            out.append(f"no change understood{said}{note}: ranked by looks alone, like an image search")
        if roles.added:
            out.append(f"asked for: {', '.join(roles.added)}")
        if note:
            out.append(note)
        return [*out, f"title: {b.image_titles[b.image_row[result_id]]}"]

    # --- helpers -----------------------------------------------------------------------------------
    def _not_indexed(self, image: str) -> str:
        """Why an image is not searchable: not in the graph, without features, or not yet synced."""
        from engine.catalog import not_indexed_message
        from graphdb.catalog import existing_images

        with database_calls():
            in_graph = bool(existing_images(self.driver, [image]))
        return not_indexed_message(self.live.published, image, in_graph)

    def _stored(self, query_id: str):
        from graphdb.interactions import UnknownNodeError, stored_query

        try:
            with database_calls():
                return stored_query(self.driver, query_id)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc

    def _ranked(self, engine, stored, k: int) -> tuple[list[tuple[str, float | None, bool]], Any]:
        if stored.candidate not in engine.bundle.image_row:
            raise UnknownIdError(f"query {stored.id!r}: " + self._not_indexed(stored.candidate))
        liked = [i for i in stored.liked_in_order if i in engine.bundle.image_row and i != stored.candidate]
        result = engine.search(stored.candidate, stored.text, k + len(liked), roles=stored.roles,
                               liked=stored.liked)
        return never_demote(result.hits, liked, k), result

    def _ranks_now(self, stored, images: list[str]) -> dict[str, int]:
        """Where ``images`` rank in the query's answer now (those within the first ``max_k``)."""
        ranked, _ = self._ranked(self.engine, stored, self.limits.max_k)
        position = {i: n for n, (i, _, _) in enumerate(ranked, 1)}
        return {i: position[i] for i in images if i in position}

    def _sync(self, full: bool = False, written_at: float | None = None,
              done: str = "nothing was done", start_phase: StartPhase | None = None) -> dict[str, Any]:
        """One sync at a time. ``written_at``: when the caller's write committed (time.monotonic()); if a
        sync began reading after that, its answer already includes the write and is returned as it is."""
        with self._sync_lock:
            if (written_at is not None and not full and self._last_sync is not None
                    and self._sync_started > written_at):
                return {**self._last_sync, "shared": True}
            started = time.monotonic()
            with database_calls(done=done):
                report = self.live.sync(self.driver, full=full, start_phase=start_phase)
            self._sync_started = started  # only a sync that completed can answer for writes before it
            if not self.background_save:
                self.live.flush()
            self._last_sync = {"changed_images": report.changed_images, "new_attributes": report.new_attributes,
                               "catalog": report.catalog.to_json(), "refresh": report.mode, "repaired": report.repaired,
                               "refresh_seconds": round(report.total, 3),
                               "save_seconds": round(report.save_seconds, 3),
                               "seconds": {k: round(v, 4) for k, v in report.seconds.items()}, "shared": False}
            return self._last_sync

    def _results(self, engine, result, graph_facts: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        """Hits as dicts: ``reasons`` in words (the second stage's with their weight; else the graph's facts
        ``graph_facts`` when given; else what was asked), ``facts`` the second stage's as {fact, weight}."""
        b = engine.bundle
        rows = []
        for n, (hit, score) in enumerate(result.hits):
            if result.reasons is not None:
                reasons = result.reasons[n]
                texts, facts = [str(r) for r in reasons], [r.as_dict() for r in reasons]
            else:
                texts = (graph_facts or {}).get(hit) or self._fallback_reasons(
                    engine, hit, result.roles, result.text, result.fallback,
                    note="" if result.fallback else "ranked by embedding similarity alone (no second stage)")
                facts = []
            rows.append({"id": hit, "score": score, "title": b.image_titles[b.image_row[hit]],
                         "reasons": texts, "facts": facts})
        return rows

    @property
    def extractor_trained(self) -> bool:
        return self._extractor is not None or self.ws.extractor.exists()

    def extractor(self, vocabulary: list[str]):
        """The attribute tagger: trained once on the graph's vocabulary, kept under the workspace."""
        from gnn.attributes.extraction import AttributeExtractor

        if self._extractor is None:
            folder = self.ws.extractor
            if folder.exists():  # written atomically by train(): present means complete
                self._extractor = AttributeExtractor.load(folder)
            else:
                self._extractor = AttributeExtractor.train(vocabulary, folder)
        return self._extractor

    def known_words(self, engine) -> frozenset[str]:
        """Words a new attribute may be made of (built once: English and fashion words, the graph's)."""
        from gnn.attributes.extraction import attribute_words

        if self._known_words is None:
            self._known_words = attribute_words([*engine.bundle.attribute_names, *engine.bundle.image_titles])
        return self._known_words


def _roles(roles) -> dict[str, Any]:
    return {"added": list(roles.added), "removed": list(roles.removed), "mentioned": list(roles.mentioned),
            "negated": list(roles.negated), "comparatives": [c.text for c in roles.comparatives],
            "confidence": roles.confidence}
