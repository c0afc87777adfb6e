"""`tailor query | tag | like | explain | sync`: people change the graph; answers change at once.

Each command opens an :class:`~engine.session.InteractiveSession` and prints what it returns (``--json``:
the same dict as one JSON object, as `tailor serve` returns it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cli.catalog import print_sync
from cli.console import console, engine_errors, print_json
from cli.db import connect
from cli.options import DataDir, Uri, User
from engine.session import InteractiveSession, explain_result
from engine.workspace import Workspace

Json = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
Who = Annotated[str, typer.Option("--who", help="Who is interacting (stored on the edges).")]
# Read by cli.client before this module loads: a running `tailor serve` answers unless --local is given.
Local = Annotated[bool, typer.Option("--local", help="Run here even when a `tailor serve` is running.")]


@contextmanager
def session(uri: str | None, user: str | None, data_dir: Path | None,
            repair: bool = False) -> Iterator[InteractiveSession]:
    """A session on the published model; an engine error becomes a clear CLI error. ``repair``: accept
    a damaged bundle or index, for a full sync to rebuild."""
    with connect(uri, user, data_dir) as driver, engine_errors():
        s = InteractiveSession(Workspace.default(), driver, repair=repair)
        try:
            yield s
        finally:
            s.close()


def _refreshed(out: dict) -> str:
    return (f"embeddings refreshed ({out['refresh']}): {out['changed_images']} images changed "
            f"({out['refresh_seconds']:.2f} s, then {out['save_seconds']:.2f} s writing the index)")


def query(
    image: Annotated[str, typer.Option("--image", help="Candidate product id.")],
    text: Annotated[str, typer.Option("--text", help="What to change.")],
    k: Annotated[int, typer.Option("-k")] = 10, who: Who = "cli", as_json: Json = False,
    picture: Annotated[Path | None, typer.Option("--picture")] = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None, local: Local = False,
) -> None:
    """Store a new query (a Caption node), answer it, and print its id for like/explain."""
    from cli.pictures import query_sheet

    with session(uri, user, data_dir) as s:
        out = s.query(image, text, k, who)
        path = query_sheet(s.engine.bundle, image, text, [r["id"] for r in out["results"]],
                           picture or s.ws.outputs / f"query-{out['query_id']}.png")
    out["picture"] = str(path)
    if as_json:
        print_json(out)
        return
    console.print(f"query [bold]{out['query_id']}[/]: {image} + \"{text}\" "
                  f"(added {out['roles']['added']}, removed {out['roles']['removed']})")
    for n, r in enumerate(out["results"], 1):
        console.print(f"{n:>3}. {r['id']:>8} {r['score']:.3f} {r['title']}")
        for reason in r["reasons"][:3]:
            console.print(f"        - {reason}", markup=False)
    console.print(f"picture: {path}")


def tag(
    sentence: Annotated[str, typer.Argument(help='e.g. "that shirt has long sleeves"')],
    image: Annotated[str, typer.Option("--image", help="The product the sentence is about.")],
    who: Who = "cli", as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
    local: Local = False,
) -> None:
    """More metadata: extract the attribute from a sentence and link it to the image (USER_TAGGED)."""
    with session(uri, user, data_dir) as s:
        if not s.extractor_trained:
            console.print("training the attribute tagger (once) ...")
        out = s.tag(sentence, image, who)
    if as_json:
        print_json(out)
        return
    for w in out["tags"]:
        console.print(f"tagged {image} with [bold]{w['attribute']}[/] ({w['source']}"
                      + (", new attribute" if w["new_attribute"] else "") + ")")
    console.print(_refreshed(out))


def like(
    query_id: Annotated[str, typer.Option("--query", help="Query id printed by `tailor query`.")],
    images: Annotated[str, typer.Option("--images", help="Comma-separated liked product ids.")],
    who: Who = "cli", as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
    local: Local = False,
) -> None:
    """I like that: link liked images to each other, to the query's caption and its candidate."""
    ids = [i.strip() for i in images.split(",") if i.strip()]
    with session(uri, user, data_dir) as s:
        out = s.like(query_id, ids, who)
    if as_json:
        print_json(out)
        return
    console.print(f"liked {len(ids)} images for {query_id}: created {out['created']}")
    console.print(_refreshed(out))
    console.print("the query answered again:")
    for n, r in enumerate(out["results"], 1):
        mark = "  <- liked" if r["id"] in ids else ""
        console.print(f"{n:>3}. {r['id']:>8} {r['score']:.3f} {r['title']}{mark}")


def explain_cmd(
    query_id: Annotated[str, typer.Option("--query")], result_id: Annotated[str, typer.Option("--result")],
    as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Why a result answers a query, in words, and the Cypher that draws it in Neo4j Browser."""
    with connect(uri, user, data_dir) as driver, engine_errors():
        out = explain_result(driver, query_id, result_id)
    if as_json:
        print_json(out)
        return
    for fact in out["facts"]:
        console.print(f"- {fact}")
    console.print("\nPaste into Neo4j Browser (style: cypher/browser-style.grass):")
    console.print(out["browser"], markup=False, highlight=False)


def sync(
    full: Annotated[bool, typer.Option("--full", help="Re-read the whole base graph (after Cypher edits that "
                                       "set no updated_at).")] = False,
    as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Bring embeddings and the index in line with the database (curator edits, interactions, and new,
    changed or retired products: their image features are computed here). `--full` also rebuilds a
    corrupt bundle or index from the model, the image features and the database."""
    from cli.progress import phases

    with session(uri, user, data_dir, repair=full) as s:
        if as_json:
            out = s.sync(full)
        else:
            with phases() as start:
                out = s.sync(full, start_phase=start)
    if as_json:
        print_json(out)
        return
    if out.get("repaired"):
        console.print("the published bundle and index were damaged: rebuilt from the model and the database")
    print_sync(out)


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(tag)
    app.command()(like)
    app.command("explain")(explain_cmd)
    app.command()(sync)
