"""The published engine kept in line with the database after interactions, without retraining.

Glue between graphdb/ (what changed) and gnn/ (recompute embeddings, update FAISS in place). The base
graph that image and attribute embeddings depend on is cached in ``$TAILOR_HOME/index/live.pkl`` with
the server time it was read at; a sync re-reads only the images and captions whose ``updated_at``
moved since then (:func:`graphdb.interactions.changed_nodes`, :func:`graphdb.export.update_base`), so an
interaction costs a few small indexed reads, one R-GCN pass over the base graph and the changed FAISS rows.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from operator import attrgetter

import numpy as np
from neo4j import Driver

from cli.workspace import Workspace
from graphdb.export import CaptionRow, GraphExport, ImageRow, TypedEdge

# Timestamps are taken when a statement runs, not when it commits: re-read a little before the last
# read so that a write in flight then is not missed (re-reading a change is harmless).
SAFETY_MARGIN = timedelta(seconds=5)
LIVE_FORMAT = "tailor.live/2"


@dataclass
class SyncReport:
    """What a sync did and where its time went (seconds)."""

    mode: str  # "incremental" | "full" | "unchanged"
    changed_images: int = 0
    new_attributes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # up to the changed ranking
    save_seconds: float = 0.0  # writing bundle, index and base graph afterwards (see LiveEngine.flush)

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def _pack(export) -> dict:
    """A base export as tuples: pickles several times faster than the dataclass records."""
    rows = {kind: attrgetter(*(f.name for f in fields(kind))) for kind in (ImageRow, CaptionRow, TypedEdge)}
    return {"images": [rows[ImageRow](r) for r in export.images],
            "captions": [rows[CaptionRow](c) for c in export.captions],
            "attributes": export.attributes, "edges": [rows[TypedEdge](e) for e in export.edges]}


def _unpack(state: dict) -> GraphExport:
    return GraphExport(images=[ImageRow(*r) for r in state["images"]],
                       captions=[CaptionRow(*c) for c in state["captions"]],
                       attributes=state["attributes"], edges=[TypedEdge(*e) for e in state["edges"]])


class LiveEngine:
    """The published model, bundle and index, plus what a refresh needs: image features (saved at
    publish), text features (cache first, encoder on a miss) and the cached base graph.

    A sync changes the in-memory engine (the next search sees it) and then writes the files in a
    background thread, so the ranking changes without waiting for the disk; the next sync, and
    :meth:`flush` and :meth:`close` (called by every command before it exits), wait for that write.
    """

    def __init__(self, ws: Workspace):
        from cli.model import load_published
        from gnn.encoders import MINILM_DIM, MINILM_NAME, text_encoder
        from gnn.feature_cache import FeatureCache
        from gnn.refresh import TextFeatures

        self.ws = ws
        self.texts = TextFeatures(FeatureCache(ws.features, MINILM_NAME, MINILM_DIM), lambda: text_encoder("minilm"))
        self.engine, checkpoint = load_published(ws, self.texts)  # the checkpoint is read once
        self.config = checkpoint.config.graph
        blob = np.load(ws.index_dir / "image_features.npz", allow_pickle=False)
        self.image_features = dict(zip(blob["ids"].tolist(), blob["features"], strict=True))
        self.base, self.marker = self._load_state()
        self._saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tailor-save")
        self._pending: Future | None = None
        self._last: SyncReport | None = None

    def close(self) -> None:
        """Wait for the last write and stop the writer thread."""
        self.flush()
        self._saver.shutdown()

    def flush(self) -> float:
        """Wait for the last sync's files to be written; returns how long that write took."""
        if self._pending is None:
            return 0.0
        seconds = self._pending.result()  # re-raises a failed write
        self._pending = None
        if self._last is not None:
            self._last.save_seconds = seconds
        return seconds

    # --- the cached base graph -------------------------------------------------------------------
    @property
    def state_path(self):
        return self.ws.index_dir / "live.pkl"

    def _load_state(self):
        try:
            with open(self.state_path, "rb") as fh:
                state = pickle.load(fh)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return None, None
        if state.get("format") != LIVE_FORMAT or state.get("version") != self.engine.bundle.version:
            return None, None
        return _unpack(state["base"]), state["marker"]

    def _save_state(self) -> None:
        """Atomically: a crash leaves the previous state, which a later sync brings up to date."""
        state = {"format": LIVE_FORMAT, "version": self.engine.bundle.version, "base": _pack(self.base),
                 "marker": self.marker}
        fd, tmp = tempfile.mkstemp(dir=self.state_path.parent, prefix=".live.")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.state_path)

    # --- sync ------------------------------------------------------------------------------------
    def sync(self, driver: Driver, full: bool = False) -> SyncReport:
        """Bring embeddings and the index in line with the database; index and bundle saved in place.

        Incremental unless ``full`` or there is no cached base graph (or the catalog's images changed).
        Hand-written Cypher that does not set ``updated_at`` is seen only by a full sync.
        """
        from graphdb.export import export_base, server_time, update_base
        from graphdb.interactions import changed_nodes

        self.flush()  # the previous sync's write must finish before the index changes again
        seconds: dict[str, float] = {}
        tick = time.perf_counter()
        mode = "full"
        base = None
        if not full and self.base is not None and self.marker is not None:
            changed = changed_nodes(driver, self.marker)
            until = changed["until"]
            if not any(changed[label] for label in ("Image", "Caption", "Attribute")):
                self.marker = self._earlier(until)
                seconds["read changes"] = time.perf_counter() - tick
                return SyncReport("unchanged", seconds=seconds)
            base = update_base(driver, self.base, changed["Image"], changed["Caption"])
            mode = "incremental"
        if base is None:
            mode = "full"
            until = server_time(driver)
            base = export_base(driver)
        seconds["read changes"] = time.perf_counter() - tick
        report = self._refresh(base, seconds)
        self.base, self.marker = base, self._earlier(until)
        self._last = SyncReport(mode, len(report.changed_images), report.new_attributes, seconds)
        self._pending = self._saver.submit(self._save)
        return self._last

    def _save(self) -> float:
        tick = time.perf_counter()
        self.engine.bundle.save(self.ws.bundle)
        self.engine.index.save(self.ws.faiss)
        self._save_state()
        return time.perf_counter() - tick

    def _refresh(self, base, seconds: dict[str, float]):
        from gnn.refresh import base_features, refresh

        tick = time.perf_counter()
        features = base_features(base, self.image_features, self.texts)
        seconds["features"] = time.perf_counter() - tick
        report = refresh(self.engine, base, features, self.config)
        seconds["embeddings + index"] = report.seconds
        return report

    @staticmethod
    def _earlier(moment: datetime) -> datetime:
        return moment - SAFETY_MARGIN
