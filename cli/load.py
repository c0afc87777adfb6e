"""`tailor load catalog|fashioniq|fashion200k PATH`: datasets into the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.catalog import Index, sync_now
from cli.console import console, engine_errors, fail, print_counts
from cli.db import connect
from cli.options import DataDir, Uri, User
from cli.progress import phases
from engine.workspace import Workspace
from graphdb.loaders import LoadSummary, load_catalog, load_fashion200k, load_fashioniq
from graphdb.stats import graph_summary
from readers.records import ReaderError

app = typer.Typer(help="Load datasets into the graph (idempotent: a second run creates nothing).",
                  no_args_is_help=True)

Limit = Annotated[int | None, typer.Option("--limit", help="Only the first N products / triplets.")]
Strict = Annotated[bool, typer.Option("--strict", help="A missing image file is an error, not a count.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Rows per transaction.")]


def report(summary: LoadSummary, driver) -> None:
    console.print(
        f"created {summary.images.nodes_created + summary.queries.nodes_created:,} nodes and "
        f"{summary.images.relationships_created + summary.queries.relationships_created:,} relationships "
        f"in {summary.images.seconds + summary.queries.seconds:.1f} s "
        f"({summary.relationships_per_second:,.0f} relationships/s)"
    )
    if summary.new_images or summary.changed_images or summary.retired:
        retired = summary.retired.images if summary.retired else []
        console.print(f"catalog: {len(summary.new_images):,} new products, {len(summary.changed_images):,} changed, "
                      f"{len(retired):,} retired"
                      + (f" ({summary.retired.captions_deleted:,} catalog queries naming them deleted)"
                         if summary.retired else ""))
    if summary.skipped_queries:
        console.print(f"{summary.skipped_queries:,} composed queries of the saved split skipped: they name "
                      "products this file does not list")
    if summary.missing_images:
        console.print(f"[yellow]{len(summary.missing_images):,} image files missing[/] "
                      f"(first: {summary.missing_images[:3]}); use --strict to make this an error")
    counts = summary.query_counts
    if counts.get("by_split"):
        print_counts("composed queries by split", counts["by_split"], "split")
    if counts.get("by_kind"):
        print_counts("composed queries by changed attribute", counts["by_kind"], "kind")
    graph = graph_summary(driver)
    print_counts("graph: nodes", graph.nodes, "label")
    print_counts("graph: relationships", graph.relationships, "type")
    print_counts("graph: attributes by kind", graph.attributes_by_kind, "kind")


def _published() -> bool:
    from engine.published import EngineStore

    return EngineStore(Workspace.default().engine).exists()


def _run(loader, uri, user, data_dir, index: bool = False, **kwargs) -> LoadSummary:
    from graphdb.catalog import UnknownImagesError
    from graphdb.loaders import CatalogReplaceError

    with connect(uri, user, data_dir) as driver, engine_errors():
        try:
            with phases() as start_phase:
                summary = loader(driver, start_phase=start_phase, **kwargs)
        except CatalogReplaceError as exc:
            raise fail(str(exc)) from exc
        except (ReaderError, ValueError, UnknownImagesError) as exc:
            raise fail(f"{exc}\nnothing of the failing batch was written; fix the input and run again") from exc
        report(summary, driver)
        if index:
            sync_now(driver)
        elif (summary.new_images or summary.changed_images or summary.retired) and _published():
            console.print("run `tailor sync` to bring them to the index (or load with --index)")
    return summary


@app.command()
def catalog(
    path: Annotated[Path, typer.Argument(help="products.csv or .jsonl")],
    mapping: Annotated[str, typer.Option(help="Column mapping preset.")] = "myntra",
    split_file: Annotated[Path | None, typer.Option(help="Where the composed queries are kept.")] = None,
    caption_split: Annotated[bool, typer.Option(help="Also add caption-split attributes.")] = False,
    update: Annotated[bool, typer.Option("--update", help=(
        "A row for a product the graph holds wins: new title, image file, attributes (else it is refused)."))] = False,
    replace: Annotated[bool, typer.Option("--replace", help=(
        "The file is the whole catalog: retire products the graph holds that it does not list."))] = False,
    force: Annotated[bool, typer.Option("--force", help="Let --replace retire more than half the catalog.")] = False,
    index: Index = False,
    limit: Limit = None, strict: Strict = False, batch_size: BatchSize = 5000,
    bulk: Annotated[bool, typer.Option(
        "--bulk", help="First load into an EMPTY database: batched CREATE without the idempotence reads "
        "(refuses a database that holds anything).")] = False,
    import_tool: Annotated[bool, typer.Option(
        "--import-tool", help="With --bulk, on the local server: Neo4j's offline importer (the server is "
        "stopped for the import and started again).")] = False,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """A product catalog with its composed queries (Fashion200K-style, split by product group). Loading it
    again adds new products; --update applies changed rows, --replace retires what it no longer lists,
    --index brings all of that to the search index at once (else `tailor sync` does)."""
    from readers.catalog import MYNTRA

    presets = {"myntra": MYNTRA}
    if mapping not in presets:
        raise fail(f"unknown mapping {mapping!r}; presets: {', '.join(presets)}")
    if not path.is_file():
        raise fail(f"{path}: no such file")
    if import_tool and not bulk:
        raise fail("--import-tool is a way of --bulk loading: add --bulk")
    if bulk:
        _bulk(path, presets[mapping], split_file or Workspace.default().split_file(path, limit), limit, strict,
              caption_split, import_tool, uri, user, data_dir)
        return
    _run(load_catalog, uri, user, data_dir, path=path, mapping=presets[mapping],
         split_file=split_file or Workspace.default().split_file(path, limit), limit=limit, strict=strict,
         caption_split=caption_split, batch_size=batch_size, update=update, replace=replace,
         max_retired_share=1.0 if force else 0.5, index=index)


def _bulk(path: Path, mapping, split_file: Path, limit, strict: bool, caption_split: bool, import_tool: bool,
          uri, user, data_dir) -> None:
    from graphdb.bulk import DatabaseNotEmptyError
    from graphdb.connection import local_settings, open_driver
    from graphdb.loaders import load_catalog_bulk
    from graphdb.settings import settings_from_env

    kwargs = dict(path=path, mapping=mapping, split_file=split_file, limit=limit, strict=strict,
                  caption_split=caption_split)
    try:
        with phases() as start_phase:
            if import_tool:
                if uri or settings_from_env() is not None:
                    raise fail("--import-tool loads tailor's local server offline; with --uri / NEO4J_URI "
                               "use --bulk alone (batched CREATE over Bolt)")
                settings = local_settings(data_dir)  # started if it is not running
                from graphdb.server.manager import LocalServer

                bolt = int(settings.uri.rsplit(":", 1)[1])
                status = LocalServer(settings.data_dir).status()
                server = LocalServer(settings.data_dir, bolt_port=bolt, http_port=status.http_port or 0)
                summary = load_catalog_bulk(None, server=server, start_phase=start_phase,
                                            driver_for=lambda: open_driver(local_settings(data_dir)), **kwargs)
            else:
                with connect(uri, user, data_dir) as driver:
                    summary = load_catalog_bulk(driver, start_phase=start_phase, **kwargs)
    except DatabaseNotEmptyError as exc:
        raise fail(str(exc)) from exc
    except (ReaderError, ValueError, RuntimeError) as exc:
        raise fail(f"{exc}\nthe bulk load stopped; empty the database and run it again, or load without --bulk "
                   "(idempotent, resumable)") from exc
    b = summary.bulk
    console.print(f"bulk load ({b.method}): {b.nodes:,} nodes and {b.relationships:,} relationships in "
                  f"{b.seconds:.1f} s ({b.relationships_per_second:,.0f} relationships/s; "
                  + ", ".join(f"{k} {v:.1f} s" for k, v in b.phases.items()) + ")")
    if summary.missing_images:
        console.print(f"[yellow]{len(summary.missing_images):,} image files missing[/] "
                      f"(first: {summary.missing_images[:3]}); use --strict to make this an error")
    if summary.query_counts.get("by_split"):
        print_counts("composed queries by split", summary.query_counts["by_split"], "split")
    with connect(uri, user, data_dir) as driver:
        graph = graph_summary(driver)
    print_counts("graph: nodes", graph.nodes, "label")
    print_counts("graph: relationships", graph.relationships, "type")


@app.command()
def fashioniq(
    path: Annotated[Path, typer.Argument(help="FashionIQ root (captions/, image_splits/, attributes/)")],
    split: Annotated[str, typer.Option(help="train | val | test")] = "val",
    images: Annotated[Path | None, typer.Option(help="Image folder; omit for metadata-only.")] = None,
    limit: Limit = None, batch_size: BatchSize = 5000,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """FashionIQ triplets (two captions joined with " and it ", category first)."""
    _run(load_fashioniq, uri, user, data_dir, root=path, split=split, images_dir=images, limit=limit,
         batch_size=batch_size)


@app.command()
def fashion200k(
    path: Annotated[Path, typer.Argument(help="Fashion200K root (labels/, test_queries.txt)")],
    limit: Limit = None, batch_size: BatchSize = 5000,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Fashion200K in the TIRG layout, with caption-split attributes."""
    _run(load_fashion200k, uri, user, data_dir, root=path, limit=limit, batch_size=batch_size)
