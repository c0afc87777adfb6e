"""The published engine kept in line with the database after interactions, without retraining.

The base graph that image and attribute embeddings depend on is kept with the engine (in its generation)
with the server time it was read at; a sync re-reads only the images and captions whose ``updated_at``
moved since then (:func:`graphdb.interactions.changed_nodes`, :func:`graphdb.export.read_base_delta`) and,
with ``retrieval.refresh = "local"`` (the default), recomputes only the embeddings within the model's reach
of them (:mod:`gnn.retrieval.local`), so an interaction costs a few small indexed reads, a few small matrix
products and the changed FAISS rows at any catalog size. The first sync, ``sync --full`` and changes a
local refresh cannot follow (a new catalog load, an attribute gone) read the base graph whole and run the
R-GCN over it. The ranking changes in memory first; the new generation is written in the background.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from neo4j import Driver

from engine.pipeline import load_published
from engine.published import BaseGraph, EngineStore, PublishedEngine
from engine.workspace import Workspace

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

    def __init__(self, ws: Workspace):
        self.ws = ws
        self.store = EngineStore(ws.engine)
        self.published: PublishedEngine = load_published(ws)
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-save")
        self._pending: Future | None = None
        self._last: SyncReport | None = None

    @property
    def engine(self):
        """The searcher (model, bundle, FAISS index, text features)."""
        return self.published.searcher

    @property
    def config(self):
        """The graph config the model was trained with (which edges carry messages)."""
        return self.published.config.graph

    @property
    def retrieval(self):
        """How the engine searches and refreshes (as published; no retraining to change it)."""
        from gnn.config import ExperimentConfig

        return ExperimentConfig.from_dict(self.published.manifest.config).retrieval

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

    def sync(self, driver: Driver, full: bool = False) -> SyncReport:
        """Bring embeddings and the index in line with the database, then save a new generation.

        Incremental unless ``full`` or there is no base graph yet (or the catalog's images changed).
        Hand-written Cypher that does not set ``updated_at`` is seen only by a full sync.
        """
        from gnn.retrieval.refresh import refresh_local
        from graphdb.export import export_base, read_base_delta, server_time, update_base
        from graphdb.interactions import changed_nodes

        self.flush()  # the previous sync's write must finish before the index changes again
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        mode, export, base = "full", None, self.published.base
        if not full and base is not None:
            changed = changed_nodes(driver, base.marker)
            until = changed["until"]
            if not any(changed[label] for label in ("Image", "Caption", "Attribute")):
                base.marker = self._earlier(until)
                seconds["read changes"] = time.perf_counter() - tick
                return SyncReport("unchanged", seconds=seconds)
            if base.local is not None:  # only what is within the model's reach of the change
                delta = read_base_delta(driver, changed["Image"], changed["Caption"], base.local.caption_nodes)
                seconds["read changes"] = time.perf_counter() - tick
                local = refresh_local(self.engine, base.local, delta)
                if local is not None:
                    seconds["embeddings + index"] = local.seconds
                    base.marker = self._earlier(until)
                    self.published.changed_images.update(local.changed_images)
                    return self._saved(SyncReport("incremental", len(local.changed_images), local.new_attributes,
                                                  seconds))
            elif base.export is not None:
                export = update_base(driver, base.export, changed["Image"], changed["Caption"])
                mode = "incremental"
        if export is None:
            mode = "full"
            until = server_time(driver)
            export = export_base(driver)
        seconds["read changes"] = time.perf_counter() - tick
        report = self._refresh(export, seconds)
        if report.local is not None:  # later syncs start from it, not from the export
            self.published.base = BaseGraph(None, self._earlier(until), report.local)
        else:
            self.published.base = BaseGraph(export, self._earlier(until))
        self.published.rewrite = True
        return self._saved(SyncReport(mode, len(report.changed_images), report.new_attributes, seconds))

    def _saved(self, report: SyncReport) -> SyncReport:
        """``report``, with the new generation's write started in the background."""
        self._last = report
        self._pending = self._saver.submit(self._save)
        return report

    def _save(self) -> float:
        tick = time.perf_counter()
        self.published.save(self.store)
        return time.perf_counter() - tick

    def _refresh(self, export, seconds: dict[str, float]):
        from gnn.retrieval.refresh import base_features, refresh

        tick = time.perf_counter()
        features = base_features(export, self.published.image_features, self.engine.text_encoder)
        seconds["features"] = time.perf_counter() - tick
        retrieval = self.retrieval
        report = refresh(self.engine, export, features, self.config,
                         local=retrieval if retrieval.refresh == "local" else None)
        seconds["embeddings + index"] = report.seconds
        return report

    @staticmethod
    def _earlier(moment: datetime) -> datetime:
        return moment - SAFETY_MARGIN
