"""`tailor demo`: the main job end to end on the local Neo4j, in a few minutes on a laptop.

Starts (or reuses) the local server, loads a slice of myntra-small with its composed queries, computes
features, trains the R-GCN briefly, publishes it, answers a few test queries with pictures, and runs the
interactive loop (a stored query, a like, a tag, an explanation). Settings: :class:`engine.config.DemoConfig`.
"""

from __future__ import annotations

import random
import re

from cli.console import console, engine_errors, print_counts
from cli.db import connect
from cli.pictures import query_sheet
from cli.progress import phases
from engine.config import DemoConfig
from engine.workspace import Workspace
from graphdb.stats import graph_summary


def run_demo(demo: DemoConfig | None = None) -> None:
    from engine.pipeline import train_and_publish
    from gnn.config import ExperimentConfig
    from graphdb.loaders import load_catalog

    demo = demo or DemoConfig()
    if not demo.catalog.is_file():
        raise SystemExit(f"{demo.catalog}: not found (the demo reads myntra-small from ../shared/datasets; "
                         "TAILOR_DATASETS points elsewhere)")
    ws = Workspace.default()
    console.rule(f"tailor demo: {demo.limit:,} products of {demo.catalog.parent.name}")
    config = ExperimentConfig.from_file(None, epochs=demo.epochs, seed=demo.seed, patience=demo.patience)
    with connect() as driver, engine_errors():
        with phases() as start:
            summary = load_catalog(driver, demo.catalog, ws.split_file(demo.catalog, demo.limit), limit=demo.limit,
                                   start_phase=start)
        console.print(f"loaded: {summary.created:,} nodes and relationships created "
                      f"({summary.relationships_per_second:,.0f} relationships/s)")
        print_counts("composed queries by split", summary.query_counts.get("by_split", {}), "split")
        graph = graph_summary(driver)
        print_counts("graph: nodes", graph.nodes, "label")
        print_counts("graph: relationships", graph.relationships, "type")
        with phases() as start:
            engine = train_and_publish(driver, ws, demo.model, config, console.print, start).searcher
        test = _test_queries(driver)

    b = engine.bundle
    for caption in random.Random(demo.seed).sample(test, min(demo.queries, len(test))):
        result = engine.search(caption["candidate"], caption["text"], k=10)
        ranked = [i for i, _ in result.hits]
        rank = ranked.index(caption["target"]) + 1 if caption["target"] in ranked else None
        console.print(f"\n[bold]{caption['candidate']}[/] {b.image_titles[b.image_row[caption['candidate']]]} + "
                      f"\"{caption['text']}\" -> target {caption['target']} "
                      + (f"[green]found at rank {rank}[/]" if rank else "[yellow]not in the top 10[/]")
                      + f" ({result.seconds * 1000:.0f} ms)")
        for n, (i, score) in enumerate(result.hits[:5], 1):
            console.print(f"  {n}. {i} {score:.3f} {b.image_titles[b.image_row[i]]}")
        path = query_sheet(b, caption["candidate"], caption["text"], ranked,
                           ws.outputs / f"demo-{re.sub(r'[^A-Za-z0-9_.-]+', '_', caption['id'])}.png",
                           target=caption["target"])
        console.print(f"  picture: {path}")

    console.rule("free text: what shoppers type")
    _free_text(engine, test, demo.seed, ws)

    console.rule("interactions: a stored query, a like, a tag, an explanation")
    _interact(ws, test[0]["candidate"], test[0]["text"], demo.tag_sentence)


def _free_text(engine, test: list[dict], seed: int, ws: Workspace) -> None:
    """One colour-change test query asked the way people type it, none of them a training phrasing: a
    contrast, a swap with a typo, and "something like this but not <colour>" (which names no target)."""
    colour = [c for c in test if c["id"].startswith("colour:")]
    if not colour:
        return
    caption = random.Random(seed + 1).choice(colour)
    template = engine.parse(caption["text"])
    if not (template.added and template.removed):
        return
    source, target = template.removed[0], template.added[0]
    b = engine.bundle
    console.print(f"[bold]{caption['candidate']}[/] {b.image_titles[b.image_row[caption['candidate']]]}; "
                  f"catalog caption \"{caption['text']}\", target {caption['target']}")
    for text in (f"same thing in {target}, not {source}", f"swapp the {source} for {_misspelt(target)}",
                 f"something like this but not {source}"):
        result = engine.search(caption["candidate"], text, k=10)
        ranked = [i for i, _ in result.hits]
        rank = ranked.index(caption["target"]) + 1 if caption["target"] in ranked else None
        other = sum(source not in b.image_titles[b.image_row[i]].lower() for i in ranked)
        console.print(f"  \"{text}\": added {list(result.roles.added)}, removed {list(result.roles.removed)}"
                      + (" [yellow](nothing understood: ranked by looks)[/]" if result.fallback else "")
                      + f"; target {'[green]at rank ' + str(rank) + '[/]' if rank else '[yellow]not in the top 10[/]'}"
                      f", {other} of 10 not {source}")
        path = query_sheet(b, caption["candidate"], text, ranked,
                           ws.outputs / f"demo-free-{re.sub(r'[^A-Za-z0-9_.-]+', '_', text)[:60]}.png",
                           target=caption["target"])
        console.print(f"  picture: {path}")


def _misspelt(word: str) -> str:
    """A typo a shopper makes: two letters swapped ("black" -> "balck")."""
    return word if len(word) < 4 else word[0] + word[2] + word[1] + word[3:]


def _test_queries(driver) -> list[dict]:
    """The loaded slice's test queries with a known target (the model never trained on their groups)."""
    from graphdb.export import composed_queries

    return [{"id": c.id, "candidate": c.candidate, "text": c.text, "target": c.target}
            for c in composed_queries(driver, "test") if c.target and c.candidate]


def _interact(ws: Workspace, candidate: str, text: str, sentence: str) -> None:
    """The interactive loop on one query, as `tailor query | like | tag | explain` run it: answers
    change without retraining."""
    from engine.session import InteractiveSession

    with connect() as driver, engine_errors():
        session = InteractiveSession(ws, driver)
        try:
            answer = session.query(candidate, text, k=10, who="demo")
            query_id, before = answer["query_id"], [r["id"] for r in answer["results"]]
            liked = before[-2:]
            liked_out = session.like(query_id, liked, who="demo")
            after = [r["id"] for r in liked_out["results"]]  # the same query, hearing its liked images
            console.print(f"query {query_id}: liked {liked} (ranks 9 and 10); {liked_out['changed_images']} "
                          f"embeddings refreshed ({liked_out['refresh']}) in {liked_out['refresh_seconds']:.2f} s, "
                          f"then {liked_out['save_seconds']:.2f} s writing the engine")
            console.print(f"  ranks after the like: {[after.index(i) + 1 if i in after else '>10' for i in liked]} "
                          "(liked results come first, in the order they were liked: a like never demotes one)")
            query_sheet(session.engine.bundle, candidate, f"{text} (after liking ranks 9 and 10)", after,
                        ws.outputs / "demo-after-like.png", marks=dict.fromkeys(liked, "orange"))
            tagged = session.tag(sentence, candidate, who="demo")
            console.print(f"tagged {candidate} with {[t['attribute'] for t in tagged['tags']]} (USER_TAGGED); "
                          f"{tagged['changed_images']} embeddings refreshed in {tagged['refresh_seconds']:.2f} s")
            why = session.explain(query_id, after[0])
        finally:
            session.close()
    console.print(f"why {after[0]} answers {query_id}:")
    for fact in why["facts"][:6]:
        console.print(f"  - {fact}")
    console.print("Cypher for Neo4j Browser (style: cypher/browser-style.grass):")
    console.print(why["browser"], markup=False, highlight=False)
