"""`tailor experiment more-metadata | likes | new-products`: the paper's interaction experiments (Tables 3
and 4), and products added after training (the daily catalog flow).

The paper's two start from the graph model over predicted attributes (trained, or reused from a
checkpoint, with its simulated training interactions) and simulate the interactions in memory: the
database is read, never written. ``new-products`` needs an empty database of its own: it loads the catalog
twice (see :mod:`experiments.new_products`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, engine_errors
from cli.db import connect
from cli.model import ConfigFile, Epochs, Seed, experiment_config
from cli.options import DataDir, Uri, User
from cli.progress import phases
from engine.workspace import Workspace

app = typer.Typer(help="The paper's interaction experiments on the loaded catalog.", no_args_is_help=True)
Out = Annotated[Path, typer.Option("--out", help="Folder for the JSON, Markdown and PNG report.")]
MODEL = "graph_predicted"


def _trained(epochs: int | None, seed: int | None, config_file: Path | None, uri, user, data_dir):
    """The predicted-attribute graph model (fitted or reused), the catalog attributes (the truth people
    tag) and each attribute's kind."""
    from engine.pipeline import fit, prepare

    ws = Workspace.default()
    config = experiment_config(epochs, seed, config_file)
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        prepared = prepare(driver, ws, config, console.print, start)
        run = fit(prepared, MODEL, config, ws, console.print, start, splits=("train", "test"))
    return run, prepared.export.image_attributes(("catalog",)), dict(prepared.export.attributes), config.train.seed


@app.command("more-metadata")
def more_metadata(out: Out = Path("out/more-metadata"), epochs: Epochs = None, seed: Seed = None,
                  config_file: ConfigFile = None, uri: Uri = None, user: User = None, data_dir: DataDir = None) -> None:
    """Table 3: tag the top 5 / top 15 attributes by frequency on every image and on half of them."""
    from experiments.interactions import more_metadata as run_experiment
    from experiments.interactions import more_metadata_markdown, write_more_metadata

    run, truth, kinds, seed = _trained(epochs, seed, config_file, uri, user, data_dir)
    with console.status("tagging and re-embedding (no training) ..."):
        rows = run_experiment(run.model, run.graph, truth, seed=seed, kinds=kinds)
    n = len(run.graph.queries["test"])
    info = (f"{MODEL} ({run.checkpoint.name}); {n:,} test queries; gallery: test images; tags are catalog "
            "attributes an image has, among the most frequent over all images")
    write_more_metadata(rows, out, info)
    console.print(more_metadata_markdown(rows, info))
    console.print(f"wrote {out / 'more_metadata.json'}, .md, .png")


@app.command("likes")
def likes(out: Out = Path("out/likes"), examples: Annotated[int, typer.Option(help="Simulated likes.")] = 1000,
          liked: Annotated[int, typer.Option(help="Images liked per example.")] = 10,
          epochs: Epochs = None, seed: Seed = None, config_file: ConfigFile = None,
          uri: Uri = None, user: User = None, data_dir: DataDir = None) -> None:
    """Table 4: each example likes the images nearest its target; recall and connection accuracy."""
    from experiments.interactions import likes as run_experiment
    from experiments.interactions import likes_markdown, write_likes

    run, _, _, seed = _trained(epochs, seed, config_file, uri, user, data_dir)
    with console.status("liking and re-embedding (no training) ..."):
        result = run_experiment(run.model, run.graph, examples, liked, seed=seed)
    info = (f"{MODEL} ({run.checkpoint.name}); {result.examples:,} test queries each liking the {liked} test "
            "images nearest its target in the model's embedding space (target and candidate excluded)")
    write_likes(result, out, info)
    console.print(likes_markdown(result, info))
    console.print(f"wrote {out / 'likes.json'}, .md, .png")


@app.command("new-products")
def new_products(
    catalog: Annotated[Path, typer.Argument(help="products.csv: loaded twice, first without the held-out groups")],
    out: Out = Path("out/new-products"),
    share: Annotated[float, typer.Option(help="Share of the test split's product groups held out.")] = 0.5,
    split_file: Annotated[Path | None, typer.Option(help="Where the composed queries are kept.")] = None,
    epochs: Epochs = None, seed: Seed = None, config_file: ConfigFile = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Products the model never saw: train without a share of product groups, add them (load + sync, no
    retraining), and rank their queries beside a retrained model and image-only. Needs an empty database."""
    from experiments.new_products import markdown, run_new_products, write_report

    ws = Workspace.default()
    config = experiment_config(epochs, seed, config_file)
    with connect(uri, user, data_dir) as driver, engine_errors(), phases() as start:
        report = run_new_products(driver, ws, catalog, split_file or ws.split_file(catalog), config, share,
                                  config.train.seed, console.print, start)
    write_report(report, out)
    console.print(markdown(report))
    console.print(f"wrote {out / 'new_products.json'}, .md, .png")
