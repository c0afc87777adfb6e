"""The steps from the database to a published engine, written once: read the graph, featurise it, build
the tensors, fit a model, publish it. ``tailor train``, the demo and the experiments all go through here.

Library code: what it has to say goes to the ``log`` callback, long work to ``start_phase`` (progress bars
in the CLI), and failures are :mod:`engine.errors` types.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from neo4j import Driver

from engine.errors import DataError, NotPublishedError
from engine.published import EngineStore, ImageFeatures, Manifest, PublishedEngine
from engine.workspace import Workspace
from gnn.config import ExperimentConfig, FeatureConfig, GraphConfig, RankerConfig
from graphdb.export import export_graph
from readers.graph_records import GraphExport
from readers.progress import StartPhase, no_progress

Log = Callable[[str], None]


def _quiet(message: str) -> None:
    pass


@dataclass
class GraphFeatures:
    """Features for every node of an export, rows in export order, and what the encoders were."""

    arrays: dict[str, np.ndarray]  # node kind -> [n, dim]
    summaries: list[str]
    failed_images: list = field(default_factory=list)
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)  # image|text -> {config, name, dim}
    image_keys: dict[str, str] = field(default_factory=dict)  # image id -> content key of its features


@dataclass
class PreparedGraph:
    """A graph read from Neo4j with its node features: what every model is fitted on."""

    export: GraphExport
    features: GraphFeatures


def read_graph(driver: Driver, log: Log = _quiet) -> GraphExport:
    export = export_graph(driver)
    log(f"graph: {len(export.images):,} images, {len(export.captions):,} captions, "
        f"{len(export.attributes):,} attributes, {len(export.edges):,} edges "
        f"({export.seconds:.1f} s, {export.edges_per_second:,.0f} edges/s)")
    return export


def featurize_graph(export: GraphExport, ws: Workspace, features: FeatureConfig | None = None,
                    strict: bool = False, log: Log = _quiet, start_phase: StartPhase | None = None
                    ) -> GraphFeatures:
    """Features for every node, from the cache where possible. A failed image gets a zero vector in
    training (reported), so it still takes part in the graph through its attributes; it is never
    published (see :func:`publish`)."""
    from gnn.features.cache import FeatureCache
    from gnn.features.encoders import image_encoder, text_encoder
    from gnn.features.featurize import featurize_images, featurize_texts

    features = features or FeatureConfig()
    images = image_encoder(features.image_encoder)
    texts = text_encoder(features.text_encoder)
    image_result = featurize_images(
        [(r.id, r.image_path) for r in export.images], images,
        FeatureCache(ws.features, images.name, images.dim), strict=strict, start_phase=start_phase,
    )
    text_cache = FeatureCache(ws.features, texts.name, texts.dim)
    caption_result = featurize_texts([(c.id, c.text) for c in export.captions], texts, text_cache,
                                     strict=strict, start_phase=start_phase)
    attribute_result = featurize_texts([(a, a) for a in export.attributes], texts, text_cache, strict=strict,
                                       start_phase=start_phase)

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
        log(line)
    encoders = {"image": {"config": features.image_encoder, "name": images.name, "dim": images.dim},
                "text": {"config": features.text_encoder, "name": texts.name, "dim": texts.dim}}
    keys = dict(zip(image_result.ids, image_result.keys, strict=True))
    return GraphFeatures(arrays, summaries, image_result.failed, encoders, keys)


def prepare(driver: Driver, ws: Workspace, config: ExperimentConfig, log: Log = _quiet,
            start_phase: StartPhase | None = None) -> PreparedGraph:
    """The graph and its features (encoders from ``config.features``)."""
    export = read_graph(driver, log)
    if not export.images:
        raise DataError("the graph has no images: load a catalog first (tailor load catalog ...)")
    return PreparedGraph(export, featurize_graph(export, ws, config.features, log=log, start_phase=start_phase))


def require_attribute_source(export: GraphExport, name: str) -> None:
    """A graph model's attribute source must have edges in the graph; else say what to run."""
    from gnn.training.fit import GRAPH_SOURCES

    source = GRAPH_SOURCES.get(name)
    if source is None or source == "catalog" or source in export.attribute_sources():
        return
    how = {"predicted": "run `tailor attributes train` and `tailor attributes predict` first",
           "caption": "load the catalog with --caption-split"}.get(source, "add them first")
    raise DataError(f"{name} needs HAS_ATTRIBUTE edges with source '{source}': {how}")


def fit(prepared: PreparedGraph, name: str, config: ExperimentConfig, ws: Workspace, log: Log = _quiet,
        start_phase: StartPhase | None = None, splits: tuple[str, ...] = ("train",)) -> Any:
    """A model fitted on the prepared graph (or reused from its checkpoint): a
    :class:`gnn.training.fit.ModelRun`. ``splits`` the graph must have queries of."""
    from gnn.data.graph import build_graph_tensors
    from gnn.training.fit import fit_model, model_config

    require_attribute_source(prepared.export, name)
    config = model_config(name, config)
    g = build_graph_tensors(prepared.export, prepared.features.arrays, config.graph)
    missing = [s for s in splits if s not in g.queries]
    if missing:
        raise DataError(f"the graph has no {' or '.join(missing)} queries: load a catalog first "
                        "(tailor load catalog ...)")
    return fit_model(name, g, config, ws.checkpoints, log=log, start_phase=start_phase,
                     truth=prepared.export.image_attributes(("catalog",)),
                     encode_texts=text_encoding(ws, config, start_phase))


def text_encoding(ws: Workspace, config: ExperimentConfig, start_phase: StartPhase | None = None) -> Any:
    """Texts -> features with the config's text encoder, through the workspace's feature cache (what
    training featurises generated phrasings with)."""
    from gnn.features.featurize import cached_text_encoder

    return cached_text_encoder(ws.features, config.features.text_encoder, start_phase)


def second_stage(run: Any, export: GraphExport, config: RankerConfig, graph: GraphConfig, model_version: str,
                 image_features: ImageFeatures, ws: Workspace, log: Log = _quiet,
                 start_phase: StartPhase | None = None) -> Any:
    """The ranker that re-orders the model's answers (trained on its training queries, or reused) with the
    facts it reads from ``export``: a :class:`gnn.ranking.stage.SecondStage`, or None when it is off."""
    from gnn.ranking.facts import FactTable, fact_sources
    from gnn.ranking.stage import SecondStage
    from gnn.ranking.train import fit_ranker
    from gnn.training.evaluation import retriever_scorer

    if not config.enabled:
        return None
    sources = fact_sources(config, graph)
    facts = FactTable.from_export(export, sources, tags=config.tags)
    score = retriever_scorer(run.model, run.graph)
    ranker, _ = fit_ranker(run.name, model_version, facts, sources, run.graph, score, export.caption_roles(),
                           config, ws.checkpoints, log, start_phase)
    log(f"second stage: {len(facts):,} facts ({', '.join(sources)}"
        f"{' + tags' if config.tags else ''}), re-ranking the top {config.candidates}")
    return SecondStage(ranker, facts, sources, image_features)


def publish(run: Any, prepared: PreparedGraph, ws: Workspace, driver: Driver | None = None,
            log: Log = _quiet, start_phase: StartPhase | None = None,
            ranker: RankerConfig | None = None, retrieval: Any = None) -> PublishedEngine:
    """Make a fitted graph model the one search, query and the interactions use: a new engine generation
    (bundle, FAISS index, image features, the model, the second stage and its facts), and its embeddings
    written to Neo4j. ``ranker``: the second stage's config (default: the one saved with the model).
    ``retrieval`` (a :class:`gnn.config.RetrievalConfig`): how it searches and refreshes, else what the
    model was trained with (the defaults)."""
    import dataclasses

    import torch

    from engine.catalog import indexable, zero_rows
    from gnn.checkpoint import load_checkpoint
    from gnn.data.graph import build_graph_tensors
    from gnn.retrieval.search import QueryEngine, build_bundle, build_index

    checkpoint = load_checkpoint(run.checkpoint)
    version = checkpoint.version
    # An image whose features failed trained as zeros; it is not embedded as zeros for search: it stays
    # out of the index (reported) until a sync finds features for it.
    unindexed = {str(f.id): f"{f.reason}: {f.source}" for f in prepared.features.failed_images}
    for image_id in zero_rows([r.id for r in prepared.export.images], prepared.features.arrays["Image"]):
        unindexed.setdefault(image_id, "no image features")
    failed = set(unindexed)
    export, graph, image_matrix = prepared.export, run.graph, prepared.features.arrays["Image"]
    if failed:
        export, arrays = indexable(prepared.export, prepared.features.arrays, failed)
        graph, image_matrix = build_graph_tensors(export, arrays, checkpoint.config.graph), arrays["Image"]
        log(f"{len(failed):,} images without features left out of the index (first: {sorted(failed)[:5]}); "
            "fix their files, then run `tailor sync`")
    retrieval = retrieval or checkpoint.config.retrieval
    bundle = build_bundle(run.model, graph, version, [r.image_path for r in export.images],
                          dtype=getattr(torch, retrieval.layer_dtype))
    index = build_index(bundle, retrieval)
    config = checkpoint.config.to_dict()
    config["retrieval"] = dataclasses.asdict(retrieval)
    manifest = Manifest(generation=0, version=checkpoint.version, model_kind=run.name,
                        config=config, data=run.meta.get("data", {}), counts={},
                        encoders=prepared.features.encoders, unindexed=unindexed)
    keys = prepared.features.image_keys
    image_features = ImageFeatures([r.id for r in export.images], image_matrix,
                                   [keys.get(r.id, "") for r in export.images])
    stage = second_stage(run, export, ranker or checkpoint.config.ranker, checkpoint.config.graph, version,
                         image_features, ws, log, start_phase)
    searcher = QueryEngine(run.model, bundle, index, text_features_for(ws, manifest), stage,
                           looks=image_features)
    engine = PublishedEngine(manifest, checkpoint, searcher, image_features)
    folder = engine.save(EngineStore(ws.engine), model_file=run.checkpoint)
    log(f"index: {len(index):,} images -> {folder} (model version {version})")
    if driver is not None:
        from graphdb.embeddings import write_embeddings

        start = start_phase or no_progress
        write_embeddings(driver, "Image", bundle.image_ids, bundle.image_layers[-1].numpy(), version,
                         progress=start("embeddings -> Neo4j", len(bundle.image_ids)))
        write_embeddings(driver, "Attribute", bundle.attribute_names, bundle.attribute_layers[-1].numpy(),
                         version, progress=start("attribute embeddings", len(bundle.attribute_names)))
    return engine


def train_and_publish(driver: Driver, ws: Workspace, name: str, config: ExperimentConfig, log: Log = _quiet,
                      start_phase: StartPhase | None = None) -> PublishedEngine:
    """Read, featurise, fit (or reuse) and publish a graph model: what ``tailor train`` does."""
    from gnn.training.fit import GRAPH_SOURCES

    if name not in GRAPH_SOURCES:
        raise DataError(f"only graph models are published; choose one of {', '.join(GRAPH_SOURCES)}")
    prepared = prepare(driver, ws, config, log, start_phase)
    run = fit(prepared, name, config, ws, log, start_phase)
    return publish(run, prepared, ws, driver, log, start_phase, ranker=config.ranker)


def text_features_for(ws: Workspace, manifest: Manifest) -> Any:
    """Query text features for a published engine: the feature cache first, then the encoder it was
    trained with (built only on a miss)."""
    from gnn.features.cache import FeatureCache, TextFeatures
    from gnn.features.encoders import text_encoder

    text = manifest.encoders.get("text") or {}
    if not text:
        raise NotPublishedError(f"{ws.engine}: the published engine names no text encoder; run `tailor train`")
    return TextFeatures(FeatureCache(ws.features, text["name"], int(text["dim"])),
                        lambda: text_encoder(text["config"]))


def load_published(ws: Workspace, verify: bool = True, sources_only: bool = False) -> PublishedEngine:
    """The live generation of the workspace's published engine, with its text features (``sources_only``:
    just the model and image features, for a full sync to rebuild the rest)."""
    store = EngineStore(ws.engine)
    manifest = store.manifest()
    if sources_only:
        return PublishedEngine.load_sources(store, text_features_for(ws, manifest))
    return PublishedEngine.load(store, text_features_for(ws, manifest), verify=verify)
