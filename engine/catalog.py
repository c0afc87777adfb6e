"""A catalog that changes daily, without retraining: what a sync does for new, changed and retired products.

The R-GCN is inductive: a product it never saw gets its first-layer embedding from its own image features
and messages from its attributes, with the trained weights. So a sync

1. gives features to exactly the images that lack them, or whose file changed (its content key, the
   sha256 of the bytes, is kept beside each feature row): through the content-keyed cache, the encoder
   the engine was trained with built only on a miss (:func:`update_image_features`);
2. drops the features of products no longer in the graph (retired);
3. embeds only images that have features: one without (missing or broken file, all-zero output) is
   reported by id with the reason and left out of the index until a later sync finds features for it
   (:func:`indexable`), never embedded as zeros;
4. writes the new embeddings back to Neo4j (:func:`write_back`).

Which images a sync re-checks: every image new to the engine, every image whose ``updated_at`` moved (a
catalog load marks what it creates or changes), and, with ``tailor sync --full``, every image (a file
replaced in place with no catalog change is seen then).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.published import ImageFeatures, PublishedEngine
from engine.workspace import Workspace
from readers.graph_records import GraphExport
from readers.progress import StartPhase


@dataclass
class FeatureUpdate:
    """What a sync did to the engine's image features."""

    added: list[str] = field(default_factory=list)  # images that got features for the first time
    recomputed: list[str] = field(default_factory=list)  # images whose file changed
    dropped: list[str] = field(default_factory=list)  # features of products no longer in the graph
    missing: dict[str, str] = field(default_factory=dict)  # image id -> why it has none (left out)
    computed: int = 0  # through the encoder
    cached: int = 0  # found in the feature cache
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.recomputed or self.dropped)


@dataclass
class CatalogChanges:
    """What a sync did to the set of searchable products."""

    new_images: list[str] = field(default_factory=list)  # in the index for the first time
    removed_images: list[str] = field(default_factory=list)  # left the index: retired, or lost features
    features: FeatureUpdate = field(default_factory=FeatureUpdate)

    @property
    def changed(self) -> bool:
        """Whether the set of searchable products, or the features of one, changed."""
        return bool(self.new_images or self.removed_images or self.features.changed)

    def to_json(self, show: int = 20) -> dict[str, Any]:
        """Counts, the first ``show`` ids of each list, and every image left without features."""
        f = self.features
        return {"new_images": len(self.new_images), "removed_images": len(self.removed_images),
                "new_image_ids": self.new_images[:show], "removed_image_ids": self.removed_images[:show],
                "features_added": len(f.added), "features_recomputed": len(f.recomputed),
                "features_dropped": len(f.dropped), "features_computed": f.computed, "features_cached": f.cached,
                "without_features": [{"id": i, "reason": why} for i, why in sorted(f.missing.items())]}


def catalog_changes(before: set[str], report: Any, features: FeatureUpdate) -> CatalogChanges:
    """From the index's ids before a refresh, the refresh's report and the feature update."""
    return CatalogChanges([i for i in report.changed_images if i not in before], list(report.removed_images),
                          features)


class LazyImageEncoder:
    """The published engine's image encoder, built on the first image the cache does not have (a sync
    whose images are all cached, or that has none to featurise, never loads the network)."""

    def __init__(self, name: str, dim: int, make: Callable[[], Any]):
        self.name, self.dim = name, dim
        self._make = make
        self._encoder: Any = None

    def _built(self) -> Any:
        if self._encoder is None:
            self._encoder = self._make()
            if self._encoder.name != self.name or self._encoder.dim != self.dim:
                raise ValueError(f"image encoder {self._encoder.name!r} ({self._encoder.dim}-d) is not the "
                                 f"{self.name!r} ({self.dim}-d) the engine was trained with")
        return self._encoder

    def try_encode_images(self, images, batch_size=None, on_batch=None):
        if not images:  # featurize_images asks even when every image was a cache hit
            from gnn.features.encoders import ImageBatchResult

            return ImageBatchResult(np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64), [])
        return self._built().try_encode_images(images, batch_size, on_batch=on_batch)


@functools.cache
def _lazy_encoder(name: str, dim: int, config: str) -> LazyImageEncoder:
    """One per encoder and process: a long-lived server builds the network once."""

    def make() -> Any:
        from gnn.features.encoders import image_encoder

        return image_encoder(config)

    return LazyImageEncoder(name, dim, make)


def published_image_encoder(published: PublishedEngine) -> LazyImageEncoder | None:
    """The encoder the manifest names (None when it names none: an engine built from given features)."""
    image = published.manifest.encoders.get("image") or {}
    if not image.get("name") or not image.get("config"):
        return None
    return _lazy_encoder(image["name"], int(image["dim"]), image["config"])


def lacking_features(published: PublishedEngine, export: GraphExport) -> list[str]:
    """Images of the graph that the engine has no features for."""
    features = published.image_features
    return [r.id for r in export.images if r.id not in features]


def content_key(path: str) -> str | None:
    from gnn.features.cache import file_key

    if not path:
        return None
    try:
        return file_key(path)
    except OSError:
        return None  # featurize_images names the reason


def update_image_features(published: PublishedEngine, export: GraphExport, ws: Workspace,
                          recheck: Iterable[str] | None, start_phase: StartPhase | None = None
                          ) -> FeatureUpdate:
    """Bring ``published.image_features`` in line with the images of ``export`` (see the module doc).

    ``recheck``: ids whose file may have changed (None: every image). Sets ``features_changed`` on the
    engine when the features changed, so its next save writes them.
    """
    from gnn.features.cache import FeatureCache
    from gnn.features.featurize import featurize_images

    start = time.perf_counter()
    features: ImageFeatures = published.image_features
    update = FeatureUpdate()
    present = {r.id for r in export.images}
    update.dropped = [i for i in features.ids if i not in present]
    check_all = recheck is None
    recheck_ids = set() if recheck is None else set(recheck)
    todo, stale = [], []
    for r in export.images:
        stored = features.key(r.id)
        if stored is None:
            todo.append(r)
        elif check_all or r.id in recheck_ids:
            key = content_key(r.image_path)
            if key is None and not stored:
                continue  # features given without a file to check them by (generated catalogs): kept
            if key != stored or not stored:
                todo.append(r)
                stale.append(r.id)
    computed: dict[str, tuple[np.ndarray, str]] = {}
    if todo:
        encoder = published_image_encoder(published)
        if encoder is None:
            update.missing.update({r.id: "the published engine names no image encoder to compute features "
                                   "with; run `tailor train`" for r in todo})
        else:
            cache = FeatureCache(ws.features, encoder.name, encoder.dim)
            result = featurize_images([(r.id, r.image_path) for r in todo], encoder, cache,
                                      start_phase=start_phase)
            update.computed, update.cached = result.computed, result.cached
            for failure in result.failed:
                update.missing[str(failure.id)] = f"{failure.reason}: {failure.source}"
            for image_id, vector, key in zip(result.ids, result.features, result.keys, strict=True):
                if not np.any(vector):
                    update.missing[str(image_id)] = "the image encoder gave an all-zero vector"
                else:
                    computed[str(image_id)] = (vector, key)
    # A re-checked image whose bytes give the features it had (its key was unknown, or the file came back
    # as it was) keeps its embedding: only its key is recorded.
    rekeyed = {i for i in stale if i in computed
               and np.allclose(computed[i][0], features.get(i), atol=1e-5)}  # type: ignore[arg-type]
    stale_set = set(stale)
    update.added = [i for i in computed if i not in stale_set]
    update.recomputed = [i for i in computed if i in stale_set and i not in rekeyed]
    lost = [i for i in stale if i in update.missing]  # had features; its file now fails
    if update.dropped or lost:
        features = features.without(set(update.dropped) | set(lost))
    if computed:
        ids = list(computed)
        features = features.with_rows(ids, np.stack([computed[i][0] for i in ids]), [computed[i][1] for i in ids])
    if update.changed or lost or rekeyed:
        published.image_features = features
        published.features_changed = True
    update.seconds = time.perf_counter() - start
    return update


def indexable(export: GraphExport, arrays: dict[str, np.ndarray] | None, leave_out: set[str]
              ) -> tuple[GraphExport, dict[str, np.ndarray] | None]:
    """``export`` without the images in ``leave_out`` (images without features), and ``arrays`` (node
    features in export order) without their rows. Their edges may stay: building the tensors skips an
    edge whose end is not a node."""
    if not leave_out:
        return export, arrays
    keep = [n for n, r in enumerate(export.images) if r.id not in leave_out]
    out = GraphExport(images=[export.images[n] for n in keep], captions=export.captions,
                      attributes=export.attributes, edges=export.edges, seconds=export.seconds)
    if arrays is None:
        return out, None
    return out, {**arrays, "Image": arrays["Image"][keep]}


def zero_rows(ids: Sequence[str], matrix: np.ndarray) -> set[str]:
    """Ids whose feature row is all zeros (an image that failed to featurise, filled in for training)."""
    if len(ids) == 0:
        return set()
    empty = ~np.any(matrix, axis=1)
    return {ids[n] for n in np.flatnonzero(empty)}


def write_back(driver: Any, bundle: Any, images: Sequence[str], left_out: Sequence[str], version: str) -> int:
    """The final-layer embeddings of ``images`` (new or moved) and of every attribute into Neo4j; the
    stored embedding of images that left the index is removed. Returns how many images were written."""
    from graphdb.embeddings import clear_image_embeddings, write_embeddings

    rows = [bundle.image_row[i] for i in images if i in bundle.image_row]
    if rows:
        write_embeddings(driver, "Image", [bundle.image_ids[r] for r in rows],
                         bundle.image_layers[-1][rows].numpy(), version)
        write_embeddings(driver, "Attribute", bundle.attribute_names, bundle.attribute_layers[-1].numpy(), version)
    clear_image_embeddings(driver, list(left_out))
    return len(rows)


def not_indexed_message(published: PublishedEngine, image_id: str, in_graph: bool | None) -> str:
    """Why ``image_id`` cannot be searched, and the next step. ``in_graph``: whether Neo4j holds it
    (None: not asked, e.g. `tailor search`, which needs no database)."""
    if in_graph is False:
        return f"unknown image id {image_id!r} (not in the graph: load it with `tailor load catalog`)"
    reason = published.manifest.unindexed.get(image_id)
    if reason:
        return (f"image id {image_id!r} is loaded but has no image features ({reason}), so it is not indexed: "
                "fix its image file, then run `tailor sync`")
    if in_graph:
        return f"unknown image id {image_id!r} (loaded but not yet indexed: run `tailor sync`)"
    return (f"unknown image id {image_id!r} (not in the published index: if it was loaded, run `tailor sync`; "
            "else load it with `tailor load catalog`)")
