"""Answering new composed queries with a trained graph model, without touching the training graph.

A :class:`SearchBundle` keeps every layer's embeddings of images and attributes. A new query is a new
caption node that listens to its candidate (``MODIFIES~rev``) and to the attributes its text adds,
removes or mentions (``MENTIONS:<role>~rev``); since it sends nothing, its embedding is computed from
those neighbours alone (:meth:`GraphEncoder.encode_leaf`), composed with the candidate, and searched in
the FAISS index of image embeddings. With a second stage (:mod:`gnn.ranking.stage`), FAISS's top
candidates are re-ordered by the ranker over the facts held in memory, and every hit gets its reasons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from gnn.checkpoint import atomic_save
from gnn.data.graph import GraphTensors
from gnn.nn.model import GraphRetriever
from gnn.ranking.stage import Reason, SecondStage
from gnn.retrieval.guard import ReadWriteLock
from gnn.retrieval.index import ImageIndex
from readers.captions import CaptionRoles, Vocabulary, parse_relative_caption
from readers.graph_records import CAPTION_ROLES, LIKED_FOR, MENTIONS, MODIFIES, reverse


@dataclass
class SearchBundle:
    version: str
    image_ids: list[str]
    image_titles: list[str]
    image_paths: list[str]
    attribute_names: list[str]
    relations: list[str]
    image_layers: torch.Tensor  # [L+1, n_images, hidden]
    attribute_layers: torch.Tensor  # [L+1, n_attributes, hidden]
    image_row: dict[str, int] = field(default_factory=dict)
    attribute_row: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.image_row = {i: r for r, i in enumerate(self.image_ids)}
        self.attribute_row = {a: r for r, a in enumerate(self.attribute_names)}

    def save(self, path: Path) -> None:
        blob = {
            k: getattr(self, k)
            for k in (
                "version",
                "image_ids",
                "image_titles",
                "image_paths",
                "attribute_names",
                "relations",
                "image_layers",
                "attribute_layers",
            )
        }
        atomic_save(blob, path)

    @classmethod
    def load(cls, path: Path) -> SearchBundle:
        return cls(**torch.load(path, map_location="cpu", weights_only=False))


@torch.no_grad()
def encode_base(model: GraphRetriever, g: GraphTensors, dtype: torch.dtype = torch.float32
                ) -> tuple[GraphTensors, torch.Tensor]:
    """The base graph (``g`` without the captions that only listen) and every layer of its nodes'
    embeddings, ``[L+1, N, hidden]`` in ``dtype``: what the bundle and a local refresh are made from."""
    model.eval()
    sub, _ = g.restrict_captions(torch.zeros(0, dtype=torch.long))
    return sub, model.encoder.layerwise(sub, dtype)


def bundle_from_layers(sub: GraphTensors, layers: torch.Tensor, version: str, image_paths: list[str]) -> SearchBundle:
    """The bundle of a base graph's images and attributes (views of ``layers``, not copies)."""
    n_img = len(sub.ids["Image"])
    return SearchBundle(
        version=version,
        image_ids=list(sub.ids["Image"]),
        image_titles=list(sub.image_title),
        image_paths=image_paths,
        attribute_names=list(sub.ids["Attribute"]),
        relations=list(sub.relations),
        image_layers=layers[:, :n_img],
        attribute_layers=layers[:, sub.offsets["Attribute"] :],
    )


@torch.no_grad()
def build_bundle(
    model: GraphRetriever, g: GraphTensors, version: str, image_paths: list[str],
    dtype: torch.dtype = torch.float32,
) -> SearchBundle:
    """Per-layer embeddings of every image and attribute (captions that only listen are left out)."""
    sub, layers = encode_base(model, g, dtype)
    return bundle_from_layers(sub, layers, version, image_paths)


def build_index(bundle: SearchBundle, spec=None, chunk: int = 1 << 17) -> ImageIndex:
    """The FAISS index of the bundle's final image embeddings; ``spec``: its kind and settings (an
    :class:`~gnn.retrieval.index.IndexSpec` or a :class:`~gnn.config.RetrievalConfig`; default "auto":
    exact for a catalog of up to :data:`~gnn.retrieval.index.AUTO_IVF_FROM` images, IVF above)."""
    index = ImageIndex(bundle.image_layers.shape[-1], spec, size=len(bundle.image_ids))
    final = bundle.image_layers[-1]
    if index.spec.kind == "ivf" and len(final):  # the quantizer trains on all of them (a sample of them)
        index.add(bundle.image_ids, final.float().numpy())
    else:
        for a in range(0, len(final), chunk):
            index.add(bundle.image_ids[a : a + chunk], final[a : a + chunk].float().numpy())
    index.version = bundle.version
    return index


@dataclass
class QueryResult:
    candidate: str
    text: str
    roles: CaptionRoles
    hits: list[tuple[str, float]]
    seconds: float
    caption_embedding: np.ndarray | None = None
    reasons: list[list[Reason]] | None = None  # per hit, from the second stage (None: it did not run)
    reranked: bool = False  # the second stage changed stage one's order
    fallback: str = ""  # "" (the graph model) | "looks" (nothing understood: ranked by image similarity)


class QueryEngine:
    """Trained weights + bundle + FAISS index + text encoder (+ the second stage): text in, ranked product
    ids out."""

    def __init__(self, model: GraphRetriever, bundle: SearchBundle, index: ImageIndex, text_encoder,
                 second_stage: SecondStage | None = None, looks=None):
        """``second_stage``: re-orders FAISS's top candidates by the facts it holds (None: the embedding
        order). ``looks``: the image features the embeddings came from (``ids``, ``matrix``, ``row``: an
        :class:`engine.published.ImageFeatures`); a query whose parse is unsure is ranked by them."""
        self.model = model.eval()
        self.bundle = bundle
        self.index = index
        self.text_encoder = text_encoder
        self.second_stage = second_stage
        self.looks = looks
        self.guard = ReadWriteLock()  # searches read under it; a local refresh changes rows in place under it
        self._looks_unit: tuple[object, np.ndarray] | None = None  # (the matrix it was made from, unit rows)
        self.rel = {name: i for i, name in enumerate(bundle.relations)}
        self.rebuild_vocabulary()

    def rebuild_vocabulary(self) -> None:
        """Captions are parsed against the graph's attributes, including ones users added."""
        self.vocabulary = Vocabulary(self.bundle.attribute_names)

    def parse(self, text: str) -> CaptionRoles:
        return parse_relative_caption(text, self.vocabulary)

    @torch.no_grad()
    def query_vector(
        self, candidate: str, text: str, roles: CaptionRoles, liked: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """(composed query, caption embedding) for a candidate image id and a relative caption.

        ``liked``: images liked for this query (a stored one); the caption hears them through LIKED_FOR,
        as it does in the graph, so "I like that" re-ranks the query it was said about."""
        if candidate not in self.bundle.image_row:
            raise KeyError(f"unknown image id {candidate!r}")
        row = self.bundle.image_row[candidate]
        feature = torch.from_numpy(np.asarray(self.text_encoder.encode_texts([text])[0], dtype=np.float32))
        neighbours: dict[int, list[torch.Tensor]] = {}
        neighbours[self.rel[reverse(MODIFIES)]] = list(self.bundle.image_layers[:, row : row + 1].float())
        liked_rows = [self.bundle.image_row[i] for i in liked if i in self.bundle.image_row]
        if liked_rows and LIKED_FOR in self.rel:
            neighbours[self.rel[LIKED_FOR]] = list(self.bundle.image_layers[:, liked_rows].float())
        for role in CAPTION_ROLES:
            names = [a for a in getattr(roles, role) if a in self.bundle.attribute_row]
            rel = self.rel.get(reverse(f"{MENTIONS}:{role}"), self.rel.get(reverse(f"{MENTIONS}:any")))
            if names and rel is not None:
                rows = [self.bundle.attribute_row[a] for a in names]
                layers = list(self.bundle.attribute_layers[:, rows].float())
                if rel in neighbours:  # one relation for all roles: pool them together
                    layers = [torch.cat([a, b]) for a, b in zip(neighbours[rel], layers, strict=True)]
                neighbours[rel] = layers
        caption = self.model.encoder.encode_leaf(feature, neighbours)
        composed, _ = self.model.head(self.bundle.image_layers[-1, row][None].float(), caption[None])
        return F.normalize(composed, dim=-1)[0].numpy(), caption.numpy()

    def search(
        self, candidate: str, text: str, k: int = 10, roles: CaptionRoles | None = None,
        liked: tuple[str, ...] = (), rerank: bool = True,
    ) -> QueryResult:
        """The top ``k`` for a candidate and a caption: FAISS's, re-ordered by the second stage when the
        engine has one (and ``rerank``); the second stage re-orders FAISS's top ``candidates``. Where the
        parse is unsure (nothing added or removed, or a doubtful reading) and the query has no likes, the
        answer is ranked by looks alone, as image search would (``fallback="looks"``): measured, the
        model's text-only path does worse than that."""
        with self.guard.reading():
            return self._search(candidate, text, k, roles, liked, rerank)

    def _search(self, candidate: str, text: str, k: int, roles: CaptionRoles | None, liked: tuple[str, ...],
                rerank: bool) -> QueryResult:
        start = time.perf_counter()
        roles = roles or self.parse(text)
        if roles.unsure and not liked and self.looks is not None and candidate in self.looks.row:
            hits = self.similar_looks(candidate, k)
            return QueryResult(candidate, text, roles, hits, time.perf_counter() - start, None, fallback="looks")
        vector, caption = self.query_vector(candidate, text, roles, liked)
        stage = self.second_stage if rerank and self.second_stage is not None and self.second_stage.enabled else None
        depth = max(k, stage.candidates) if stage is not None else k
        hits = self.index.search(vector[None], depth, exclude=[candidate])[0]
        if stage is None:
            return QueryResult(candidate, text, roles, hits, time.perf_counter() - start, caption)
        out = stage.rerank(candidate, hits, roles.added, roles.removed, roles.mentioned, liked, k=k)
        return QueryResult(candidate, text, roles, out.hits, time.perf_counter() - start, caption, out.reasons,
                           out.reranked)

    def similar_looks(self, candidate: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` indexed images whose image features are nearest the candidate's (cosine)."""
        matrix = self.looks.matrix
        if hasattr(matrix, "dense"):  # rows of a small table (gnn.features.rows): scored in chunks, never dense
            cand = matrix[self.looks.row[candidate]].numpy()
            cand = cand / max(float(np.linalg.norm(cand)), 1e-12)
            scores = np.empty(len(matrix), np.float32)
            for a in range(0, len(matrix), 1 << 16):
                rows = matrix[a : a + (1 << 16)].numpy()
                scores[a : a + len(rows)] = rows @ cand / np.maximum(np.linalg.norm(rows, axis=1), 1e-12)
        else:
            if self._looks_unit is None or self._looks_unit[0] is not matrix:
                m = np.asarray(matrix, dtype=np.float32)
                self._looks_unit = (matrix, m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12))
            unit = self._looks_unit[1]
            scores = unit @ unit[self.looks.row[candidate]]
        scores[self.looks.row[candidate]] = -np.inf
        indexed = self.bundle.image_row
        order = np.argsort(-scores, kind="stable")
        hits = []
        for r in order:
            image_id = self.looks.ids[r]
            if image_id in indexed and np.isfinite(scores[r]):
                hits.append((image_id, float(scores[r])))
                if len(hits) == k:
                    break
        return hits
