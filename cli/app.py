"""The `tailor` command line: thin commands over engine/ (and graphdb/ for loading and the local server)."""

from __future__ import annotations

import os
from pathlib import Path
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
    host: Annotated[str | None, typer.Option("--host", help="Address to bind (default 127.0.0.1; anything but "
                                             "loopback needs TAILOR_SERVE_TOKEN).")] = None,
    port: Annotated[int | None, typer.Option("--port", help="TCP port (default 8765).")] = None,
    allow_host: Annotated[list[str] | None, typer.Option("--allow-host", help="Another Host name to answer to "
                                                         "(besides loopback and --host); repeatable.")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="JSON overrides of the limits and timeouts "
                                                     "(engine.config.ServeConfig).")] = None,
    browser_url: Annotated[str | None, typer.Option("--browser-url", help="Neo4j Browser for the page's "
                                                    "explanation links (default: the local server's).")] = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """query / search / like / tag / explain / sync as JSON over HTTP, with the engine loaded once."""
    import dataclasses

    from cli.console import console, engine_errors, fail
    from cli.db import connect
    from cli.serve import neo4j_browser
    from cli.serve import serve as run_server
    from engine.config import ServeConfig
    from engine.session import InteractiveSession
    from engine.workspace import Workspace
    from graphdb.settings import DriverTimeouts
    from web.security import check_binding

    try:
        config = ServeConfig.from_file(config_file, host=host, port=port,
                                       allowed_hosts=tuple(allow_host) if allow_host else None,
                                       token=os.environ.get("TAILOR_SERVE_TOKEN") or None)
        check_binding(config)
    except ValueError as exc:
        raise fail(str(exc)) from exc
    config = dataclasses.replace(config, **neo4j_browser(uri, user, data_dir, browser_url))
    # Interactive timeouts: Neo4j down is a 503 within seconds, not a client left hanging.
    with connect(uri, user, data_dir, timeouts=DriverTimeouts.interactive()) as driver, engine_errors():
        session = InteractiveSession(Workspace.default(), driver, background_save=True, limits=config)
        try:
            caught_up = session.sync()  # writes made while no server ran (or before a crash) reach the index
            console.print(f"index in line with the database ({caught_up['refresh']}, "
                          f"{caught_up['changed_images']} images changed); loaded: {', '.join(session.warm_up())}")
            page = f"http://{config.host}:{config.port}/" + ("#token=<TAILOR_SERVE_TOKEN>" if config.token else "")
            console.print(f"tailor serving on http://{config.host}:{config.port} (Ctrl-C stops); the page: {page}")
            run_server(session, config, neo4j_uri=uri or os.environ.get("NEO4J_URI") or None)
        finally:
            session.close()


@app.command()
def demo() -> None:
    """The main job end to end on the embedded default (local Neo4j)."""
    from cli.demo import run_demo

    run_demo()


def main() -> None:
    app()
