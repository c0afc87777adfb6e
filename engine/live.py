"""The published engine kept in line with the database after interactions, without retraining.

The base graph that image and attribute embeddings depend on is kept with the engine (``base.pkl`` in its
generation) with the server time it was read at; a sync re-reads only the images and captions whose
``updated_at`` moved since then (:func:`graphdb.interactions.changed_nodes`,
:func:`graphdb.export.update_base`), so an interaction costs a few small indexed reads, one R-GCN pass over
the base graph and the changed FAISS rows. The ranking changes in memory first; the new generation is
written in the background.

Copy on write: a sync computes a new searcher (bundle and index) off to the side and swaps it in with one
assignment (:func:`gnn.retrieval.refresh.refresh`), so searches never wait for a sync and never see a
half-updated index. Syncs themselves run one at a time (the caller serialises them).

Repair: with ``repair=True`` an engine whose bundle, index or base graph fail their checksums is loaded
from its model and image features alone, and the (full) sync computes the rest again from the database.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from neo4j import Driver

from engine.catalog import CatalogChanges
from engine.errors import ArtifactError
from engine.pipeline import load_published
from engine.published import BaseGraph, EngineStore, PublishedEngine
from engine.workspace import Workspace
from readers.progress import StartPhase

# Timestamps are taken when a statement runs, not when it commits: re-read a little before the last
# read so that a write in flight then is not missed (re-reading a change is harmless).
SAFETY_MARGIN = timedelta(seconds=5)


@dataclass
class SyncReport:
    """What a sync did and where its time went (seconds)."""

    mode: str  # "incremental" | "full" | "unchanged"
    changed_images: int = 0
    new_attributes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # up to the changed ranking
    save_seconds: float = 0.0  # writing the new generation afterwards (see LiveEngine.flush)
    repaired: bool = False  # bundle, index and base graph were rebuilt from the model and the database
    catalog: CatalogChanges = field(default_factory=lambda: CatalogChanges())

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


class LiveEngine:
    """The published engine plus what a refresh needs: the image features it was built from, text
    features (cache first, encoder on a miss) and the base graph.

    A sync changes the in-memory engine (the next search sees it) and then writes a new generation in a
    background thread; the next sync, :meth:`flush` and :meth:`close` (called by every command before it
    exits) wait for that write.
    """

    def __init__(self, ws: Workspace, repair: bool = False):
        self.ws = ws
        self.store = EngineStore(ws.engine)
        try:
            self.published: PublishedEngine = load_published(ws)
        except ArtifactError:
            if not repair:
                raise
            self.published = load_published(ws, sources_only=True)  # the next (full) sync rebuilds the rest
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-save")
        self._pending: Future | None = None
        self._last: SyncReport | None = None

    @property
    def engine(self):
        """The searcher (model, bundle, FAISS index, text features): take it once per request and use that
        one throughout; a sync replaces it, it never changes it."""
        return self.published.searcher

    @property
    def repairing(self) -> bool:
        """Loaded for repair: no searcher until a full sync has rebuilt one."""
        return self.published.searcher is None

    @property
    def config(self):
        """The graph config the model was trained with (which edges carry messages)."""
        return self.published.config.graph

    def close(self) -> None:
        """Wait for the last write and stop the writer thread."""
        self.flush()
        self._saver.shutdown()

    def flush(self) -> float:
        """Wait for the last sync's generation to be written; returns how long that write took."""
        if self._pending is None:
            return 0.0
        seconds = self._pending.result()  # re-raises a failed write
        self._pending = None
        if self._last is not None:
            self._last.save_seconds = seconds
        return seconds

    def sync(self, driver: Driver, full: bool = False, start_phase: StartPhase | None = None) -> SyncReport:
        """Bring embeddings and the index in line with the database, then save a new generation.

        Incremental unless ``full`` or there is no base graph yet; new, changed and retired products are
        incremental too (:mod:`engine.catalog`: their image features are computed, or dropped, here).
        Hand-written Cypher that does not set ``updated_at`` is seen only by a full sync.
        """
        from engine.catalog import catalog_changes, indexable, update_image_features
        from graphdb.export import export_base, server_time, update_base
        from graphdb.interactions import changed_nodes

        self.flush()  # the previous sync's write must finish before the index changes again
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        mode, export, base = "full", None, self.published.base
        recheck: list[str] | None = None  # images whose file may have changed (None: every image)
        if not full and base is not None and not self.repairing:
            changed = changed_nodes(driver, base.marker)
            until = changed["until"]
            if (not any(changed[label] for label in ("Image", "Caption", "Attribute"))
                    and changed["image_count"] == len(base.export.images)
                    and not self._features_found(base.export)):
                base.marker = self._earlier(until)
                seconds["read changes"] = time.perf_counter() - tick
                return SyncReport("unchanged", seconds=seconds)
            export = update_base(driver, base.export, changed["Image"], changed["Caption"])
            recheck = changed["Image"]
            mode = "incremental"
        if export is None:
            mode = "full"
            until = server_time(driver)
            export = export_base(driver)
        seconds["read changes"] = time.perf_counter() - tick
        tick = time.perf_counter()
        features = update_image_features(self.published, export, self.ws, recheck, start_phase)
        seconds["image features"] = time.perf_counter() - tick
        repaired = self.repairing
        before = set() if repaired else set(self.engine.bundle.image_ids)
        report = self._refresh(indexable(export, None, set(features.missing))[0], seconds, mode == "full")
        self.published.base = BaseGraph(export, self._earlier(until))
        self.published.manifest.unindexed = dict(features.missing)
        catalog = catalog_changes(before, report, features)
        self._last = SyncReport(mode, len(report.changed_images), report.new_attributes, seconds,
                                repaired=repaired, catalog=catalog)
        # Neo4j's copies of the embeddings follow catalog changes (a daily job: every moved image); after
        # interactions alone they stay those of the last catalog change or publish, as before.
        written = report.changed_images if catalog.changed or repaired else []
        self._pending = self._saver.submit(self._save, driver, written, sorted(features.missing))
        return self._last

    def _features_found(self, export) -> bool:
        """Whether images that had no features have some now (a file put right): then a sync is due."""
        from engine.catalog import lacking_features, update_image_features

        if not lacking_features(self.published, export):
            return False
        return bool(update_image_features(self.published, export, self.ws, recheck=[]).added)

    def _save(self, driver: Driver | None = None, embedded: Sequence[str] = (), left_out: Sequence[str] = ()
              ) -> float:
        """The new generation, then (with ``driver``) the changed embeddings written back to Neo4j."""
        from engine.catalog import write_back

        tick = time.perf_counter()
        self.published.save(self.store)
        if driver is not None:
            write_back(driver, self.engine.bundle, embedded, left_out, self.published.version)
        return time.perf_counter() - tick

    def _refresh(self, export, seconds: dict[str, float], full: bool):
        from gnn.retrieval.refresh import base_features, rebuild, refresh

        tick = time.perf_counter()
        texts = self.published.text_features if self.repairing else self.engine.text_encoder
        features = base_features(export, self.published.image_features, texts)
        seconds["features"] = time.perf_counter() - tick
        if self.repairing:
            report = rebuild(self.published.model_for_rebuild, self.published.version, export, features,
                             self.config, texts, looks=self.published.image_features,
                             second_stage=self.published.second_stage_for_rebuild)
        else:  # a full sync rebuilds the whole index too: it repairs rows whatever drifted
            report = refresh(self.engine, export, features, self.config, rebuild_index=full)
        seconds["embeddings + index"] = report.seconds
        report.engine.looks = self.published.image_features  # a new engine: new products' looks included
        self.published.searcher = report.engine  # the swap: searches from now on see the new state
        return report

    @staticmethod
    def _earlier(moment: datetime) -> datetime:
        return moment - SAFETY_MARGIN
