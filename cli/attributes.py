"""`tailor attributes train | predict`: attributes predicted from images (paper appendix A.5, Table 5).

``train`` learns a classifier from the catalog attributes of train-split images and reports top-1
accuracy per kind on the test-split images; ``predict`` writes its predictions above a threshold as
``HAS_ATTRIBUTE {source: 'predicted'}`` edges (replacing earlier predicted edges of the same images), the
edges ``tailor train --model graph_predicted`` learns from.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
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
from gnn.config import AttributeConfig as AttributeDefaults

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
    inputs: list[tuple[str, int]] = field(default_factory=list)  # parts of a feature row: (name, width)
    seconds: dict[str, float] = field(default_factory=dict)  # reading and featurising, by step


def read_attribute_data(
    uri: str | None, user: str | None, data_dir: Path | None, image_model: str, pixel_colour: bool = False
) -> AttributeData:
    """Images, splits, catalog attributes by kind, and image features (from the cache): the CNN's, then
    (``pixel_colour``) the pixel colour features of :mod:`gnn.attributes.colour`, cached by file content."""
    from gnn.attributes.predictor import catalog_labels
    from graphdb.predicted import read_attribute_kinds

    ws = Workspace.default()
    clock = time.perf_counter()
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver, console.print)
        # Caption-split attributes (kind "caption", `load catalog --caption-split`) are title words, not
        # something to predict from pixels: the names they share with catalog values keep only their
        # catalog kinds.
        kinds_of = {name: [k for k in kinds if k != "caption"] for name, kinds in read_attribute_kinds(driver).items()}
    if not export.images:
        raise fail("the graph has no images: load a catalog first (tailor load catalog ...)")
    seconds = {"read the graph": time.perf_counter() - clock}
    with phases() as start:
        clock = time.perf_counter()
        image = featurize_graph(export, ws, FeatureConfig(image_encoder=image_model), log=console.print,
                                start_phase=start)
        features = image.arrays["Image"]
        inputs = [(image.encoders["image"]["name"], features.shape[1])]
        seconds["image features"] = time.perf_counter() - clock
        if pixel_colour:
            from gnn.attributes.colour import featurize_colour

            clock = time.perf_counter()
            colour = featurize_colour([(r.id, r.image_path) for r in export.images], ws.features,
                                      start_phase=start)
            console.print(colour.summary)
            features = np.concatenate([features, colour.features], axis=1)
            inputs.append((colour.name, colour.features.shape[1]))
            seconds["pixel colour features"] = time.perf_counter() - clock
    catalog = export.image_attributes(("catalog",))
    names = [catalog.get(r.id, set()) for r in export.images]
    return AttributeData(
        [r.id for r in export.images],
        [r.split for r in export.images],
        features,
        catalog_labels(names, kinds_of),
        names,
        inputs,
        seconds,
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
        ("top-1", "right"),
        ("top-3", "right"),
        ("family (near miss)", "right"),
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
            f"{100 * r.top3_accuracy:.1f}%",
            _pct(r.family_accuracy),
            f"{100 * r.majority_accuracy:.1f}%",
        )
    if results:
        mean = sum(r.accuracy for r in results) / len(results)
        table.add_row("[bold]mean[/]", "", "", "", f"[bold]{100 * mean:.1f}%[/]", "", "", "")
    return table


PixelColour = Annotated[bool, typer.Option("--pixel-colour/--cnn-only", help=(
    "Fuse the garment's pixel colour features with the CNN features (--cnn-only: the CNN features alone, "
    "the predictor before pixel colour)."))]
Calibrate = Annotated[bool, typer.Option("--calibrate/--no-calibrate", help=(
    "Temperature-scale each kind's confidences on the val images."))]
PerKind = Annotated[bool, typer.Option("--per-kind-stopping/--shared-stopping", help=(
    "Each kind's weights from the epoch of its own lowest val loss (--shared-stopping: one epoch for all)."))]


@app.command()
def train(
    epochs: Annotated[
        int, typer.Option("--epochs", help="Most epochs (early stopping on val may end sooner).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed for repeatable runs.")] = 0,
    hidden: Annotated[
        int, typer.Option("--hidden", help="Shared hidden layer width; 0 = linear heads.")
    ] = AttributeDefaults.hidden,
    pixel_colour: PixelColour = AttributeDefaults.pixel_colour,
    calibrate: Calibrate = AttributeDefaults.calibrate,
    per_kind_stopping: PerKind = AttributeDefaults.per_kind_stopping,
    report: Annotated[Path | None, typer.Option("--report", help=(
        "Folder for a report (JSON, Markdown, reliability diagram)."))] = None,
    compare: Annotated[bool, typer.Option("--compare", help=(
        "Also train the predictor as it was before pixel colour (--cnn-only --no-calibrate --shared-stopping) "
        "and report the two side by side."))] = False,
    checkpoint: Checkpoint = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Train on train-split catalog attributes; report top-1 accuracy per kind on test-split images."""
    from gnn.attributes.predictor import AttributeConfig, fit_attributes

    data = read_attribute_data(uri, user, data_dir, image_encoder, pixel_colour=pixel_colour or compare)
    config = AttributeConfig(epochs=epochs, seed=seed, hidden=hidden, pixel_colour=pixel_colour,
                             calibrate=calibrate, per_kind_stopping=per_kind_stopping)

    def log(e) -> None:
        if e.epoch == 1 or e.epoch % 10 == 0:
            console.print(
                f"epoch {e.epoch:>3}: train loss {e.train_loss:.4f}, val loss {e.val_loss:.4f}, "
                f"val accuracy {100 * e.val_accuracy:.1f}% ({e.seconds:.2f} s)"
            )

    features, inputs = input_features(data, pixel_colour)
    try:
        with console.status("training the attribute classifier ..."):
            model = fit_attributes(features, data.splits, data.labels, config, on_epoch=log, inputs=inputs)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    path = checkpoint or default_checkpoint(Workspace.default())
    model.save(path)
    d = model.meta["data"]
    console.print(
        f"trained on {d['train']:,} train images ({d['val']:,} val for early stopping and calibration), "
        f"{d['units']} attribute values in {len(model.vocab)} kinds, input {' + '.join(n for n, _ in inputs)}; "
        f"best epoch {model.meta['best_epoch']} -> {path}"
    )
    runs = [("this predictor", model, features)]
    if compare:
        old = AttributeConfig(epochs=epochs, seed=seed, hidden=hidden, pixel_colour=False, calibrate=False,
                              per_kind_stopping=False)
        old_features, old_inputs = input_features(data, False)
        with console.status("training the CNN-only predictor for comparison ..."):
            runs.insert(0, ("CNN only, uncalibrated", fit_attributes(old_features, data.splits, data.labels, old,
                                                                    inputs=old_inputs), old_features))
    from experiments.attributes import attribute_report, report_markdown, write_attribute_report

    result = attribute_report(runs, data.splits, data.labels, data.names, THRESHOLDS)
    for name, _, _ in runs:
        console.print(accuracy_table(f"{name}: accuracy on held-out (test-split) images",
                                     result.accuracy_rows(name)))
    console.print(threshold_rows_table("predicted edges on test images vs their catalog attributes (Table 5)",
                                       result.threshold_rows(runs[-1][0])))
    for rel in result.reliability:
        if rel.kind == "colour":
            console.print(f"colour reliability on test images ({'calibrated' if rel.calibrated else 'raw'}): "
                          f"expected calibration error {100 * rel.expected_calibration_error:.1f} points")
    if report is not None:
        write_attribute_report(result, report)
        console.print(f"wrote {report / 'attributes.json'}, attributes.md, reliability.png")
        console.print(report_markdown(result))


def input_features(data: AttributeData, pixel_colour: bool) -> tuple[np.ndarray, list[tuple[str, int]]]:
    """The classifier's input: the CNN features, then the pixel colour features when asked for."""
    if pixel_colour:
        return data.features, data.inputs
    width = data.inputs[0][1] if data.inputs else data.features.shape[1]
    return np.ascontiguousarray(data.features[:, :width]), data.inputs[:1]


@app.command()
def predict(
    threshold: Annotated[
        float, typer.Option("--threshold", min=0.0, max=1.0, help="Write edges at or above this confidence.")
    ] = 0.1,
    top_k: Annotated[int, typer.Option("--top-k", min=0, help=(
        "Edges per kind: its K most probable values (at or above --threshold), each weighted by its "
        "confidence; 0: every value above the threshold (with --threshold 0.5, at most one per kind)."))] = 3,
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
    """Predict attributes for every image and write them as HAS_ATTRIBUTE {source: 'predicted',
    confidence} edges (the graph models weigh each edge's messages by its confidence)."""
    from gnn.attributes.predictor import AttributePredictor, threshold_table
    from graphdb.predicted import predicted_edge_counts, write_predictions

    start = time.perf_counter()
    path = checkpoint or default_checkpoint(Workspace.default())
    if not path.exists():
        raise fail(f"no attribute classifier at {path}: run `tailor attributes train` first")
    model = AttributePredictor.load(path)
    data = read_attribute_data(uri, user, data_dir, image_encoder, pixel_colour=model.config.pixel_colour)
    features, inputs = input_features(data, model.config.pixel_colour)
    expected = model.inputs or [("features", model.net.in_dim)]
    if [d for _, d in inputs] != [d for _, d in expected]:
        raise fail(f"{path} was trained on {expected}, this workspace gives {inputs} "
                   f"(--image-encoder {image_encoder}): train it again")
    floor = min(threshold, *THRESHOLDS)
    k = top_k or None
    version = model.version
    clock = time.perf_counter()
    if folds:
        from gnn.attributes.predictor import cross_fitted_predictions

        with console.status(f"cross-fitting the training images ({folds} folds) ...") as status:
            preds = cross_fitted_predictions(
                features, data.splits, data.labels, model, folds, floor,
                on_fold=lambda f, n: status.update(f"cross-fitting the training images: fold {f}/{n} done"),
                top_k=k,
            )
        version = f"{model.version}-cv{folds}"
    else:
        preds = model.predict(features, min_confidence=floor, top_k=k)
    predicting = time.perf_counter() - clock
    # Images the featuriser could not read have no prediction and keep whatever predicted edges they had.
    by_image = {i: p for i, p, row in zip(data.ids, preds, features, strict=True) if np.any(row)}
    skipped = len(data.ids) - len(by_image)

    with connect(uri, user, data_dir) as driver:
        with console.status("writing predicted edges ..."):
            report = write_predictions(
                driver, by_image, threshold, model=version, batch_size=batch_size
            )
        in_graph = predicted_edge_counts(driver, sorted({*THRESHOLDS, threshold}))
    console.print(
        f"predicted edges at >= {threshold:g}{f', top {k} per kind' if k else ''}: {report.edges:,} for "
        f"{report.images:,} images ({report.created:,} created, {report.deleted:,} deleted, "
        f"{report.updated:,} updated, {report.unchanged:,} unchanged; {report.images_changed:,} images changed, "
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
    steps = {**data.seconds, "classify (cross-fitting included)": predicting, "write edges": report.seconds}
    console.print(f"{len(data.ids):,} images in {time.perf_counter() - start:.1f} s: "
                  + ", ".join(f"{name} {sec:.1f} s" for name, sec in steps.items()))


__all__ = [
    "AttributeData",
    "accuracy_table",
    "app",
    "default_checkpoint",
    "input_features",
    "read_attribute_data",
    "threshold_rows_table",
]
