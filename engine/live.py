"""The published engine kept in line with the database after interactions, without retraining.

The base graph that image and attribute embeddings depend on is kept with the engine (in its generation)
with the server time it was read at; a sync re-reads only the images and captions whose ``updated_at``
moved since then (:func:`graphdb.interactions.changed_nodes`) and, with ``retrieval.refresh = "local"``
(the default), reads the base edges of just those (:func:`graphdb.export.read_base_delta`) and recomputes
only the embeddings within the model's reach of them (:mod:`gnn.retrieval.local`), so an interaction costs
a few small indexed reads, a few small matrix products and the changed FAISS rows at any catalog size. With
``"full"`` the base graph is kept as an export, brought up to date (:func:`graphdb.export.update_base`) and
run through the R-GCN whole. The first sync, ``sync --full``, catalog changes (products added or retired,
a new image path, an image without features whose file may be fixed) and changes a local refresh cannot
follow (an attribute gone, a weighted edge) take the full path: the base graph read and the R-GCN run over
it, new images featurised (:mod:`engine.catalog`). The ranking changes in memory first; the new
generation is written in the background.

Copy on write, mostly: the full path computes a new searcher (bundle and index) off to the side and swaps
it in with one assignment (:func:`gnn.retrieval.refresh.refresh`), so searches never wait for it and never
see a half-updated index. The local path changes a few rows in place, with searches held off for those
milliseconds (:func:`gnn.retrieval.refresh.refresh_local`). Syncs themselves run one at a time (the caller
serialises them).

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
        self._pending: list[Future] = []  # the saver's jobs not yet waited for, in the order they run
        self._catching_up: Future | None = None
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

    @property
    def retrieval(self):
        """How the engine searches and refreshes (as published; no retraining to change it)."""
        from gnn.config import ExperimentConfig

        return ExperimentConfig.from_dict(self.published.manifest.config).retrieval

    def close(self) -> None:
        """Wait for the last write and stop the writer thread."""
        self.flush()
        self._saver.shutdown()

    def warm_up(self, driver: Driver) -> bool:
        """Run the reads of a local sync once, with each shape of parameters a like or a tag gives them:
        Neo4j plans a statement on its first run with each shape, and planning the delta read takes
        about a second (measured at 100k products), which the first like and the first tag would wait
        for. Read-only: the ids read are one indexed image and a caption id that names nothing. False
        when syncs are not local (then there is nothing of the kind to plan)."""
        from graphdb.export import read_base_delta
        from graphdb.interactions import changed_nodes

        base = self.published.base
        if base is None or base.local is None or not self.engine.bundle.image_ids:
            return False
        changed_nodes(driver, base.marker)
        image, caption = self.engine.bundle.image_ids[:1], ["tailor-warm-up: no such caption"]
        for captions, known in ((caption, caption), ([], caption), ([], [])):  # a like; a tag; a first tag
            read_base_delta(driver, image, captions, known)
        return True

    def flush(self) -> float:
        """Wait for the last sync's generation to be written and its deferred pass (:meth:`catch_up`,
        started here if nobody did); returns how long that took."""
        self.catch_up()  # a deferred pass nobody started (a caller of sync alone) runs now
        if not self._pending:
            return 0.0
        jobs, self._pending = self._pending, []
        seconds = sum(job.result() for job in jobs)  # re-raises a failed write
        if self._last is not None:
            self._last.save_seconds = seconds
        return seconds

    def sync(self, driver: Driver, full: bool = False, start_phase: StartPhase | None = None) -> SyncReport:
        """Bring embeddings and the index in line with the database, then save a new generation.

        Incremental unless ``full`` or there is no base graph yet; new, changed and retired products are
        incremental too (:mod:`engine.catalog`: their image features are computed, or dropped, here).
        Hand-written Cypher that does not set ``updated_at`` is seen only by a full sync.
        """
        from engine.catalog import catalog_changes, content_key, indexable, update_image_features
        from gnn.retrieval.refresh import refresh_local
        from graphdb.export import export_base, read_base_delta, server_time, update_base
        from graphdb.interactions import changed_nodes

        self.flush()  # the previous sync's write must finish before the index changes again
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        mode, export, base = "full", None, self.published.base
        recheck: list[str] | None = None  # images whose file may have changed (None: every image)
        if not full and base is not None and not self.repairing:
            changed = changed_nodes(driver, base.marker)
            until = changed["until"]
            # local mode keeps no export: whether the catalog moved is read once, for both checks below
            catalog_moved = base.export is None and self._catalog_changed(driver, changed)
            if (not any(changed[label] for label in ("Image", "Caption", "Attribute"))
                    and changed["image_count"] == self._known_images(base)
                    and (base.export is None or not self._features_found(base.export))
                    and not catalog_moved):
                base.marker = self._earlier(until)
                seconds["read changes"] = time.perf_counter() - tick
                return SyncReport("unchanged", seconds=seconds)
            if base.local is not None and not catalog_moved:
                # only what is within the model's reach of the change
                delta = read_base_delta(driver, changed["Image"], changed["Caption"], base.local.caption_nodes)
                delta.image_count -= len(self.published.manifest.unindexed)  # the images the engine indexes
                seconds["read changes"] = time.perf_counter() - tick
                local = refresh_local(self.engine, base.local, delta, self.retrieval.defer_hub_readers)
                if local is not None:
                    seconds["embeddings + index"] = local.seconds
                    base.marker = self._earlier(until)
                    self.published.changed_images.update(local.changed_images)
                    self._last = SyncReport("incremental", len(local.changed_images), local.new_attributes, seconds)
                    self._pending.append(self._saver.submit(self._save))
                    return self._last
            elif base.export is not None:
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
        if report.local is not None:  # later syncs start from it, not from the export
            self.published.base = BaseGraph(None, self._earlier(until), report.local)
        else:
            self.published.base = BaseGraph(export, self._earlier(until))
        self.published.rewrite = True
        self.published.manifest.unindexed = dict(features.missing)
        paths = {r.id: r.image_path for r in export.images if r.id in features.missing}
        self.published.manifest.unindexed_keys = {i: content_key(paths.get(i, "")) or "" for i in features.missing}
        catalog = catalog_changes(before, report, features)
        self._last = SyncReport(mode, len(report.changed_images), report.new_attributes, seconds,
                                repaired=repaired, catalog=catalog)
        # Neo4j's copies of the embeddings follow catalog changes (a daily job: every moved image); after
        # interactions alone they stay those of the last catalog change or publish, as before.
        written = report.changed_images if catalog.changed or repaired else []
        self._pending.append(self._saver.submit(self._save, driver, written, sorted(features.missing)))
        return self._last

    def _known_images(self, base: BaseGraph) -> int:
        """Images of the graph the base knows: its export's, or (local) the indexed and the unindexed."""
        if base.export is not None:
            return len(base.export.images)
        return len(self.engine.bundle.image_ids) + len(self.published.manifest.unindexed)

    def _catalog_changed(self, driver: Driver, changed: dict) -> bool:
        """Whether a local-mode sync must take the catalog's (full) path: products added or retired, a
        changed image's path or bytes moved, or the file of an image without features changed (a photo put
        right; a file that stays broken is not retried at every sync)."""
        from engine.catalog import content_key
        from graphdb.export import image_paths

        if changed["image_count"] != self._known_images(self.published.base):
            return True
        bundle, features = self.engine.bundle, self.published.image_features
        unindexed = list(self.published.manifest.unindexed)
        indexed = [i for i in changed["Image"] if i in bundle.image_row]
        paths = image_paths(driver, indexed + unindexed)
        for i in indexed:
            if paths.get(i, "") != bundle.image_paths[bundle.image_row[i]]:
                return True  # a new path
            stored = features.key(i)
            if stored and content_key(paths.get(i, "")) != stored:
                return True  # new bytes under the same path (or the file is gone): featurise it again
        known = self.published.manifest.unindexed_keys
        return any((content_key(paths[i]) or "") != known.get(i, "") for i in unindexed if i in paths)

    def _features_found(self, export) -> bool:
        """Whether images that had no features have some now (a file put right): then a sync is due."""
        from engine.catalog import lacking_features, update_image_features

        if not lacking_features(self.published, export):
            return False
        return bool(update_image_features(self.published, export, self.ws, recheck=[]).added)

    def catch_up(self) -> bool:
        """Start, in the background, the pass the last local sync deferred: the readers of the hubs it
        passed on (``retrieval.defer_hub_readers``), then a new generation. Called once the interaction is
        answered; the next sync waits for it, and searches wait while it changes rows. False when nothing
        was deferred."""
        base = self.published.base
        if self._catching_up is not None and not self._catching_up.done():
            return True  # started, not finished: it takes what was deferred when it runs
        if base is None or base.local is None or not base.local.deferred:
            return False
        self._catching_up = self._saver.submit(self._catch_up_and_save)
        self._pending.append(self._catching_up)
        return True

    def _catch_up_and_save(self) -> float:
        from gnn.retrieval.refresh import catch_up_local

        tick = time.perf_counter()
        self.published.changed_images.update(catch_up_local(self.engine, self.published.base.local))
        return time.perf_counter() - tick + self._save()

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
                             second_stage=self.published.second_stage_for_rebuild, spec=self.retrieval)
        else:  # a full sync rebuilds the whole index too: it repairs rows whatever drifted
            retrieval = self.retrieval
            report = refresh(self.engine, export, features, self.config, rebuild_index=full,
                             local=retrieval if retrieval.refresh == "local" else None)
        seconds["embeddings + index"] = report.seconds
        report.engine.looks = self.published.image_features  # a new engine: new products' looks included
        self.published.searcher = report.engine  # the swap: searches from now on see the new state
        return report

    @staticmethod
    def _earlier(moment: datetime) -> datetime:
        return moment - SAFETY_MARGIN
