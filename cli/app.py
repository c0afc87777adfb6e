"""The `tailor` command line: thin commands over engine/ (and graphdb/ for loading and the local server)."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli import attributes, catalog, db, experiments, interact, load, model
from cli.options import DataDir, Uri, User

# Models ship inside packages; never reach for a hub unless the user turns this off.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

app = typer.Typer(help="tailor: interactive, graph-based product-image retrieval.", no_args_is_help=True)
app.add_typer(db.app, name="db")
app.add_typer(load.app, name="load")
model.register(app)

interact.register(app)
catalog.register(app)
app.add_typer(attributes.app, name="attributes", help="Attributes predicted from images.")
app.add_typer(experiments.app, name="experiment")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback by default: no authentication).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """query / like / tag / explain / sync as JSON over HTTP, with the engine loaded once."""
    from cli.console import console, engine_errors
    from cli.db import connect
    from cli.serve import InteractionServer
    from engine.session import InteractiveSession
    from engine.workspace import Workspace

    with connect(uri, user, data_dir) as driver, engine_errors():
        server = InteractionServer(InteractiveSession(Workspace.default(), driver, background_save=True), host, port)
        console.print(f"tailor serving on http://{host}:{server.port} (Ctrl-C stops)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


@app.command()
def demo() -> None:
    """The main job end to end on the embedded default (local Neo4j)."""
    from cli.demo import run_demo

    run_demo()


def main() -> None:
    app()
