"""`tailor query | tag | like | explain | sync`: people change the graph; answers change at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.console import console, fail, print_json
from cli.db import connect
from cli.live import LiveEngine
from cli.options import DataDir, Uri, User
from cli.workspace import Workspace

Json = Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")]
Who = Annotated[str, typer.Option("--who", help="Who is interacting (stored on the edges).")]


def _fallback_reasons(engine, result_id: str, roles) -> list[str]:
    """Reasons when the graph has no facts to give (e.g. an attribute-less product)."""
    b = engine.bundle
    asked = [f"asked for: {', '.join(roles.added)}"] if roles.added else []
    return [*asked, f"title: {b.image_titles[b.image_row[result_id]]}"]


def query(
    image: Annotated[str, typer.Option("--image", help="Candidate product id.")],
    text: Annotated[str, typer.Option("--text", help="What to change.")],
    k: Annotated[int, typer.Option("-k")] = 10, who: Who = "cli", as_json: Json = False,
    picture: Annotated[Path | None, typer.Option("--picture")] = None,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Store a new query (a Caption node), answer it, and print its id for like/explain."""
    from cli.pictures import Tile, render_query
    from graphdb.explain import explain
    from graphdb.interactions import UnknownNodeError, store_query

    ws = Workspace.default()
    live = LiveEngine(ws)
    engine = live.engine
    roles = engine.parse(text)
    with connect(uri, user, data_dir) as driver:
        try:
            query_id = store_query(driver, image, text, roles, who=who)
        except UnknownNodeError as exc:
            raise fail(str(exc)) from exc
        result = engine.search(image, text, k, roles=roles)
        reasons = {}
        for hit, _ in result.hits:
            facts = explain(driver, query_id, hit).facts
            reasons[hit] = facts or _fallback_reasons(engine, hit, roles)
    b = engine.bundle
    path = picture or ws.outputs / f"query-{query_id}.png"
    render_query(Tile(b.image_paths[b.image_row[image]], f"{image}: {b.image_titles[b.image_row[image]]}"), text,
                 [Tile(b.image_paths[b.image_row[i]], f"{n}. {i} {b.image_titles[b.image_row[i]]}")
                  for n, (i, _) in enumerate(result.hits, 1)], path)
    if as_json:
        print_json({"query_id": query_id, "candidate": image, "text": text,
                    "results": [{"id": i, "score": s, "reasons": reasons[i]} for i, s in result.hits],
                    "picture": str(path)})
        return
    console.print(f"query [bold]{query_id}[/]: {image} + \"{text}\" "
                  f"(added {list(roles.added)}, removed {list(roles.removed)})")
    for n, (i, score) in enumerate(result.hits, 1):
        console.print(f"{n:>3}. {i:>8} {score:.3f} {b.image_titles[b.image_row[i]]}")
        for reason in reasons[i][:3]:
            console.print(f"        - {reason}")
    console.print(f"picture: {path}")


def tag(
    sentence: Annotated[str, typer.Argument(help='e.g. "that shirt has long sleeves"')],
    image: Annotated[str, typer.Option("--image", help="The product the sentence is about.")],
    who: Who = "cli", as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """More metadata: extract the attribute from a sentence and link it to the image (USER_TAGGED)."""
    from graphdb.interactions import UnknownNodeError, tag_image

    ws = Workspace.default()
    live = LiveEngine(ws)
    extractor = _extractor(ws, live.engine.bundle.attribute_names)
    found = extractor.extract(sentence, vocabulary=live.engine.bundle.attribute_names)
    if not found:
        raise fail(f"no attribute found in {sentence!r}")
    written = []
    with connect(uri, user, data_dir) as driver:
        try:
            for item in found:
                r = tag_image(driver, image, item.phrase, who=who, phrase=sentence)
                written.append({"attribute": item.phrase, "source": item.source,
                                "new_attribute": r.created_attribute, "new_edge": r.created_edge})
        except UnknownNodeError as exc:
            raise fail(str(exc)) from exc
        report = live.sync(driver)
    live.flush()
    out = {"image": image, "tags": written, "changed_images": report.changed_images,
           "refresh_seconds": round(report.total, 3), "save_seconds": round(report.save_seconds, 3),
           "refresh": report.mode}
    if as_json:
        print_json(out)
        return
    for w in written:
        console.print(f"tagged {image} with [bold]{w['attribute']}[/] ({w['source']}"
                      + (", new attribute" if w["new_attribute"] else "") + ")")
    console.print(f"embeddings refreshed ({report.mode}): {report.changed_images} images changed "
                  f"({report.total:.2f} s, then {report.save_seconds:.2f} s writing the index)")


def like(
    query_id: Annotated[str, typer.Option("--query", help="Query id printed by `tailor query`.")],
    images: Annotated[str, typer.Option("--images", help="Comma-separated liked product ids.")],
    who: Who = "cli", as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """I like that: link liked images to each other, to the query's caption and its candidate."""
    from graphdb.interactions import UnknownNodeError
    from graphdb.interactions import like as write_like

    ids = [i.strip() for i in images.split(",") if i.strip()]
    ws = Workspace.default()
    live = LiveEngine(ws)
    with connect(uri, user, data_dir) as driver:
        try:
            result = write_like(driver, query_id, ids, who=who)
        except (UnknownNodeError, ValueError) as exc:
            raise fail(str(exc)) from exc
        report = live.sync(driver)
    live.flush()
    out = {"query_id": query_id, "liked": ids, "created": result.counts,
           "changed_images": report.changed_images, "refresh_seconds": round(report.total, 3),
           "save_seconds": round(report.save_seconds, 3), "refresh": report.mode}
    if as_json:
        print_json(out)
        return
    console.print(f"liked {len(ids)} images for {query_id}: created {result.counts}")
    console.print(f"embeddings refreshed ({report.mode}): {report.changed_images} images changed "
                  f"({report.total:.2f} s, then {report.save_seconds:.2f} s writing the index)")


def explain_cmd(
    query_id: Annotated[str, typer.Option("--query")], result_id: Annotated[str, typer.Option("--result")],
    as_json: Json = False, uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Why a result answers a query, in words, and the Cypher that draws it in Neo4j Browser."""
    from graphdb.explain import explain

    with connect(uri, user, data_dir) as driver:
        try:
            explanation = explain(driver, query_id, result_id)
        except LookupError as exc:
            raise fail(str(exc)) from exc
    if as_json:
        print_json({"query_id": query_id, "result": result_id, "facts": explanation.facts,
                    "cypher": explanation.cypher, "params": explanation.params})
        return
    for fact in explanation.facts:
        console.print(f"- {fact}")
    console.print("\nPaste into Neo4j Browser (style: cypher/browser-style.grass):")
    console.print(explanation.browser_text(), markup=False, highlight=False)


def sync(
    full: Annotated[bool, typer.Option("--full", help="Re-read the whole base graph (after Cypher edits that "
                                       "set no updated_at).")] = False,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Bring embeddings and the index in line with the database (curator edits, interactions)."""
    ws = Workspace.default()
    live = LiveEngine(ws)
    with connect(uri, user, data_dir) as driver:
        report = live.sync(driver, full=full)
    live.flush()
    console.print(f"{report.mode}: {report.changed_images} image embeddings changed, {report.new_attributes} new "
                  f"attributes; index updated in place ({report.total:.2f} s: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in report.seconds.items())
                  + f"; then saved in {report.save_seconds:.2f} s)")


def _extractor(ws: Workspace, vocabulary: list[str]):
    """The attribute tagger: trained once on the graph's vocabulary, kept under the workspace."""
    from gnn.extraction import AttributeExtractor

    folder = ws.home / "extractor"
    if folder.exists():  # written atomically by train(): present means complete
        return AttributeExtractor.load(folder)
    with console.status("training the attribute tagger (once) ..."):
        return AttributeExtractor.train(vocabulary, folder)


def register(app: typer.Typer) -> None:
    app.command()(query)
    app.command()(tag)
    app.command()(like)
    app.command("explain")(explain_cmd)
    app.command()(sync)
