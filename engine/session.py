"""What `tailor query | tag | like | explain | sync` and `tailor serve` do, once: a session holds the live
engine and a driver, and answers each interaction with a JSON-ready dict.

The commands print these dicts (or render them); the server returns them. One lock orders the engine's
use: searches and syncs never interleave (Neo4j writes need no lock: each is one transaction).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from neo4j import Driver

from engine.errors import InvalidRequestError, UnknownIdError
from engine.live import LiveEngine
from engine.workspace import Workspace
from readers.progress import StartPhase


def explain_result(driver: Driver, query_id: str, result_id: str) -> dict[str, Any]:
    """Why a result answers a query: facts in words and the Cypher (with a Browser ``:params`` line)
    that draws them. Needs no model: the facts are in the graph."""
    from graphdb.explain import explain

    try:
        explanation = explain(driver, query_id, result_id)
    except LookupError as exc:
        raise UnknownIdError(str(exc)) from exc
    return {"query_id": query_id, "result": result_id, "facts": explanation.facts,
            "cypher": explanation.cypher, "params": explanation.params, "browser": explanation.browser_text()}


class InteractiveSession:
    """The interactions on the published model, each returning a JSON-ready dict (see module doc)."""

    def __init__(self, ws: Workspace, driver: Driver, background_save: bool = False):
        """``background_save``: return as soon as the ranking changed and write the index files after
        (a server); otherwise wait for them, so a command's files are complete when it exits."""
        self.ws = ws
        self.driver = driver
        self.live = LiveEngine(ws)
        self.background_save = background_save
        self.lock = threading.RLock()
        self._extractor = None
        self._extractor_lock = threading.Lock()  # flair taggers are not meant for concurrent calls

    @property
    def engine(self):
        return self.live.engine

    def close(self) -> None:
        with self.lock:
            self.live.close()

    # --- interactions ------------------------------------------------------------------------------
    def query(self, image: str, text: str, k: int = 10, who: str = "cli") -> dict[str, Any]:
        """Store the query (a Caption node), answer it, give each result its reasons."""
        from graphdb.explain import explain
        from graphdb.interactions import UnknownNodeError, store_query

        start = time.perf_counter()
        with self.lock:
            self._require_indexed(image)
            roles = self.engine.parse(text)
            try:
                query_id = store_query(self.driver, image, text, roles, who=who)
            except UnknownNodeError as exc:
                raise UnknownIdError(str(exc)) from exc
            result = self.engine.search(image, text, k, roles=roles)
            b = self.engine.bundle
            results = []
            for hit, score in result.hits:
                reasons = explain(self.driver, query_id, hit).facts or self._fallback_reasons(hit, roles)
                results.append({"id": hit, "score": score, "title": b.image_titles[b.image_row[hit]],
                                "reasons": reasons})
        return {"query_id": query_id, "candidate": image, "text": text,
                "roles": {"added": list(roles.added), "removed": list(roles.removed),
                          "mentioned": list(roles.mentioned)},
                "results": results, "seconds": round(time.perf_counter() - start, 4)}

    def like(self, query_id: str, images: list[str], who: str = "cli", k: int = 10) -> dict[str, Any]:
        """I like that: liked images linked to each other, the query's caption and its candidate; then
        the query answered again, hearing its liked images (``results``)."""
        from graphdb.interactions import UnknownNodeError, like

        try:
            result = like(self.driver, query_id, images, who=who)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from exc
        synced = self._sync()
        return {"query_id": query_id, "liked": list(images), "created": result.counts, **synced,
                "results": self.answer(query_id, k)}

    def answer(self, query_id: str, k: int = 10) -> list[dict[str, Any]]:
        """A stored query answered again with what the graph knows now, its likes included."""
        from graphdb.interactions import UnknownNodeError, stored_query

        try:
            stored = stored_query(self.driver, query_id)
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        with self.lock:
            if stored.candidate not in self.engine.bundle.image_row:
                raise UnknownIdError(f"query {query_id!r}: " + self._not_indexed(stored.candidate))
            hits = self.engine.search(stored.candidate, stored.text, k, liked=stored.liked).hits
            b = self.engine.bundle
            return [{"id": i, "score": score, "title": b.image_titles[b.image_row[i]]} for i, score in hits]

    def tag(self, sentence: str, image: str, who: str = "cli") -> dict[str, Any]:
        """More metadata: the attributes a sentence names, linked to the image (USER_TAGGED)."""
        from graphdb.interactions import UnknownNodeError, tag_image

        with self.lock:
            vocabulary = list(self.engine.bundle.attribute_names)
        with self._extractor_lock:
            found = self.extractor(vocabulary).extract(sentence, vocabulary=vocabulary)
        if not found:
            raise InvalidRequestError(f"no attribute found in {sentence!r}; nothing written")
        written = []
        try:
            for item in found:
                r = tag_image(self.driver, image, item.phrase, who=who, phrase=sentence)
                written.append({"attribute": item.phrase, "source": item.source,
                                "new_attribute": r.created_attribute, "new_edge": r.created_edge})
        except UnknownNodeError as exc:
            raise UnknownIdError(str(exc)) from exc
        return {"image": image, "tags": written, **self._sync()}

    def explain(self, query_id: str, result_id: str) -> dict[str, Any]:
        return explain_result(self.driver, query_id, result_id)

    def sync(self, full: bool = False, start_phase: StartPhase | None = None) -> dict[str, Any]:
        """Embeddings and index in line with the database (curator edits, other processes' writes, new,
        changed and retired products); ``start_phase`` shows the featurising of new images."""
        return self._sync(full, start_phase)

    # --- helpers -----------------------------------------------------------------------------------
    def _not_indexed(self, image: str) -> str:
        """Why an image is not searchable: not in the graph, without features, or not yet synced."""
        from engine.catalog import not_indexed_message
        from graphdb.catalog import existing_images

        return not_indexed_message(self.live.published, image, bool(existing_images(self.driver, [image])))

    def _require_indexed(self, image: str) -> None:
        if image not in self.engine.bundle.image_row:
            raise UnknownIdError(self._not_indexed(image) + "; nothing written")

    def _sync(self, full: bool = False, start_phase: StartPhase | None = None) -> dict[str, Any]:
        with self.lock:
            report = self.live.sync(self.driver, full=full, start_phase=start_phase)
            if not self.background_save:
                self.live.flush()
            return {"changed_images": report.changed_images, "new_attributes": report.new_attributes,
                    "catalog": report.catalog.to_json(),
                    "refresh": report.mode, "refresh_seconds": round(report.total, 3),
                    "save_seconds": round(report.save_seconds, 3),
                    "seconds": {k: round(v, 4) for k, v in report.seconds.items()}}

    def _fallback_reasons(self, result_id: str, roles) -> list[str]:
        """Reasons when the graph has no facts to give (e.g. an attribute-less product)."""
        b = self.engine.bundle
        asked = [f"asked for: {', '.join(roles.added)}"] if roles.added else []
        return [*asked, f"title: {b.image_titles[b.image_row[result_id]]}"]

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
