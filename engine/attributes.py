"""Attributes predicted from images (paper appendix A.5, Table 5): the data a predictor learns from, its
training with the report, and the predicted edges written to Neo4j.

``read_attribute_data`` reads images, splits and catalog attributes from the graph and their features
(the CNN's, and the garment's pixel colour features); ``train_attributes`` fits the predictor on the train
split (optionally beside the CNN-only predictor it replaced) and evaluates on the test split;
``predict_attributes`` writes every image's predictions as ``HAS_ATTRIBUTE {source: 'predicted',
confidence}`` edges, training images cross-fitted so their edges are as noisy as test images'.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from neo4j import Driver

from engine.errors import DataError
from engine.pipeline import featurize_graph, read_graph
from engine.workspace import Workspace
from gnn.config import PREDICTED_EDGE_THRESHOLDS, FeatureConfig
from readers.progress import StartPhase

Log = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def default_checkpoint(ws: Workspace) -> Path:
    return ws.checkpoints / "attributes.pt"


@dataclass
class AttributeData:
    ids: list[str]
    splits: list[str]
    features: np.ndarray  # [images, dim]; zero rows for images the featuriser could not read
    labels: list[dict[str, set[str]]]  # per image: kind -> catalog attribute names
    names: list[set[str]]  # per image: catalog attribute names
    inputs: list[tuple[str, int]] = field(default_factory=list)  # parts of a feature row: (name, width)
    seconds: dict[str, float] = field(default_factory=dict)  # reading and featurising, by step
    groups: list[str] = field(default_factory=list)  # per image: its product group ("" for none)
    paths: list[str] = field(default_factory=list)  # per image: its photo's path, for reports


def read_attribute_data(driver: Driver, ws: Workspace, image_model: str, pixel_colour: bool = False,
                        log: Log = _quiet, start_phase: StartPhase | None = None) -> AttributeData:
    """Images, splits, catalog attributes by kind, and image features (from the cache): the CNN's, then
    (``pixel_colour``) the pixel colour features of :mod:`gnn.attributes.colour`, cached by file content."""
    from gnn.attributes.predictor import catalog_labels
    from graphdb.predicted import read_attribute_kinds

    clock = time.perf_counter()
    export = read_graph(driver, log)
    # Caption-split attributes (kind "caption", `load catalog --caption-split`) are title words, not
    # something to predict from pixels: the names they share with catalog values keep only their catalog kinds.
    kinds_of = {name: [k for k in kinds if k != "caption"] for name, kinds in read_attribute_kinds(driver).items()}
    if not export.images:
        raise DataError("the graph has no images: load a catalog first (tailor load catalog ...)")
    seconds = {"read the graph": time.perf_counter() - clock}
    clock = time.perf_counter()
    image = featurize_graph(export, ws, FeatureConfig(image_encoder=image_model), log=log, start_phase=start_phase)
    features = image.arrays["Image"]
    inputs = [(image.encoders["image"]["name"], features.shape[1])]
    seconds["image features"] = time.perf_counter() - clock
    if pixel_colour:
        from gnn.attributes.colour import featurize_colour

        clock = time.perf_counter()
        colour = featurize_colour([(r.id, r.image_path) for r in export.images], ws.features,
                                  start_phase=start_phase)
        log(colour.summary)
        features = np.concatenate([features, colour.features], axis=1)
        inputs.append((colour.name, colour.features.shape[1]))
        seconds["pixel colour features"] = time.perf_counter() - clock
    catalog = export.image_attributes(("catalog",))
    names = [catalog.get(r.id, set()) for r in export.images]
    return AttributeData([r.id for r in export.images], [r.split for r in export.images], features,
                         catalog_labels(names, kinds_of), names, inputs, seconds,
                         [r.group for r in export.images], [r.image_path for r in export.images])


def read_plain_colour(data: AttributeData, ws: Workspace, log: Log = _quiet,
                      start_phase: StartPhase | None = None) -> np.ndarray:
    """The plain check's colour features of every image (:func:`gnn.attributes.colour.plain_colour_features`),
    through the feature cache; zero rows for photos that cannot be read."""
    from gnn.attributes.colour import PlainColourEncoder, featurize_colour

    plain = featurize_colour(list(zip(data.ids, data.paths, strict=True)), ws.features, start_phase=start_phase,
                             encoder=PlainColourEncoder())
    log(plain.summary)
    return plain.features


def input_features(data: AttributeData, pixel_colour: bool) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The classifier's input: the CNN features, then the pixel colour features when asked for."""
    if pixel_colour:
        return data.features, data.inputs
    width = data.inputs[0][1] if data.inputs else data.features.shape[1]
    return np.ascontiguousarray(data.features[:, :width]), data.inputs[:1]


def train_attributes(data: AttributeData, config: Any, checkpoint: Path, compare: bool = False,
                     on_epoch: Callable[[Any], None] | None = None) -> tuple[Any, list[tuple[str, Any, np.ndarray]]]:
    """Fit the predictor (``config``: a :class:`gnn.config.AttributeConfig`) and save it to ``checkpoint``;
    with ``compare`` also the CNN-only, uncalibrated predictor it replaced. Returns the model and the runs to
    report, ``(name, model, its input features)``, the new predictor last (see ``experiments.attributes``)."""
    import dataclasses

    from gnn.attributes.predictor import fit_attributes

    features, inputs = input_features(data, config.pixel_colour)
    try:
        model = fit_attributes(features, data.splits, data.labels, config, on_epoch=on_epoch, inputs=inputs)
    except ValueError as exc:
        raise DataError(str(exc)) from exc
    model.save(checkpoint)
    runs = [("this predictor", model, features)]
    if compare:
        old = dataclasses.replace(config, pixel_colour=False, calibrate=False, per_kind_stopping=False,
                                  refit=False, ensemble=1)
        old_features, old_inputs = input_features(data, False)
        runs.insert(0, ("CNN only, uncalibrated",
                        fit_attributes(old_features, data.splits, data.labels, old, inputs=old_inputs), old_features))
    return model, runs


def cross_validate(data: AttributeData, config: Any, folds: int,
                   on_fold: Callable[[int, int], None] | None = None) -> Any:
    """Group k-fold cross-validation of the predictor ``config`` describes inside the train and val images
    (:mod:`gnn.attributes.validation`; no test image is read)."""
    from gnn.attributes.colour import colour_family
    from gnn.attributes.validation import cross_validate_attributes

    features, inputs = input_features(data, config.pixel_colour)
    try:
        return cross_validate_attributes(features, data.splits, data.groups, data.labels, config, folds,
                                         inputs=inputs, families={"colour": colour_family}, on_fold=on_fold)
    except ValueError as exc:
        raise DataError(str(exc)) from exc


@dataclass
class PredictionReport:
    written: Any  # graphdb.predicted's write report: edges created, deleted, updated, transactions
    rows: list  # Table 5 rows over every image predicted (counts only)
    in_graph: dict[float, int]  # predicted edges in the graph now, by confidence threshold
    version: str
    skipped: int  # images without features (they keep the predicted edges they had)
    seconds: dict[str, float]


def predict_attributes(driver: Driver, data: AttributeData, model: Any, threshold: float, top_k: int | None,
                       folds: int, batch_size: int, on_fold: Callable[[int, int], None] | None = None
                       ) -> PredictionReport:
    """Every image's predictions at or above ``threshold`` (``top_k`` per kind) written as predicted edges,
    replacing the earlier predicted edges of the same images. ``folds``: training images are predicted by
    classifiers trained on the other folds (0: by the classifier trained on them)."""
    from gnn.attributes.predictor import cross_fitted_predictions, threshold_table
    from graphdb.predicted import predicted_edge_counts, write_predictions

    features, inputs = input_features(data, model.config.pixel_colour)
    expected = model.inputs or [("features", model.net.in_dim)]
    if [d for _, d in inputs] != [d for _, d in expected]:
        raise DataError(f"the attribute classifier was trained on {expected}, this workspace gives {inputs}: "
                        "train it again (tailor attributes train)")
    floor = min(threshold, *PREDICTED_EDGE_THRESHOLDS)
    version = model.version
    clock = time.perf_counter()
    if folds:
        preds = cross_fitted_predictions(features, data.splits, data.labels, model, folds, floor,
                                         on_fold=on_fold, top_k=top_k)
        version = f"{model.version}-cv{folds}"
    else:
        preds = model.predict(features, min_confidence=floor, top_k=top_k)
    predicting = time.perf_counter() - clock
    # Images the featuriser could not read have no prediction and keep whatever predicted edges they had.
    by_image = {i: p for i, p, row in zip(data.ids, preds, features, strict=True) if np.any(row)}
    written = write_predictions(driver, by_image, threshold, model=version, batch_size=batch_size)
    in_graph = predicted_edge_counts(driver, sorted({*PREDICTED_EDGE_THRESHOLDS, threshold}))
    rows = threshold_table(list(by_image.values()), PREDICTED_EDGE_THRESHOLDS)
    seconds = {**data.seconds, "classify (cross-fitting included)": predicting, "write edges": written.seconds}
    return PredictionReport(written, rows, in_graph, version, len(data.ids) - len(by_image), seconds)
