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
DEMO_EPOCHS = 30


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
    _interact(ws, engine, test[0].candidate, test[0].text)


def _interact(ws: Workspace, engine, candidate: str, text: str) -> None:
    """The interactive loop on one query: answers change without retraining."""
    import time

    from cli.live import LiveEngine
    from graphdb.explain import explain
    from graphdb.interactions import like, store_query, tag_image

    live = LiveEngine(ws)
    with connect() as driver:
        roles = live.engine.parse(text)
        query_id = store_query(driver, candidate, text, roles, who="demo")
        before = [i for i, _ in live.engine.search(candidate, text, k=10, roles=roles).hits]
        liked = before[-2:]
        start = time.perf_counter()
        like(driver, query_id, liked, who="demo")
        report = live.sync(driver)
        after = [i for i, _ in live.engine.search(candidate, text, k=10, roles=roles).hits]
        console.print(f"query {query_id}: liked {liked} (ranks {before.index(liked[0]) + 1} and 10); "
                      f"{report.changed_images} embeddings refreshed ({report.mode}); like-to-new-ranking "
                      f"{time.perf_counter() - start:.2f} s")
        console.print(f"  ranks after the like: {[after.index(i) + 1 if i in after else '>10' for i in liked]}")
        tag_image(driver, candidate, "long sleeves", who="demo", phrase="that one has long sleeves")
        live.sync(driver)
        live.flush()
        console.print(f"tagged {candidate} with 'long sleeves' (USER_TAGGED); the vocabulary now has "
                      f"{len(live.engine.bundle.attribute_names)} attributes")
        explanation = explain(driver, query_id, after[0])
    console.print(f"why {after[0]} answers {query_id}:")
    for fact in explanation.facts[:6]:
        console.print(f"  - {fact}")
    console.print("Cypher for Neo4j Browser (style: cypher/browser-style.grass):")
    console.print(explanation.browser_text(), markup=False, highlight=False)
