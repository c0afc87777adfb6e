"""The steps commands share: export the graph, featurise it, train, publish an index.

Thin glue between graphdb/ (Neo4j) and gnn/ (tensors); each step prints what it did.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass

import numpy as np
from neo4j import Driver

from cli.console import console
from cli.progress import phases
from cli.workspace import Workspace
from graphdb.export import GraphExport, export_graph


@dataclass
class GraphFeatures:
    arrays: dict[str, np.ndarray]  # node kind -> [n, dim], rows in export order
    summaries: list[str]
    failed_images: list


def read_graph(driver: Driver) -> GraphExport:
    with console.status("reading the graph from Neo4j ..."):
        export = export_graph(driver)
    console.print(
        f"graph: {len(export.images):,} images, {len(export.captions):,} captions, "
        f"{len(export.attributes):,} attributes, {len(export.edges):,} edges "
        f"({export.seconds:.1f} s, {export.edges_per_second:,.0f} edges/s)"
    )
    return export


def featurize_graph(
    export: GraphExport, ws: Workspace, image_model: str = "efficientnet-lite0", text_model: str = "minilm",
    strict: bool = False,
) -> GraphFeatures:
    """Features for every node, from the cache where possible. A failed image gets a zero vector
    (reported), so it still takes part in the graph through its attributes."""
    from gnn.encoders import image_encoder, text_encoder
    from gnn.feature_cache import FeatureCache
    from gnn.featurize import featurize_images, featurize_texts

    images = image_encoder(image_model)
    texts = text_encoder(text_model)
    image_result = featurize_images(
        [(r.id, r.image_path) for r in export.images], images,
        FeatureCache(ws.features, images.name, images.dim), strict=strict,
    )
    text_cache = FeatureCache(ws.features, texts.name, texts.dim)
    caption_result = featurize_texts([(c.id, c.text) for c in export.captions], texts, text_cache, strict=strict)
    attribute_result = featurize_texts([(a, a) for a in export.attributes], texts, text_cache, strict=strict)

    def aligned(result, ids: list[str], dim: int) -> np.ndarray:
        out = np.zeros((len(ids), dim), dtype=np.float32)
        row_of = result.row_of()
        for i, node_id in enumerate(ids):
            if node_id in row_of:
                out[i] = result.features[row_of[node_id]]
        return out

    arrays = {
        "Image": aligned(image_result, [r.id for r in export.images], images.dim),
        "Caption": aligned(caption_result, [c.id for c in export.captions], texts.dim),
        "Attribute": aligned(attribute_result, list(export.attributes), texts.dim),
    }
    summaries = [image_result.summary(), caption_result.summary(), attribute_result.summary()]
    for line in summaries:
        console.print(line)
    return GraphFeatures(arrays, summaries, image_result.failed)


def save_image_features(ws: Workspace, export: GraphExport, image_features: np.ndarray) -> None:
    """The image features the published model saw, so refreshes need no image decoding."""
    ws.index_dir.mkdir(parents=True, exist_ok=True)
    tmp = ws.index_dir / ".image_features.tmp.npz"
    np.savez(tmp, ids=np.array([r.id for r in export.images]), features=image_features)
    tmp.replace(ws.index_dir / "image_features.npz")


def publish(run, export: GraphExport, ws: Workspace, image_features: np.ndarray,
            driver: Driver | None = None) -> None:
    """Make a trained graph model the one search/query use: bundle, FAISS index, embeddings in Neo4j."""
    from gnn.search import build_bundle, build_index

    version = run.meta.get("version") or run.checkpoint.stem
    bundle = build_bundle(run.model, run.graph, version, [r.image_path for r in export.images])
    bundle.save(ws.bundle)
    save_image_features(ws, export, image_features)
    index = build_index(bundle)
    index.save(ws.faiss)
    tmp = ws.current_model.with_suffix(".tmp")
    shutil.copyfile(run.checkpoint, tmp)
    tmp.replace(ws.current_model)
    console.print(f"index: {len(index):,} images -> {ws.faiss} (model version {version})")
    if driver is not None:
        from graphdb.embeddings import write_embeddings

        with phases() as start:
            write_embeddings(driver, "Image", bundle.image_ids, bundle.image_layers[-1].numpy(), version,
                             progress=start("embeddings -> Neo4j", len(bundle.image_ids)))
            write_embeddings(driver, "Attribute", bundle.attribute_names, bundle.attribute_layers[-1].numpy(),
                             version, progress=start("attribute embeddings", len(bundle.attribute_names)))
