"""`tailor attributes train | cv | colour-check | predict`: attributes predicted from images (paper appendix A.5, Table 5).

``train`` learns a classifier from the catalog attributes of train-split images and reports top-1
accuracy per kind on the test-split images; ``cv`` scores a configuration by group k-fold
cross-validation inside the train and val images (for comparing variants without reading the test split);
``colour-check`` sets the predictor's colour beside the plain check of DESIGN.md on the same images;
``predict`` writes its predictions above a threshold as
``HAS_ATTRIBUTE {source: 'predicted'}`` edges (replacing earlier predicted edges of the same images), the
edges ``tailor train --model graph_predicted`` learns from.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from cli.console import console, engine_errors
from cli.db import connect
from cli.options import DataDir, Uri, User
from cli.progress import phases
from engine.attributes import (
    cross_validate,
    default_checkpoint,
    input_features,
    predict_attributes,
    read_attribute_data,
    read_plain_colour,
    train_attributes,
)
from engine.workspace import Workspace
from gnn.config import AttributeConfig as AttributeDefaults
from gnn.config import FeatureConfig

if TYPE_CHECKING:
    from gnn.attributes.predictor import KindAccuracy, ThresholdRow

app = typer.Typer(help="Attributes predicted from images.", no_args_is_help=True)

Checkpoint = Annotated[
    Path | None,
    typer.Option("--checkpoint", help="Classifier file (default: $TAILOR_HOME/checkpoints/attributes.pt)."),
]
ImageModel = Annotated[str, typer.Option("--image-encoder", help="efficientnet-lite0 (offline) | resnet18")]
DEFAULT_IMAGE_ENCODER = FeatureConfig().image_encoder


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
Hidden = Annotated[int, typer.Option("--hidden", help="Shared hidden layer width; 0 = linear heads.")]
Calibrate = Annotated[bool, typer.Option("--calibrate/--no-calibrate", help=(
    "Temperature-scale each kind's confidences on the val images."))]
PerKind = Annotated[bool, typer.Option("--per-kind-stopping/--shared-stopping", help=(
    "Each kind's weights from the epoch of its own lowest val loss (--shared-stopping: one epoch for all)."))]
Refit = Annotated[bool, typer.Option("--refit/--no-refit", help=(
    "Once val has chosen each kind's epoch and temperature, train again on the train and val images for "
    "those epochs (--no-refit: the predictor val stopped)."))]
Ensemble = Annotated[int, typer.Option("--ensemble", min=1, help=(
    "Networks averaged for the colour kind (each its own initialisation and dropout); 1: one network."))]


@app.command()
def train(
    epochs: Annotated[
        int, typer.Option("--epochs", help="Most epochs (early stopping on val may end sooner).")
    ] = 200,
    seed: Annotated[int, typer.Option("--seed", help="Seed for repeatable runs.")] = 0,
    hidden: Hidden = AttributeDefaults.hidden,
    pixel_colour: PixelColour = AttributeDefaults.pixel_colour,
    calibrate: Calibrate = AttributeDefaults.calibrate,
    per_kind_stopping: PerKind = AttributeDefaults.per_kind_stopping,
    refit: Refit = AttributeDefaults.refit,
    ensemble: Ensemble = AttributeDefaults.ensemble,
    report: Annotated[Path | None, typer.Option("--report", help=(
        "Folder for a report (JSON, Markdown, reliability diagram)."))] = None,
    compare: Annotated[bool, typer.Option("--compare", help=(
        "Also train the predictor as it was before pixel colour (--cnn-only --no-calibrate --shared-stopping "
        "--no-refit) "
        "and report the two side by side."))] = False,
    checkpoint: Checkpoint = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Train on train-split catalog attributes; report top-1 accuracy per kind on test-split images."""
    from gnn.attributes.predictor import AttributeConfig

    config = AttributeConfig(epochs=epochs, seed=seed, hidden=hidden, pixel_colour=pixel_colour,
                             calibrate=calibrate, per_kind_stopping=per_kind_stopping, refit=refit,
                             ensemble=ensemble)

    def log(e) -> None:
        if e.epoch == 1 or e.epoch % 10 == 0:
            console.print(
                f"epoch {e.epoch:>3}: train loss {e.train_loss:.4f}, val loss {e.val_loss:.4f}, "
                f"val accuracy {100 * e.val_accuracy:.1f}% ({e.seconds:.2f} s)"
            )

    ws = Workspace.default()
    path = checkpoint or default_checkpoint(ws)
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        data = read_attribute_data(driver, ws, image_encoder, pixel_colour or compare, console.print, start)
    with engine_errors(), console.status("training the attribute classifier ..."):
        model, runs = train_attributes(data, config, path, compare, on_epoch=log)
    d, again = model.meta["data"], model.meta.get("refit")
    trained = (f"trained on {again['train']:,} train images ({again['val']:,} val chose each kind's epoch and "
               f"temperature), then again on both" if again else
               f"trained on {d['train']:,} train images ({d['val']:,} val for early stopping and calibration)")
    console.print(
        f"{trained}, "
        f"{d['units']} attribute values in {len(model.vocab)} kinds, input {' + '.join(n for n, _ in model.inputs)}; "
        f"best epoch {model.meta['best_epoch']} -> {path}"
    )
    from experiments.attributes import attribute_report, report_markdown, write_attribute_report
    from gnn.config import PREDICTED_EDGE_THRESHOLDS

    result = attribute_report(runs, data.splits, data.labels, data.names, PREDICTED_EDGE_THRESHOLDS)
    names = [name for name, _, _ in runs]
    for name in names:
        console.print(accuracy_table(f"{name}: accuracy on held-out (test-split) images",
                                     result.accuracy_rows(name)))
    console.print(threshold_rows_table("predicted edges on test images vs their catalog attributes (Table 5)",
                                       result.threshold_rows(names[-1])))
    for rel in result.reliability:
        if rel.kind == "colour":
            console.print(f"colour reliability on test images ({'calibrated' if rel.calibrated else 'raw'}): "
                          f"expected calibration error {100 * rel.expected_calibration_error:.1f} points")
    if report is not None:
        write_attribute_report(result, report)
        console.print(f"wrote {report / 'attributes.json'}, attributes.md, reliability.png")
        console.print(report_markdown(result))


@app.command()
def cv(
    folds: Annotated[int, typer.Option("--folds", min=2, help="Folds of product groups.")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the folds and of training.")] = 0,
    hidden: Hidden = AttributeDefaults.hidden,
    pixel_colour: PixelColour = AttributeDefaults.pixel_colour,
    calibrate: Calibrate = AttributeDefaults.calibrate,
    per_kind_stopping: PerKind = AttributeDefaults.per_kind_stopping,
    refit: Refit = AttributeDefaults.refit,
    ensemble: Ensemble = AttributeDefaults.ensemble,
    report: Annotated[Path | None, typer.Option("--report", help=(
        "Folder for cv.json (every out-of-fold prediction), cv.md and colour_mistakes.png."))] = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Score a predictor configuration by group k-fold cross-validation inside the train and val images:
    each grouped image is scored once by a predictor that saw no variant of its product. No test image is
    read, so variants can be compared here as often as needed and the test split scored once."""
    from rich.progress import Progress

    from experiments.attributes import confident_mistakes, cv_markdown, write_cv_report
    from gnn.attributes.predictor import AttributeConfig

    config = AttributeConfig(seed=seed, hidden=hidden, pixel_colour=pixel_colour, calibrate=calibrate,
                             per_kind_stopping=per_kind_stopping, refit=refit, ensemble=ensemble)
    ws = Workspace.default()
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        data = read_attribute_data(driver, ws, image_encoder, pixel_colour, console.print, start)
    with engine_errors(), Progress(console=console) as progress:
        task = progress.add_task(f"cross-validating in {folds} folds", total=folds)
        result = cross_validate(data, config, folds, on_fold=lambda done, _: progress.update(task, completed=done))
    console.print(accuracy_table(f"out of fold: {result.held_out:,} grouped train and val images, "
                                 f"{folds} folds of product groups ({result.seconds:.0f} s)", result.pooled()))
    for kind in ("colour", "article_type"):
        mean, se = result.fold_spread(kind)
        if mean:
            console.print(f"{kind} top-1 over folds: {100 * mean:.1f} ± {100 * se:.1f} (standard error)")
    if report is not None:
        from cli.pictures import Tile, render_grid

        write_cv_report(result, data.labels, data.ids, report)
        mistakes = confident_mistakes(result)
        render_grid([Tile(data.paths[p.row], f"{data.ids[p.row]}: {', '.join(p.truth)} -> {p.top3[0]} "
                          f"({100 * p.confidence[0]:.0f}%)") for p in mistakes], report / "colour_mistakes.png",
                    title="the most confident colour mistakes out of fold: catalog colour -> predicted")
        console.print(f"wrote {report / 'cv.json'}, cv.md, colour_mistakes.png")
        console.print(cv_markdown(result, data.labels))


@app.command("colour-check")
def colour_check(
    folds: Annotated[int, typer.Option("--folds", min=2, help="Folds of the two cross-validations.")] = 5,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help=(
        "Training seeds the test split is scored with (the --seed given, then the next ones)."))] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the folds and the first training seed.")] = 0,
    refit: Refit = AttributeDefaults.refit,
    ensemble: Ensemble = AttributeDefaults.ensemble,
    report: Annotated[Path | None, typer.Option("--report", help=(
        "Folder for colour_check.json and colour_check.md."))] = None,
    image_encoder: ImageModel = DEFAULT_IMAGE_ENCODER,
    uri: Uri = None,
    user: User = None,
    data_dir: DataDir = None,
) -> None:
    """Colour of this predictor against the plain check (foreground HSV histograms and RGB statistics with a
    logistic regression, DESIGN.md) on the same images: the test split, group cross-validation inside train
    and val, and cross-validation that holds out every product, ungrouped ones too (the plain check's own
    protocol); and this predictor's test colour over several training seeds."""
    from rich.progress import Progress

    from experiments.attributes import colour_check as check
    from experiments.attributes import colour_check_markdown, write_colour_check
    from gnn.attributes.predictor import AttributeConfig

    config = AttributeConfig(seed=seed, refit=refit, ensemble=ensemble)
    ws = Workspace.default()
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        data = read_attribute_data(driver, ws, image_encoder, True, console.print, start)
        plain = read_plain_colour(data, ws, console.print, start)
    features, inputs = input_features(data, True)
    with engine_errors(), Progress(console=console) as progress:
        task = progress.add_task("training and scoring", total=seeds + 2)

        def step(message: str) -> None:
            progress.console.print(message)
            progress.advance(task)

        try:
            result = check(features, inputs, plain, data.splits, data.groups, data.ids, data.labels, config,
                           folds=folds, seeds=seeds, on_step=step)
        except ValueError as exc:
            from engine.errors import DataError

            raise DataError(str(exc)) from exc
    console.print(colour_check_markdown(result))
    console.print(f"({result.seconds:.0f} s)")
    if report is not None:
        write_colour_check(result, report)
        console.print(f"wrote {report / 'colour_check.json'}, colour_check.md")


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
    from engine.errors import DataError
    from gnn.attributes.predictor import AttributePredictor

    start = time.perf_counter()
    ws = Workspace.default()
    path = checkpoint or default_checkpoint(ws)
    k = top_k or None
    with connect(uri, user, data_dir) as driver, engine_errors():
        if not path.exists():
            raise DataError(f"no attribute classifier at {path}: run `tailor attributes train` first")
        model = AttributePredictor.load(path)
        with phases() as start_phase:
            data = read_attribute_data(driver, ws, image_encoder, model.config.pixel_colour, console.print,
                                       start_phase)
        with console.status(f"classifying (cross-fitting the training images in {folds} folds) ...") as status:
            out = predict_attributes(
                driver, data, model, threshold, k, folds, batch_size,
                on_fold=lambda f, n: status.update(f"cross-fitting the training images: fold {f}/{n} done"))
    w = out.written
    console.print(
        f"predicted edges at >= {threshold:g}{f', top {k} per kind' if k else ''}: {w.edges:,} for "
        f"{w.images:,} images ({w.created:,} created, {w.deleted:,} deleted, {w.updated:,} updated, "
        f"{w.unchanged:,} unchanged; {w.images_changed:,} images changed, {w.batches} transactions, "
        f"{w.seconds:.1f} s; model {out.version})"
    )
    if out.skipped:
        console.print(f"[yellow]{out.skipped} images without features were skipped[/]")
    if w.unknown_attributes:
        console.print(f"[yellow]not in the graph, skipped:[/] {sorted(w.unknown_attributes)[:20]}")
    # Counts only: precision over all images would include the training images (see `train` for test).
    console.print(threshold_rows_table(f"predicted edges by threshold, all {len(data.ids) - out.skipped:,} "
                                       "images (Table 5)", out.rows))
    console.print("in the graph now: " + ", ".join(f">= {t:g}: {n:,}" for t, n in sorted(out.in_graph.items())))
    console.print(f"{len(data.ids):,} images in {time.perf_counter() - start:.1f} s: "
                  + ", ".join(f"{name} {sec:.1f} s" for name, sec in out.seconds.items()))


__all__ = ["accuracy_table", "app", "threshold_rows_table"]
