"""`tailor attributes train | predict`: attributes predicted from images (paper appendix A.5, Table 5).

``train`` learns a classifier from the catalog attributes of train-split images and reports top-1
accuracy per kind on the test-split images; ``predict`` writes its predictions above a threshold as
``HAS_ATTRIBUTE {source: 'predicted'}`` edges (replacing earlier predicted edges of the same images), the
edges ``tailor train --model graph_predicted`` learns from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer
from rich.table import Table

from cli.console import console, fail
from cli.db import connect
from cli.options import DataDir, Uri, User
from cli.progress import phases
from engine.pipeline import featurize_graph, read_graph
from engine.workspace import Workspace
from gnn.config import PREDICTED_EDGE_THRESHOLDS, FeatureConfig

if TYPE_CHECKING:
    from gnn.attributes.predictor import KindAccuracy, ThresholdRow

app = typer.Typer(help="Attributes predicted from images.", no_args_is_help=True)

Checkpoint = Annotated[
    Path | None,
    typer.Option("--checkpoint", help="Classifier file (default: $TAILOR_HOME/checkpoints/attributes.pt)."),
]
ImageModel = Annotated[str, typer.Option("--image-encoder", help="efficientnet-lite0 (offline) | resnet18")]
DEFAULT_IMAGE_ENCODER = FeatureConfig().image_encoder
THRESHOLDS = PREDICTED_EDGE_THRESHOLDS


def default_checkpoint(ws: Workspace) -> Path:
    return ws.checkpoints / "attributes.pt"


@dataclass
class AttributeData:
    ids: list[str]
    splits: list[str]
    features: np.ndarray  # [images, dim]; zero rows for images the featuriser could not read
    labels: list[dict[str, set[str]]]  # per image: kind -> catalog attribute names
    names: list[set[str]]  # per image: catalog attribute names


def read_attribute_data(
    uri: str | None, user: str | None, data_dir: Path | None, image_model: str
) -> AttributeData:
    """Images, splits, catalog attributes by kind, and image features (from the cache)."""
    from gnn.attributes.predictor import catalog_labels
    from graphdb.predicted import read_attribute_kinds

    ws = Workspace.default()
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver, console.print)
        kinds_of = read_attribute_kinds(driver)
    if not export.images:
        raise fail("the graph has no images: load a catalog first (tailor load catalog ...)")
    with phases() as start:
        features = featurize_graph(export, ws, FeatureConfig(image_encoder=image_model), log=console.print,
                                   start_phase=start).arrays["Image"]
    catalog = export.image_attributes(("catalog",))
    names = [catalog.get(r.id, set()) for r in export.images]
    return AttributeData(
        [r.id for r in export.images],
        [r.split for r in export.images],
        features,
        catalog_labels(names, kinds_of),
        names,
    )


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def threshold_rows_table(title: str, rows: list[ThresholdRow]) -> Table:
    """The Table 5 rows; precision and recall columns only when they were measured."""
    scored = any(r.precision is not None or r.recall is not None for r in rows)
    table = Table(title=title)
    for col in ("threshold", "edges", "images", "edges/image") + (("precision", "recall") if scored else ()):
        table.add_column(col, justify="right")
    for r in rows:
        cells = [f"{r.threshold:.1f}", f"{r.edges:,}", f"{r.images:,}", f"{r.per_image:.2f}"]
        table.add_row(*cells, *((_pct(r.precision), _pct(r.recall)) if scored else ()))
    return table


def accuracy_table(title: str, results: list[KindAccuracy]) -> Table:
    table = Table(title=title)
    for col, justify in (
        ("kind", "left"),
        ("head", "left"),
        ("values", "right"),
        ("images", "right"),
        ("accuracy", "right"),
        ("majority baseline", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        table.add_row(
            r.kind,
            r.mode,
            str(r.classes),
            f"{r.images:,}",
            f"{100 * r.accuracy:.1f}%",
            f"{100 * r.majority_accuracy:.1f}%",
        )
    if results:
        mean = sum(r.accuracy for r in results) / len(results)
        table.add_row("[bold]mean[/]", "", "", "", f"[bold]{100 * mean:.1f}%[/]", "")
    return table


@app.command()
def train(
    epochs: Annotated[
        int, typer.Option("--epochs", help="Most epochs (early stopping on val may end sooner).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed for repeatable runs.")] = 0,
    hidden: Annotated[
        int, typer.Option("--hidden", help="Shared hidden layer width; 0 = linear heads.")
    ] = 512,
    checkpoint: Checkpoint = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Train on train-split catalog attributes; report top-1 accuracy per kind on test-split images."""
    from gnn.attributes.predictor import AttributeConfig, evaluate_attributes, fit_attributes, threshold_table

    data = read_attribute_data(uri, user, data_dir, image_encoder)
    config = AttributeConfig(epochs=epochs, seed=seed, hidden=hidden)

    def log(e) -> None:
        if e.epoch == 1 or e.epoch % 10 == 0:
            console.print(
                f"epoch {e.epoch:>3}: train loss {e.train_loss:.4f}, val loss {e.val_loss:.4f}, "
                f"val accuracy {100 * e.val_accuracy:.1f}% ({e.seconds:.2f} s)"
            )

    try:
        with console.status("training the attribute classifier ..."):
            model = fit_attributes(data.features, data.splits, data.labels, config, on_epoch=log)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    path = checkpoint or default_checkpoint(Workspace.default())
    model.save(path)
    d = model.meta["data"]
    console.print(
        f"trained on {d['train']:,} train images ({d['val']:,} val for early stopping), "
        f"{d['units']} attribute values in {len(model.vocab)} kinds; best epoch "
        f"{model.meta['best_epoch']} -> {path}"
    )

    results = evaluate_attributes(model, data.features, data.splits, data.labels, "test")
    console.print(accuracy_table("top-1 accuracy on held-out (test-split) images", results))

    test = [i for i, s in enumerate(data.splits) if s == "test"]
    if test:
        known = {name for kv in model.vocab for name in kv.values}
        preds = model.predict(data.features[test], min_confidence=min(THRESHOLDS))
        rows = threshold_table(preds, THRESHOLDS, [data.names[i] for i in test], known)
        console.print(
            threshold_rows_table("predicted edges on test images vs their catalog attributes", rows)
        )


@app.command()
def predict(
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Write edges at or above this confidence.")
    ] = 0.5,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per transaction.")] = 1000,
    folds: Annotated[int, typer.Option("--folds", min=0, help=(
        "Cross-fitting: training images are predicted by classifiers trained on the other folds, so their "
        "edges are as noisy as test images' (0: predict them with the classifier trained on them)."))] = 5,
    checkpoint: Checkpoint = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Predict attributes for every image and write them as HAS_ATTRIBUTE {source: 'predicted'} edges."""
    from gnn.attributes.predictor import AttributePredictor, threshold_table
    from graphdb.predicted import predicted_edge_counts, write_predictions

    path = checkpoint or default_checkpoint(Workspace.default())
    if not path.exists():
        raise fail(f"no attribute classifier at {path}: run `tailor attributes train` first")
    model = AttributePredictor.load(path)
    data = read_attribute_data(uri, user, data_dir, image_encoder)
    if data.features.shape[1] != int(model.net.mean.shape[0]):
        raise fail(
            f"{path} was trained on {int(model.net.mean.shape[0])}-d features, "
            f"--image-encoder {image_encoder} gives {data.features.shape[1]}-d"
        )
    floor = min(threshold, *THRESHOLDS)
    version = model.version
    if folds:
        from gnn.attributes.predictor import cross_fitted_predictions

        with console.status(f"cross-fitting the training images ({folds} folds) ...") as status:
            preds = cross_fitted_predictions(
                data.features, data.splits, data.labels, model, folds, floor,
                on_fold=lambda k, n: status.update(f"cross-fitting the training images: fold {k}/{n} done"),
            )
        version = f"{model.version}-cv{folds}"
    else:
        preds = model.predict(data.features, min_confidence=floor)
    # Images the featuriser could not read have no prediction and keep whatever predicted edges they had.
    by_image = {i: p for i, p, row in zip(data.ids, preds, data.features, strict=True) if np.any(row)}
    skipped = len(data.ids) - len(by_image)

    with connect(uri, user, data_dir) as driver:
        with console.status("writing predicted edges ..."):
            report = write_predictions(
                driver, by_image, threshold, model=version, batch_size=batch_size
            )
        in_graph = predicted_edge_counts(driver, sorted({*THRESHOLDS, threshold}))
    console.print(
        f"predicted edges at >= {threshold:g}: {report.edges:,} for {report.images:,} images "
        f"({report.created:,} created, {report.deleted:,} deleted, {report.updated:,} updated, "
        f"{report.unchanged:,} unchanged; {report.images_changed:,} images changed, "
        f"{report.batches} transactions, {report.seconds:.1f} s; model {version})"
    )
    if skipped:
        console.print(f"[yellow]{skipped} images without features were skipped[/]")
    if report.unknown_attributes:
        console.print(f"[yellow]not in the graph, skipped:[/] {sorted(report.unknown_attributes)[:20]}")
    # Counts only: precision over all images would include the training images (see `train` for test).
    rows = threshold_table(list(by_image.values()), THRESHOLDS)
    table = threshold_rows_table(
        f"predicted edges by threshold, all {len(by_image):,} images (Table 5)", rows
    )
    console.print(table)
    console.print("in the graph now: " + ", ".join(f">= {t:g}: {n:,}" for t, n in sorted(in_graph.items())))


__all__ = [
    "AttributeData",
    "accuracy_table",
    "app",
    "default_checkpoint",
    "read_attribute_data",
    "threshold_rows_table",
]
