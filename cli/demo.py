"""`tailor demo`: the main job end to end on the local Neo4j, in a few minutes on a laptop.

Starts (or reuses) the local server, loads a slice of myntra-small with its composed queries, computes
features, trains the R-GCN briefly, publishes the index, and answers a few test queries with pictures.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from cli.console import console, print_counts
from cli.db import connect
from cli.pictures import Tile, render_query
from cli.pipeline import featurize_graph, publish, read_graph
from cli.progress import phases
from cli.workspace import Workspace
from graphdb.stats import graph_summary

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
DEMO_LIMIT = 2000
DEMO_EPOCHS = 80


def run_demo(catalog: Path | None = None, limit: int = DEMO_LIMIT, epochs: int = DEMO_EPOCHS,
             queries: int = 3) -> None:
    from cli.load import default_split_file
    from gnn.config import ExperimentConfig
    from gnn.encoders import text_encoder
    from gnn.experiment import fit_model, model_config
    from gnn.graph import build_graph_tensors
    from gnn.index import ImageIndex
    from gnn.search import QueryEngine, SearchBundle
    from graphdb.loaders import load_catalog

    catalog = catalog or DATASETS / "myntra-small" / "products.csv"
    if not catalog.is_file():
        raise SystemExit(f"{catalog}: not found (the demo reads myntra-small from ../shared/datasets)")
    ws = Workspace.default()
    console.rule(f"tailor demo: {limit:,} products of {catalog.parent.name}")
    with connect() as driver:
        with phases() as start:
            summary = load_catalog(driver, catalog, default_split_file(catalog, limit), limit=limit,
                                   start_phase=start)
        console.print(f"loaded: {summary.created:,} nodes and relationships created "
                      f"({summary.relationships_per_second:,.0f} relationships/s)")
        print_counts("composed queries by split", summary.query_counts.get("by_split", {}), "split")
        graph = graph_summary(driver)
        print_counts("graph: nodes", graph.nodes, "label")
        print_counts("graph: relationships", graph.relationships, "type")

        export = read_graph(driver)
        features = featurize_graph(export, ws)
        config = model_config("graph_catalog", ExperimentConfig())
        config.train.epochs = epochs
        g = build_graph_tensors(export, features.arrays, config.graph)
        run = fit_model("graph_catalog", g, config, ws.checkpoints, log=console.print,
                        truth=export.image_attributes(("catalog",)))
        publish(run, export, ws, features.arrays["Image"], driver)

    engine = QueryEngine(run.model, SearchBundle.load(ws.bundle), ImageIndex.load(ws.faiss), text_encoder("minilm"))
    test = [c for c in export.captions if c.split == "test" and c.target]
    rng = random.Random(0)
    for caption in rng.sample(test, min(queries, len(test))):
        result = engine.search(caption.candidate, caption.text, k=10)
        b = engine.bundle
        rank = next((n for n, (i, _) in enumerate(result.hits, 1) if i == caption.target), None)
        console.print(f"\n[bold]{caption.candidate}[/] {b.image_titles[b.image_row[caption.candidate]]} + "
                      f"\"{caption.text}\" -> target {caption.target} "
                      + (f"[green]found at rank {rank}[/]" if rank else "[yellow]not in the top 10[/]")
                      + f" ({result.seconds * 1000:.0f} ms)")
        for n, (i, score) in enumerate(result.hits[:5], 1):
            console.print(f"  {n}. {i} {score:.3f} {b.image_titles[b.image_row[i]]}")
        path = render_query(
            Tile(b.image_paths[b.image_row[caption.candidate]], f"candidate {caption.candidate}"),
            caption.text,
            [Tile(b.image_paths[b.image_row[i]], f"{n}. {b.image_titles[b.image_row[i]]}",
                  "green" if i == caption.target else None) for n, (i, _) in enumerate(result.hits, 1)],
            ws.outputs / f"demo-{re.sub(r'[^A-Za-z0-9_.-]+', '_', caption.id)}.png",
        )
        console.print(f"  picture: {path}")

    console.rule("interactions: a stored query, a like, a tag, an explanation")
    _interact(ws, test[0].candidate, test[0].text)


def _interact(ws: Workspace, candidate: str, text: str) -> None:
    """The interactive loop on one query, as `tailor query | like | tag | explain` run it: answers
    change without retraining."""
    from cli.session import InteractiveSession

    with connect() as driver:
        session = InteractiveSession(ws, driver)
        answer = session.query(candidate, text, k=10, who="demo")
        query_id, before = answer["query_id"], [r["id"] for r in answer["results"]]
        liked = before[-2:]
        liked_out = session.like(query_id, liked, who="demo")
        after = [r["id"] for r in liked_out["results"]]  # the same query, hearing its liked images
        console.print(f"query {query_id}: liked {liked} (ranks 9 and 10); {liked_out['changed_images']} "
                      f"embeddings refreshed ({liked_out['refresh']}) in {liked_out['refresh_seconds']:.2f} s, "
                      f"then {liked_out['save_seconds']:.2f} s writing the index")
        console.print(f"  ranks after the like: {[after.index(i) + 1 if i in after else '>10' for i in liked]}")
        tagged = session.tag("that one has long sleeves", candidate, who="demo")
        console.print(f"tagged {candidate} with {[t['attribute'] for t in tagged['tags']]} (USER_TAGGED); "
                      f"{tagged['changed_images']} embeddings refreshed in {tagged['refresh_seconds']:.2f} s")
        why = session.explain(query_id, after[0])
        session.close()
    console.print(f"why {after[0]} answers {query_id}:")
    for fact in why["facts"][:6]:
        console.print(f"  - {fact}")
    console.print("Cypher for Neo4j Browser (style: cypher/browser-style.grass):")
    console.print(why["browser"], markup=False, highlight=False)
