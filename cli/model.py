"""`tailor featurize | train | eval | search`: features, the graph model, the recall table, answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import console, engine_errors, fail, print_json
from cli.db import connect
from cli.options import DataDir, Uri, User
from cli.progress import phases
from engine.workspace import Workspace

if TYPE_CHECKING:
    from gnn.config import ExperimentConfig

ImageModel = Annotated[str | None, typer.Option("--image-encoder", help=(
    "efficientnet-lite0 (offline, the default) | resnet18; default: the config's"))]
TextModel = Annotated[str | None, typer.Option("--text-encoder", help=(
    "minilm (packaged, the default) | a sentence-transformers name/path; default: the config's"))]
Strict = Annotated[bool, typer.Option("--strict", help="A broken image is an error, not a report line.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Training budget (epochs; early stopping may end sooner).")]
Seed = Annotated[int | None, typer.Option("--seed", help="Seed for repeatable runs (default: the config's).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help=(
    'JSON overrides of the experiment config, e.g. {"simulation": {"enabled": false}} (see gnn/config.py).'))]


def experiment_config(epochs: int | None, seed: int | None, path: Path | None = None,
                      image_encoder: str | None = None, text_encoder: str | None = None) -> ExperimentConfig:
    """Defaults, then the JSON file's overrides, then the command line's."""
    from gnn.config import ExperimentConfig

    try:
        config = ExperimentConfig.from_file(path, epochs=epochs, seed=seed)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    if image_encoder:
        config.features.image_encoder = image_encoder
    if text_encoder:
        config.features.text_encoder = text_encoder
    return config


def featurize(
    image_encoder: ImageModel = None, text_encoder: TextModel = None, strict: Strict = False,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Encoder features for every node (images, captions, attributes), cached by content hash."""
    from engine.pipeline import featurize_graph, read_graph
    from gnn.features.featurize import FeaturizationError

    config = experiment_config(None, None, None, image_encoder, text_encoder)
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver, console.print)
    try:
        with phases() as start:
            result = featurize_graph(export, Workspace.default(), config.features, strict, console.print, start)
    except FeaturizationError as exc:
        raise fail(str(exc)) from exc
    for failure in result.failed_images[:20]:
        console.print(f"[yellow]failed[/] {failure.id}: {failure.source}: {failure.reason}")


def train(
    model: Annotated[str, typer.Option(help="graph_catalog | graph_predicted | graph_caption")] = "graph_catalog",
    epochs: Epochs = None, seed: Seed = None, config_file: ConfigFile = None,
    image_encoder: ImageModel = None, text_encoder: TextModel = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Train the R-GCN (or reuse a checkpoint of the same config and data) and publish it."""
    from engine.pipeline import train_and_publish

    config = experiment_config(epochs, seed, config_file, image_encoder, text_encoder)
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        train_and_publish(driver, Workspace.default(), model, config, console.print, start)


def evaluate(
    out: Annotated[Path, typer.Option("--out", help="Folder for recall.json, recall.md, recall.png")] = Path("out/eval"),
    models: Annotated[str, typer.Option(help="Comma-separated models to report.")] = (
        "image_only,tirg,composeae,oracle,graph_catalog,graph_predicted,two_stage_catalog,two_stage_predicted,"
        "two_stage_catalog_embedding_only,two_stage_catalog_facts_only"),
    epochs: Epochs = None, seed: Seed = None, config_file: ConfigFile = None,
    per_group: Annotated[int | None, typer.Option(help="Balanced set cap (default: the config's).")] = None,
    paraphrases: Annotated[bool, typer.Option("--paraphrases", help=(
        "Instead: the graph model on the test queries in every held-apart phrasing and on the hand-written "
        "shopper captions, parser on and off, beside the template and image-only (paraphrases.* and "
        "shopper.* in --out)."))] = False,
    limit: Annotated[int | None, typer.Option(help="--paraphrases: at most this many test queries (seeded).")] = None,
    image_encoder: ImageModel = None, text_encoder: TextModel = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Every model on the same test queries (same features, same training budget): one table."""
    from engine.pipeline import prepare, require_attribute_source, text_encoding

    if paraphrases:
        return _paraphrases(out, epochs, seed, config_file, limit, image_encoder, text_encoder, uri, user, data_dir)
    from experiments.recall_table import ALL_MODELS, evaluate_models, markdown_table, write_report
    from gnn.training.fit import GRAPH_SOURCES

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in names if m not in ALL_MODELS and m not in GRAPH_SOURCES]
    if unknown:
        raise fail(f"unknown models {unknown}; choose from {', '.join(dict.fromkeys(ALL_MODELS + tuple(GRAPH_SOURCES)))}")
    ws = Workspace.default()
    config = experiment_config(epochs, seed, config_file, image_encoder, text_encoder)
    if per_group is not None:
        config.eval.per_group = per_group
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        prepared = prepare(driver, ws, config, console.print, start)
        for name in names:
            require_attribute_source(prepared.export, name)
        report = evaluate_models(prepared.export, prepared.features.arrays, config, names, ws.checkpoints,
                                 log=console.print, start_phase=start,
                                 encode_texts=text_encoding(ws, config, start))
    write_report(report, out)
    console.print(markdown_table(report))
    console.print(f"wrote {out / 'recall.json'}, {out / 'recall.md'}, {out / 'recall.png'}")


def _paraphrases(out: Path, epochs: int | None, seed: int | None, config_file: Path | None, limit: int | None,
                 image_encoder: str | None, text_encoder: str | None, uri, user, data_dir) -> None:
    from engine.pipeline import fit, prepare, text_encoding
    from experiments.paraphrases import paraphrase_report, shopper_report, write_paraphrases, write_shopper

    ws = Workspace.default()
    config = experiment_config(epochs, seed, config_file, image_encoder, text_encoder)
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        prepared = prepare(driver, ws, config, console.print, start)
        run = fit(prepared, "graph_catalog", config, ws, console.print, start, splits=("train", "test"))
        encode = text_encoding(ws, config, start)
        report = paraphrase_report(run.model, run.graph, encode, limit=limit)
        write_paraphrases(report, out)
        try:
            shopper = shopper_report(run.model, run.graph, encode)
        except ValueError as exc:
            shopper = None
            console.print(f"[yellow]shopper captions skipped:[/] {exc}")
        if shopper is not None:
            write_shopper(shopper, out)
        console.rule("free text on the trained model (pictures as the demo draws them)")
        _free_text_on(run, prepared, ws, seed or 0)
    console.print((out / "paraphrases.md").read_text(encoding="utf-8"))
    if shopper is not None:
        console.print((out / "shopper.md").read_text(encoding="utf-8"))
    console.print(f"wrote {out}/paraphrases.{{json,md,png}}" + (f" and {out}/shopper.{{json,md,png}}" if shopper else ""))


def _free_text_on(run, prepared, ws: Workspace, seed: int) -> None:
    """The demo's free-text queries on a model fitted in memory (no published engine needed)."""
    from cli.demo import _free_text
    from engine.pipeline import text_features_for
    from engine.published import ImageFeatures, Manifest
    from gnn.retrieval.search import QueryEngine, build_bundle, build_index

    export = prepared.export
    bundle = build_bundle(run.model, run.graph, "eval", [r.image_path for r in export.images])
    manifest = Manifest(generation=0, version="eval", model_kind=run.name, config={}, data={}, counts={},
                        encoders=prepared.features.encoders)
    looks = ImageFeatures([r.id for r in export.images], prepared.features.arrays["Image"])
    engine = QueryEngine(run.model, bundle, build_index(bundle), text_features_for(ws, manifest), looks=looks)
    test = [{"id": c.id, "candidate": c.candidate, "text": c.text, "target": c.target} for c in export.captions
            if c.split == "test" and c.candidate and c.target]
    _free_text(engine, test, seed, ws)


def search(
    image: Annotated[str, typer.Option("--image", help="Candidate product id.")],
    text: Annotated[str, typer.Option("--text", help='What to change, e.g. "replace blue with black".')],
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    picture: Annotated[Path | None, typer.Option("--picture", help="PNG to write (default under $TAILOR_HOME/out).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Known target id, outlined in the picture.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Rank products for a candidate and a relative caption with the published graph model."""
    from cli.pictures import query_sheet
    from engine.catalog import not_indexed_message
    from engine.pipeline import load_published

    ws = Workspace.default()
    with engine_errors():
        published = load_published(ws)
    engine = published.searcher
    if image not in engine.bundle.image_row:
        raise fail(not_indexed_message(published, image, None), 2)
    result = engine.search(image, text, k)
    bundle = engine.bundle
    path = query_sheet(bundle, image, text, [i for i, _ in result.hits], picture or ws.outputs / f"search-{image}.png",
                       target=target)
    if as_json:
        reasons = result.reasons or [[] for _ in result.hits]
        print_json({"candidate": image, "text": text, "roles": dataclasses.asdict(result.roles),
                    "results": [{"id": i, "score": s, "reasons": [str(r) for r in why]}
                                for (i, s), why in zip(result.hits, reasons, strict=True)],
                    "reranked": result.reranked, "picture": str(path)})
        return
    console.print(f"[bold]{image}[/] {bundle.image_titles[bundle.image_row[image]]}  +  \"{text}\"")
    console.print(f"parsed: added {list(result.roles.added)}, removed {list(result.roles.removed)}, "
                  f"mentioned {list(result.roles.mentioned)}  ({result.seconds * 1000:.1f} ms)")
    if result.fallback:
        console.print("[yellow]no change understood in the text: ranked by looks alone (image similarity)[/]")
    for n, (i, score) in enumerate(result.hits, 1):
        mark = "  <- target" if i == target else ""
        console.print(f"{n:>3}. {i:>8}  {score:.3f}  {bundle.image_titles[bundle.image_row[i]]}{mark}")
        for reason in (result.reasons[n - 1][:2] if result.reasons else []):
            console.print(f"        - {reason}", markup=False)
    console.print(f"picture: {path}")


def register(app: typer.Typer) -> None:
    app.command()(featurize)
    app.command()(train)
    app.command("eval")(evaluate)
    app.command()(search)


__all__ = ["register"]
