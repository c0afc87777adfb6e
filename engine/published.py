"""The published engine: what `search`, `query`, the interactions and `tailor serve` answer with, as one
artifact on disk.

Layout under ``$TAILOR_HOME/engine/``::

    CURRENT                 the name of the live generation (replaced atomically, last)
    gen-000007/
      manifest.json         format, generation, model version, config (encoders included), data fingerprint,
                            and every file's size and SHA-256
      model.pt              the trained checkpoint
      bundle.pt             per-layer embeddings of images and attributes (new queries are encoded from them)
      images.faiss          the FAISS index of image embeddings, with images.ids.json
      image_features.npz    the image features the embeddings were computed from
      bundle.delta.pt       (optional) the bundle rows changed since bundle.pt and images.faiss were written
      local.topology.pt     (optional) the base graph's edges at the last full sync, for local refreshes
      local.state.pt        (optional) what changed since, node tables, liked captions' layers, hub sums
      base.pkl              (optional, with retrieval.refresh "full") the base graph as last read from Neo4j
      ranker.json           (optional) the second stage's ranker: weights over named facts, its config
      facts.npz             (with it) the facts it reads: image -> attribute (strength, source), kinds,
                            likes; read from the base graph at publish time and kept current by every sync

A save writes a whole new generation folder (unchanged files are hard links to the previous one, with the
checksums their manifest recorded), then switches ``CURRENT``; a crash at any point leaves the previous
generation live and the half-written folder is removed by the next save. After an interaction only what it
changed is written: the changed bundle rows (bundle.delta.pt, cumulative, until they pass a share of the
catalog and the bundle and index are written whole again) and the local refresh's small state; the
bundle, the index and the edges of the last full sync are linked, so a like's save does not grow with the
catalog. A load checks every file against the manifest, so a corrupt or
mismatched file is refused with its name and the fix, instead of answering with garbage.
The fix for a bad bundle, index or base graph is `tailor sync --full`: when the model and the image
features still verify (:data:`SOURCE_FILES`), :meth:`PublishedEngine.load_sources` loads just those and
the full sync computes the rest again from the database (:mod:`engine.live`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ArtifactError, NotPublishedError
from gnn.features.rows import FeatureRows
from readers.files import atomic_write, atomic_write_json, fsync_dir
from readers.graph_records import CaptionRow, GraphExport, ImageRow, TypedEdge

FORMAT = "tailor.engine/1"
BASE_FORMAT = "tailor.base/1"
POINTER = "CURRENT"
KEEP_GENERATIONS = 2  # the live one and the one before (a process that just read the pointer may load it)
FILES = ("model.pt", "bundle.pt", "images.faiss", "images.ids.json", "image_features.npz")
BASE_FILE = "base.pkl"
# What the rest is computed from: with these intact, a full sync rebuilds the others from the database.
SOURCE_FILES = ("model.pt", "image_features.npz")
RANKER_FILE, FACTS_FILE = "ranker.json", "facts.npz"
REPAIR = "run `tailor sync --full` to rebuild the index from the database, or `tailor train` to publish anew"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    """What a generation holds and how to check it."""

    generation: int
    version: str  # the model version: also written into the bundle, the index and every embedding
    model_kind: str
    config: dict[str, Any]  # the ExperimentConfig the model was trained with (encoders included)
    data: dict[str, Any]  # the training data's fingerprint
    counts: dict[str, int]
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # image|text -> {config, name, dim}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> {bytes, sha256}
    # products in the graph left out of the index for want of image features: id -> why
    unindexed: dict[str, str] = field(default_factory=dict)
    # ... and the content key of the file each had then ("" for none), so a sync retries only a changed file
    unindexed_keys: dict[str, str] = field(default_factory=dict)
    # Which whole files a generation's delta files apply to (their ids), see PublishedEngine.save.
    parts: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    format: str = FORMAT

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any], where: Path) -> Manifest:
        if data.get("format") != FORMAT:
            raise ArtifactError(f"{where}: not a tailor engine manifest ({FORMAT}); {REPAIR}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --- the base graph an incremental sync starts from ---------------------------------------------------


@dataclass
class BaseGraph:
    """The base graph (what image and attribute embeddings depend on) and the server time it was read at,
    minus a safety margin: the next incremental sync re-reads what changed since ``marker``. Kept either as
    the export itself (``retrieval.refresh = "full"``) or as the local refresh's state (``"local"``:
    :class:`gnn.retrieval.local.LocalState`, message edges and per-layer embeddings, no Python records)."""

    export: GraphExport | None
    marker: datetime
    local: Any = None


_ROW_KINDS = (ImageRow, CaptionRow, TypedEdge)
_ROW_GETTERS = {kind: attrgetter(*(f.name for f in fields(kind))) for kind in _ROW_KINDS}


def _pack(base: BaseGraph, version: str) -> dict[str, Any]:
    """As tuples: pickles several times faster than the dataclass records."""
    e = base.export
    return {"format": BASE_FORMAT, "version": version, "marker": base.marker.isoformat(),
            "images": [_ROW_GETTERS[ImageRow](r) for r in e.images],
            "captions": [_ROW_GETTERS[CaptionRow](c) for c in e.captions],
            "attributes": e.attributes, "edges": [_ROW_GETTERS[TypedEdge](x) for x in e.edges]}


def _unpack(state: dict[str, Any]) -> BaseGraph:
    export = GraphExport(images=[ImageRow(*r) for r in state["images"]],
                         captions=[CaptionRow(*c) for c in state["captions"]],
                         attributes=state["attributes"], edges=[TypedEdge(*x) for x in state["edges"]])
    return BaseGraph(export, datetime.fromisoformat(state["marker"]))


# --- image features ----------------------------------------------------------------------------------


@dataclass
class ImageFeatures:
    """Image id -> the feature vector its embedding is computed from (rows of one matrix), and the
    content key (sha256 of the image file) each row was computed from: a file whose key moved is
    featurised again. A key of ``""`` is unknown (an engine published before keys were kept)."""

    ids: list[str]
    matrix: Any  # [n, dim] float32 ndarray, or gnn.features.rows.FeatureRows
    keys: list[str] = field(default_factory=list)
    row: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.row = {i: r for r, i in enumerate(self.ids)}
        if not self.keys:
            self.keys = [""] * len(self.ids)
        if len(self.keys) != len(self.ids) or self.matrix.shape[0] != len(self.ids):
            raise ValueError(f"image features: {len(self.ids)} ids, {len(self.keys)} keys, "
                             f"{self.matrix.shape[0]} rows")

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def get(self, image_id: str) -> np.ndarray | None:
        r = self.row.get(image_id)
        if r is None:
            return None
        return self.matrix[r].numpy() if isinstance(self.matrix, FeatureRows) else self.matrix[r]

    def key(self, image_id: str) -> str | None:
        """The content key ``image_id``'s features were computed from (None: no features)."""
        r = self.row.get(image_id)
        return None if r is None else self.keys[r]

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.row

    def __len__(self) -> int:
        return len(self.ids)

    def with_rows(self, ids: list[str], vectors: np.ndarray, keys: list[str] | None = None) -> ImageFeatures:
        """A copy with ``ids`` added or replaced (``keys``: their content keys)."""
        keys = keys if keys is not None else [""] * len(ids)
        if isinstance(self.matrix, FeatureRows):
            rows, extra_ids, at = [], [], len(self.ids)
            all_keys = list(self.keys)
            for image_id, key in zip(ids, keys, strict=True):
                r = self.row.get(image_id)
                if r is None:
                    r, at = at, at + 1
                    extra_ids.append(image_id)
                    all_keys.append(key)
                else:
                    all_keys[r] = key
                rows.append(r)
            return ImageFeatures(self.ids + extra_ids, self.matrix.with_rows(rows, vectors), all_keys)
        matrix = self.matrix.copy()
        all_keys = list(self.keys)
        extra_ids, extra, extra_keys = [], [], []
        for image_id, vec, key in zip(ids, vectors, keys, strict=True):
            r = self.row.get(image_id)
            if r is None:
                extra_ids.append(image_id)
                extra.append(vec)
                extra_keys.append(key)
            else:
                matrix[r] = vec
                all_keys[r] = key
        if extra:
            matrix = np.concatenate([matrix, np.stack(extra).astype(np.float32)])
        return ImageFeatures(self.ids + extra_ids, matrix, all_keys + extra_keys)

    def without(self, ids: set[str] | list[str]) -> ImageFeatures:
        """A copy without the rows of ``ids`` (retired products)."""
        drop = set(ids)
        keep = [r for r, i in enumerate(self.ids) if i not in drop]
        matrix = self.matrix.subset(keep) if isinstance(self.matrix, FeatureRows) else self.matrix[keep]
        return ImageFeatures([self.ids[r] for r in keep], matrix, [self.keys[r] for r in keep])

    def save(self, path: Path) -> None:
        if isinstance(self.matrix, FeatureRows):  # rows of a small table (generated catalogs, shared features)
            atomic_write(path, lambda fh: np.savez(fh, ids=np.array(self.ids), keys=np.array(self.keys),
                                                   **self.matrix.arrays()))
            return
        atomic_write(path, lambda fh: np.savez(fh, ids=np.array(self.ids), features=self.matrix,
                                               keys=np.array(self.keys)))

    @classmethod
    def load(cls, path: Path) -> ImageFeatures:
        blob = np.load(path, allow_pickle=False)
        keys = blob["keys"].tolist() if "keys" in blob.files else []
        if "table" in blob:
            return cls(blob["ids"].tolist(), FeatureRows.from_arrays(blob), keys)
        return cls(blob["ids"].tolist(), np.ascontiguousarray(blob["features"], dtype=np.float32), keys)


# --- the store of generations ------------------------------------------------------------------------


class EngineStore:
    """The published engine's generations under one folder, and the pointer to the live one."""

    def __init__(self, root: Path):
        self.root = Path(root)

    @property
    def pointer(self) -> Path:
        return self.root / POINTER

    def current(self) -> Path:
        """The live generation's folder."""
        try:
            name = self.pointer.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise NotPublishedError(f"no published engine in {self.root}: run `tailor train` first") from None
        folder = self.root / name
        if not name.startswith("gen-") or not folder.is_dir():
            raise ArtifactError(f"{self.pointer} names {name!r}, which is not a generation folder here; {REPAIR}")
        return folder

    def exists(self) -> bool:
        return self.pointer.exists()

    def manifest(self, folder: Path | None = None) -> Manifest:
        folder = folder or self.current()
        path = folder / "manifest.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing; {REPAIR}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ArtifactError(f"{path} is not valid JSON ({exc}); {REPAIR}") from exc
        return Manifest.from_json(data, path)

    def verify(self, folder: Path, manifest: Manifest, names: tuple[str, ...] | None = None) -> None:
        """Every listed file has the size and SHA-256 the manifest records; raises ArtifactError naming
        the first that does not."""
        for name, expected in manifest.files.items():
            if names is not None and name not in names:
                continue
            path = folder / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise ArtifactError(f"{path} is missing from generation {manifest.generation}; {REPAIR}") from None
            if size != expected["bytes"] or sha256_file(path) != expected["sha256"]:
                raise ArtifactError(f"{path} does not match its manifest (corrupt or replaced); {REPAIR}")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time across processes (a server and a command may both publish)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def generations(self) -> list[tuple[int, Path]]:
        out = []
        for p in self.root.glob("gen-*"):
            if p.is_dir() and p.name[4:].isdigit():
                out.append((int(p.name[4:]), p))
        return sorted(out)

    def commit(self, write: Any, manifest: Manifest, reuse: dict[str, Path] | None = None,
               known: dict[str, dict[str, Any]] | None = None) -> Path:
        """Write a new generation: ``write(folder)`` writes the changed files, ``reuse`` names files taken
        over unchanged (hard-linked) from elsewhere; then the manifest with every file's checksum (``known``:
        the checksums of reused files, from the manifest that verified them, so a gigabyte file linked into
        the next generation is not hashed again); then the pointer. Returns the new folder. Call inside
        :meth:`writing`."""
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(".gen-*"):  # folders of saves that crashed before their switch
            shutil.rmtree(stale, ignore_errors=True)
        number = (self.generations()[-1][0] + 1) if self.generations() else 1
        tmp = self.root / f".gen-{number:06d}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            for name, source in (reuse or {}).items():
                try:
                    os.link(source, tmp / name)
                except OSError:  # another file system, or links not allowed
                    shutil.copyfile(source, tmp / name)
            write(tmp)
            manifest.generation = number
            manifest.created_at = datetime.now(UTC).isoformat(timespec="seconds")
            known = known or {}

            def entry(p: Path) -> dict[str, Any]:
                size = p.stat().st_size
                was = known.get(p.name) if p.name in (reuse or {}) else None
                if was is not None and was.get("bytes") == size and os.path.samefile(p, reuse[p.name]):
                    return dict(was)
                return {"bytes": size, "sha256": sha256_file(p)}

            manifest.files = {p.name: entry(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            atomic_write_json(tmp / "manifest.json", manifest.to_json())
            final = self.root / f"gen-{number:06d}"
            os.rename(tmp, final)
            fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        atomic_write(self.pointer, final.name + "\n")
        for _, old in self.generations()[:-KEEP_GENERATIONS]:
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        return final


LOCAL_TOPOLOGY, LOCAL_STATE = "local.topology.pt", "local.state.pt"
BUNDLE_DELTA = "bundle.delta.pt"
# A generation rewrites the bundle and the index whole once the rows changed since the last whole write pass
# this share of the images (at least COMPACT_MIN rows, at most COMPACT_ROWS); until then it writes only
# those rows (BUNDLE_DELTA).
COMPACT_SHARE, COMPACT_MIN, COMPACT_ROWS = 0.05, 2_000, 200_000


def read_local(folder: Path, version: str) -> BaseGraph | None:
    """The local refresh's state saved with a generation (None when there is none, or of another model)."""
    import torch

    from gnn.retrieval.local import LocalState

    try:
        state = torch.load(folder / LOCAL_STATE, map_location="cpu", weights_only=False)
        topology = torch.load(folder / LOCAL_TOPOLOGY, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        return None
    if state.get("version") != version:
        return None
    return BaseGraph(None, datetime.fromisoformat(state["marker"]), LocalState.from_blobs(topology, state["state"]))


def read_base(folder: Path, version: str) -> BaseGraph | None:
    """The base graph saved with a generation, or None when there is none (or of another model)."""
    try:
        with open(folder / BASE_FILE, "rb") as fh:
            state = pickle.load(fh)
    except (FileNotFoundError, EOFError, pickle.UnpicklingError):
        return None
    if state.get("format") != BASE_FORMAT or state.get("version") != version:
        return None
    return _unpack(state)


def write_base(path: Path, base: BaseGraph, version: str) -> None:
    atomic_write(path, lambda fh: pickle.dump(_pack(base, version), fh, protocol=pickle.HIGHEST_PROTOCOL))


# --- the engine itself -------------------------------------------------------------------------------


def _model(checkpoint: Any) -> Any:
    from gnn.nn.model import GraphRetriever

    model = GraphRetriever(checkpoint.in_dims, checkpoint.relations, checkpoint.config.model)
    model.load_state_dict(checkpoint.state_dict)
    return model.eval()


class PublishedEngine:
    """A trained model with everything it answers from: the checkpoint, the bundle of per-layer
    embeddings and the FAISS index (inside :attr:`searcher`), the image features those were computed
    from, and (after a sync) the base graph. Loaded whole from a generation, saved whole as a new one."""

    def __init__(self, manifest: Manifest, checkpoint: Any, searcher: Any, image_features: ImageFeatures,
                 base: BaseGraph | None = None, folder: Path | None = None):
        self.manifest = manifest
        self.checkpoint = checkpoint
        self.searcher = searcher  # gnn.retrieval.search.QueryEngine: model, bundle, index, text features
        self.image_features = image_features
        self.base = base
        self.folder = folder  # the generation this state was loaded from or last saved to
        self.features_changed = False  # image features gained rows since that generation
        # Set by load_sources only (no searcher yet): the query text features and the model to rebuild with.
        self.text_features: Any = None
        self.model_for_rebuild: Any = None
        # Images whose bundle rows (and index vectors) changed since bundle.pt and images.faiss were last
        # written whole; ``rewrite`` asks the next save to write those files whole (after a full refresh).
        self.changed_images: set[str] = set()
        self.rewrite = False

    @property
    def version(self) -> str:
        return self.manifest.version

    @property
    def bundle(self) -> Any:
        return self.searcher.bundle

    @property
    def index(self) -> Any:
        return self.searcher.index

    @property
    def model(self) -> Any:
        return self.searcher.model

    @property
    def config(self) -> Any:
        """The ExperimentConfig the model was trained with."""
        return self.checkpoint.config

    # --- loading ----------------------------------------------------------------------------------
    @classmethod
    def load(cls, store: EngineStore, text_features: Any, verify: bool = True) -> PublishedEngine:
        """The live generation. ``text_features`` encodes query text (quacks like a text encoder); it must
        be the encoder the manifest names (see :func:`engine.pipeline.text_features_for`)."""
        from gnn.checkpoint import load_checkpoint
        from gnn.ranking.facts import FactTable
        from gnn.ranking.model import LinearRanker
        from gnn.ranking.stage import SecondStage
        from gnn.retrieval.index import ImageIndex
        from gnn.retrieval.search import QueryEngine, SearchBundle

        folder = store.current()
        manifest = store.manifest(folder)
        if verify:
            store.verify(folder, manifest)
        try:
            checkpoint = load_checkpoint(folder / "model.pt")
            bundle = SearchBundle.load(folder / "bundle.pt")
            index = ImageIndex.load(folder / "images.faiss")
            features = ImageFeatures.load(folder / "image_features.npz")
            second_stage = None
            if RANKER_FILE in manifest.files:
                ranker = LinearRanker.load(folder / RANKER_FILE)
                second_stage = SecondStage(ranker, FactTable.load(folder / FACTS_FILE),
                                           tuple(ranker.meta.get("sources", ())), features)
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
            raise ArtifactError(f"{folder}: {exc}; {REPAIR}") from exc
        for what, version in (("model.pt", checkpoint.version), ("bundle.pt", bundle.version),
                              ("images.faiss", index.version)):
            if version != manifest.version:
                raise ArtifactError(f"{folder / what} is of model version {version!r}, the manifest of "
                                    f"{manifest.version!r}; {REPAIR}")
        if len(index) != len(bundle.image_ids):
            raise ArtifactError(f"{folder / 'images.faiss'} holds {len(index)} images, the bundle "
                                f"{len(bundle.image_ids)}; {REPAIR}")
        changed: list[str] = []
        if (folder / BUNDLE_DELTA).exists():
            changed = _apply_bundle_delta(folder, manifest, bundle, index)
        searcher = QueryEngine(_model(checkpoint), bundle, index, text_features, second_stage, looks=features)
        try:
            base = read_local(folder, manifest.version) or read_base(folder, manifest.version)
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError) as exc:
            raise ArtifactError(f"{folder}: {exc}; {REPAIR}") from exc
        engine = cls(manifest, checkpoint, searcher, features, base, folder)
        engine.changed_images = set(changed)
        return engine

    @classmethod
    def load_sources(cls, store: EngineStore, text_features: Any) -> PublishedEngine:
        """Only what the rest is computed from (:data:`SOURCE_FILES`, verified): an engine with no searcher
        yet, for a full sync to rebuild bundle, index and base graph from the database. Raises
        ArtifactError when a source file is bad too (then only `tailor train` helps)."""
        from gnn.checkpoint import load_checkpoint

        folder = store.current()
        manifest = store.manifest(folder)
        try:
            store.verify(folder, manifest, SOURCE_FILES)
            checkpoint = load_checkpoint(folder / "model.pt")
            features = ImageFeatures.load(folder / "image_features.npz")
        except (OSError, ValueError, KeyError, RuntimeError, pickle.UnpicklingError, ArtifactError) as exc:
            raise ArtifactError(f"{exc}: the model or its image features are damaged too, so the index cannot "
                                "be rebuilt; run `tailor train` to publish anew") from exc
        if checkpoint.version != manifest.version:
            raise ArtifactError(f"{folder / 'model.pt'} is of model version {checkpoint.version!r}, the "
                                f"manifest of {manifest.version!r}; run `tailor train` to publish anew")
        engine = cls(manifest, checkpoint, None, features, None, folder)
        engine.text_features = text_features
        engine.model_for_rebuild = _model(checkpoint)
        engine.second_stage_for_rebuild = None  # its facts are read again from the database by the rebuild
        if RANKER_FILE in manifest.files:
            from gnn.ranking.facts import FactTable
            from gnn.ranking.model import LinearRanker
            from gnn.ranking.stage import SecondStage

            try:
                store.verify(folder, manifest, (RANKER_FILE,))
                ranker = LinearRanker.load(folder / RANKER_FILE)
            except (OSError, ValueError, KeyError, ArtifactError):
                ranker = None  # a damaged ranker: the rebuilt engine answers in the embedding order
            if ranker is not None:
                engine.second_stage_for_rebuild = SecondStage(ranker, FactTable.from_export(GraphExport(), ()),
                                                              tuple(ranker.meta.get("sources", ())), features)
        return engine

    # --- saving -----------------------------------------------------------------------------------
    def save(self, store: EngineStore, model_file: Path | None = None) -> Path:
        """This state as a new generation, made live. The model and the image features are hard links to
        the last generation's unless they changed (``model_file``: the checkpoint to publish)."""
        previous = self.folder
        known = dict(self.manifest.files)  # the checksums of the generation the reused files come from
        parts = dict(self.manifest.parts)
        images = len(self.bundle.image_ids)
        whole = (previous is None or self.rewrite or "bundle" not in parts
                 or not (previous / "bundle.pt").exists()
                 or len(self.changed_images) > max(COMPACT_MIN, min(COMPACT_ROWS, COMPACT_SHARE * images)))
        local = self.base.local if self.base is not None else None
        same_topology = (local is not None and previous is not None and parts.get("topology") == local.topology_id
                         and (previous / LOCAL_TOPOLOGY).exists())
        if whole:
            parts["bundle"] = uuid.uuid4().hex
        if local is not None:
            parts["topology"] = local.topology_id

        def write(folder: Path) -> None:
            from gnn.checkpoint import atomic_save

            if model_file is not None or previous is None:
                if model_file is None:
                    raise ArtifactError("a first publish needs the checkpoint file")
                shutil.copyfile(model_file, folder / "model.pt")
            if self.features_changed or previous is None:
                self.image_features.save(folder / "image_features.npz")
            if whole:
                self.bundle.save(folder / "bundle.pt")
                self.index.save(folder / "images.faiss")
            elif self.changed_images:  # only the rows changed since bundle.pt was written whole
                b = self.bundle
                rows = sorted(b.image_row[i] for i in self.changed_images)
                atomic_save({"bundle": parts["bundle"], "image_ids": [b.image_ids[r] for r in rows],
                             "image_layers": b.image_layers[:, rows].clone(),
                             "attribute_names": list(b.attribute_names),
                             "attribute_layers": b.attribute_layers.clone()}, folder / BUNDLE_DELTA)
            if local is not None:
                if not same_topology:
                    atomic_save(local.topology_blob(), folder / LOCAL_TOPOLOGY)
                atomic_save({"version": self.version, "marker": self.base.marker.isoformat(),
                             "state": local.state_blob()}, folder / LOCAL_STATE)
            elif self.base is not None:
                write_base(folder / BASE_FILE, self.base, self.version)
            stage = self.searcher.second_stage
            if stage is not None:
                stage.ranker.save(folder / RANKER_FILE)
                stage.facts.save(folder / FACTS_FILE)

        reuse = {}
        if previous is not None:
            if model_file is None:
                reuse["model.pt"] = previous / "model.pt"
            if not self.features_changed:
                reuse["image_features.npz"] = previous / "image_features.npz"
            if not whole:
                for name in ("bundle.pt", "images.faiss", "images.ids.json"):
                    reuse[name] = previous / name
            if same_topology:
                reuse[LOCAL_TOPOLOGY] = previous / LOCAL_TOPOLOGY
        self.manifest.counts = {"images": len(self.bundle.image_ids),
                                "attributes": len(self.bundle.attribute_names),
                                "image_features": len(self.image_features)}
        if self.searcher.second_stage is not None:
            self.manifest.counts["facts"] = len(self.searcher.second_stage.facts)
        self.manifest.parts = parts
        with store.writing():
            self.folder = store.commit(write, self.manifest, reuse, known)
        self.features_changed = False
        if whole:
            self.changed_images, self.rewrite = set(), False
        return self.folder


def _apply_bundle_delta(folder: Path, manifest: Manifest, bundle: Any, index: Any) -> list[str]:
    """Bundle rows (and their index vectors) changed since bundle.pt was written whole; returns their ids."""
    import torch

    try:
        delta = torch.load(folder / BUNDLE_DELTA, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
        raise ArtifactError(f"{folder / BUNDLE_DELTA}: {exc}; {REPAIR}") from exc
    if delta.get("bundle") != manifest.parts.get("bundle"):
        raise ArtifactError(f"{folder / BUNDLE_DELTA} belongs to another bundle.pt; {REPAIR}")
    ids = delta["image_ids"]
    missing = [i for i in ids if i not in bundle.image_row]
    if missing:
        raise ArtifactError(f"{folder / BUNDLE_DELTA} names images the bundle lacks ({missing[:3]}); {REPAIR}")
    rows = [bundle.image_row[i] for i in ids]
    if rows:
        bundle.image_layers[:, rows] = delta["image_layers"].to(bundle.image_layers.dtype)
        index.add(ids, bundle.image_layers[-1, rows].float().numpy())
    bundle.attribute_names = list(delta["attribute_names"])
    bundle.attribute_row = {a: r for r, a in enumerate(bundle.attribute_names)}
    bundle.attribute_layers = delta["attribute_layers"]
    return list(ids)
