"""Answering new composed queries with a trained graph model, without touching the training graph.

A :class:`SearchBundle` keeps every layer's embeddings of images and attributes. A new query is a new
caption node that listens to its candidate (``MODIFIES~rev``) and to the attributes its text adds,
removes or mentions (``MENTIONS:<role>~rev``); since it sends nothing, its embedding is computed from
those neighbours alone (:meth:`GraphEncoder.encode_leaf`), composed with the candidate, and searched in
the FAISS index of image embeddings.
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
    :class:`~gnn.retrieval.index.IndexSpec` or a :class:`~gnn.config.RetrievalConfig`; default flat)."""
    index = ImageIndex(bundle.image_layers.shape[-1], spec)
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


class QueryEngine:
    """Trained weights + bundle + FAISS index + text encoder: text in, ranked product ids out."""

    def __init__(self, model: GraphRetriever, bundle: SearchBundle, index: ImageIndex, text_encoder):
        self.model = model.eval()
        self.bundle = bundle
        self.index = index
        self.text_encoder = text_encoder
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
        liked: tuple[str, ...] = (),
    ) -> QueryResult:
        start = time.perf_counter()
        roles = roles or self.parse(text)
        vector, caption = self.query_vector(candidate, text, roles, liked)
        hits = self.index.search(vector[None], k, exclude=[candidate])[0]
        return QueryResult(candidate, text, roles, hits, time.perf_counter() - start, caption)
