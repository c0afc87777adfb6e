"""`tailor featurize | train | eval | search`: features, the graph model, the recall table, answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.console import console, fail, print_json
from cli.db import connect
from cli.options import DataDir, Uri, User
from cli.pipeline import featurize_graph, publish, read_graph
from cli.workspace import Workspace

if TYPE_CHECKING:
    from gnn.config import ExperimentConfig

ImageModel = Annotated[str, typer.Option("--image-encoder", help="efficientnet-lite0 (offline) | resnet18")]
TextModel = Annotated[str, typer.Option("--text-encoder", help="minilm (packaged) | a sentence-transformers name/path")]
Strict = Annotated[bool, typer.Option("--strict", help="A broken image is an error, not a report line.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Training budget (epochs; early stopping may end sooner).")]
Seed = Annotated[int, typer.Option("--seed", help="Seed for repeatable runs.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help=(
    'JSON overrides of the experiment config, e.g. {"simulation": {"enabled": false}} (see gnn/config.py).'))]


def featurize(
    image_encoder: ImageModel = "efficientnet-lite0", text_encoder: TextModel = "minilm", strict: Strict = False,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Encoder features for every node (images, captions, attributes), cached by content hash."""
    from gnn.featurize import FeaturizationError

    ws = Workspace.default()
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver)
    try:
        result = featurize_graph(export, ws, image_encoder, text_encoder, strict)
    except FeaturizationError as exc:
        raise fail(str(exc)) from exc
    for failure in result.failed_images[:20]:
        console.print(f"[yellow]failed[/] {failure.id}: {failure.source}: {failure.reason}")


def experiment_config(epochs: int | None, seed: int, path: Path | None = None) -> ExperimentConfig:
    """Defaults, then the JSON file's overrides, then --epochs and --seed."""
    import json

    from gnn.config import ExperimentConfig

    overrides = {}
    if path is not None:
        try:
            overrides = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise fail(f"{path}: {exc}") from exc
    try:
        config = ExperimentConfig.from_overrides(overrides)
    except (ValueError, TypeError) as exc:
        raise fail(f"{path}: {exc}") from exc
    config.train.seed = seed
    if epochs is not None:
        config.train.epochs = epochs
    return config


def train(
    model: Annotated[str, typer.Option(help="graph_catalog | graph_predicted | graph_caption")] = "graph_catalog",
    epochs: Epochs = None, seed: Seed = 0, config_file: ConfigFile = None,
    image_encoder: ImageModel = "efficientnet-lite0", text_encoder: TextModel = "minilm",
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Train the R-GCN (or reuse a checkpoint of the same config and data) and publish its index."""
    from gnn.experiment import GRAPH_SOURCES, fit_model, model_config
    from gnn.graph import build_graph_tensors

    if model not in GRAPH_SOURCES:
        raise fail(f"--model must be one of {', '.join(GRAPH_SOURCES)}")
    ws = Workspace.default()
    config = model_config(model, experiment_config(epochs, seed, config_file))
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver)
        features = featurize_graph(export, ws, image_encoder, text_encoder)
        g = build_graph_tensors(export, features.arrays, config.graph)
        if "train" not in g.queries:
            raise fail("the graph has no training queries: load a catalog first (tailor load catalog ...)")
        run = fit_model(model, g, config, ws.checkpoints, log=console.print,
                        truth=export.image_attributes(("catalog",)))
        publish(run, export, ws, features.arrays["Image"], driver)


def require_attribute_source(export, name: str) -> None:
    """Fail with what to run when a graph model's attribute source has no edges in the graph."""
    needs = {"graph_predicted": "predicted", "graph_caption": "caption"}
    have = {e.relation.split(":", 1)[1] for e in export.edges if e.relation.startswith("HAS_ATTRIBUTE:")}
    source = needs.get(name)
    if source is not None and source not in have:
        raise fail(f"{name} needs HAS_ATTRIBUTE edges with source '{source}'"
                   + (": run `tailor attributes train` and `tailor attributes predict` first"
                      if source == "predicted" else ": load with --caption-split"))


def evaluate(
    out: Annotated[Path, typer.Option("--out", help="Folder for recall.json, recall.md, recall.png")] = Path("out/eval"),
    models: Annotated[str, typer.Option(help="Comma-separated models to report.")] = (
        "image_only,tirg,composeae,oracle,graph_catalog,graph_predicted"),
    epochs: Epochs = None, seed: Seed = 0, config_file: ConfigFile = None,
    per_group: Annotated[int, typer.Option(help="Balanced set cap.")] = 20,
    image_encoder: ImageModel = "efficientnet-lite0", text_encoder: TextModel = "minilm",
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Every model on the same test queries (same features, same training budget): one table."""
    from gnn.experiment import ALL_MODELS, GRAPH_SOURCES, evaluate_models, markdown_table, write_report

    names = tuple(m.strip() for m in models.split(",") if m.strip())
    unknown = [m for m in names if m not in ALL_MODELS and m not in GRAPH_SOURCES]
    if unknown:
        raise fail(f"unknown models {unknown}; choose from {', '.join(ALL_MODELS + ('graph_caption',))}")
    ws = Workspace.default()
    config = experiment_config(epochs, seed, config_file)
    with connect(uri, user, data_dir) as driver:
        export = read_graph(driver)
    for name in names:
        require_attribute_source(export, name)
    features = featurize_graph(export, ws, image_encoder, text_encoder)
    report = evaluate_models(export, features.arrays, config, names, ws.checkpoints, per_group=per_group,
                             log=console.print)
    write_report(report, out)
    console.print(markdown_table(report))
    console.print(f"wrote {out / 'recall.json'}, {out / 'recall.md'}, {out / 'recall.png'}")


def search(
    image: Annotated[str, typer.Option("--image", help="Candidate product id.")],
    text: Annotated[str, typer.Option("--text", help='What to change, e.g. "replace blue with black".')],
    k: Annotated[int, typer.Option("-k", help="How many results.")] = 10,
    picture: Annotated[Path | None, typer.Option("--picture", help="PNG to write (default under $TAILOR_HOME/out).")] = None,
    target: Annotated[str | None, typer.Option("--target", help="Known target id, outlined in the picture.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Rank products for a candidate and a relative caption with the published graph model."""
    from cli.pictures import Tile, render_query
    from gnn.encoders import text_encoder as make_text_encoder

    ws = Workspace.default()
    engine = load_engine(ws, make_text_encoder("minilm"))
    try:
        result = engine.search(image, text, k)
    except KeyError as exc:
        raise fail(str(exc)) from exc
    bundle = engine.bundle
    path = picture or ws.outputs / f"search-{image}.png"
    render_query(
        Tile(bundle.image_paths[bundle.image_row[image]], f"{image}: {bundle.image_titles[bundle.image_row[image]]}"),
        text,
        [Tile(bundle.image_paths[bundle.image_row[i]], f"{n + 1}. {i} {bundle.image_titles[bundle.image_row[i]]}",
              "green" if i == target else None) for n, (i, _) in enumerate(result.hits)],
        path,
    )
    if as_json:
        print_json({"candidate": image, "text": text, "roles": dataclasses.asdict(result.roles),
                    "results": [{"id": i, "score": s} for i, s in result.hits], "picture": str(path)})
        return
    console.print(f"[bold]{image}[/] {bundle.image_titles[bundle.image_row[image]]}  +  \"{text}\"")
    console.print(f"parsed: added {list(result.roles.added)}, removed {list(result.roles.removed)}, "
                  f"mentioned {list(result.roles.mentioned)}  ({result.seconds * 1000:.1f} ms)")
    for n, (i, score) in enumerate(result.hits, 1):
        mark = "  <- target" if i == target else ""
        console.print(f"{n:>3}. {i:>8}  {score:.3f}  {bundle.image_titles[bundle.image_row[i]]}{mark}")
    console.print(f"picture: {path}")


def load_engine(ws: Workspace, text_encoder):
    """The published model, bundle and index (made by `tailor train`)."""
    return load_published(ws, text_encoder)[0]


def load_published(ws: Workspace, text_encoder):
    """The published engine and the checkpoint it was built from (its config, for refreshes)."""
    from gnn.checkpoint import load_checkpoint
    from gnn.index import ImageIndex
    from gnn.model import GraphRetriever
    from gnn.search import QueryEngine, SearchBundle

    if not ws.current_model.exists():
        raise fail(f"no trained model in {ws.index_dir}: run `tailor train` first")
    ckpt = load_checkpoint(ws.current_model)
    model = GraphRetriever(ckpt.in_dims, ckpt.relations, ckpt.config.model)
    model.load_state_dict(ckpt.state_dict)
    engine = QueryEngine(model, SearchBundle.load(ws.bundle), ImageIndex.load(ws.faiss), text_encoder)
    return engine, ckpt


def register(app: typer.Typer) -> None:
    app.command()(featurize)
    app.command()(train)
    app.command("eval")(evaluate)
    app.command()(search)


__all__ = ["register"]
