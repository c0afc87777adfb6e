"""The `tailor` command line: thin commands over graphdb/ and gnn/."""

from __future__ import annotations

import os

import typer

from cli import attributes, db, experiments, interact, load, model

# Models ship inside packages; never reach for a hub unless the user turns this off.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(help="tailor: interactive, graph-based product-image retrieval.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(load.app, name="load")
model.register(app)

interact.register(app)
app.add_typer(attributes.app, name="attributes", help="Attributes predicted from images.")
app.add_typer(experiments.app, name="experiment")


@app.command()
def demo() -> None:
    """The main job end to end on the embedded default (local Neo4j)."""
    from cli.demo import run_demo

    run_demo()


def main() -> None:
    app()
