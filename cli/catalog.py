"""`tailor retire`, and what `tailor sync` / `load catalog --index` print about new, changed and retired
products (the daily catalog flow: load, then sync; no retraining)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cli.console import console, engine_errors, err_console, fail, print_json
from cli.db import connect
from cli.options import DataDir, Uri, User

Index = Annotated[bool, typer.Option("--index", help="Then sync: features, embeddings and the FAISS index "
                                     "for what changed (needs a published engine).")]


def print_sync(out: dict[str, Any]) -> None:
    """One line for the refresh, and the catalog's part of it."""
    console.print(f"{out['refresh']}: {out['changed_images']} image embeddings changed, {out['new_attributes']} "
                  f"new attributes; index updated in place ({out['refresh_seconds']:.2f} s: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in out["seconds"].items())
                  + f"; then saved in {out['save_seconds']:.2f} s)")
    c = out.get("catalog") or {}
    if c.get("new_images") or c.get("removed_images") or c.get("features_recomputed"):
        console.print(f"catalog: {c['new_images']} products indexed, {c['removed_images']} left the index, "
                      f"{c['features_recomputed']} re-featurised (changed file); image features "
                      f"{c['features_computed']} computed, {c['features_cached']} from the cache")
    missing = c.get("without_features") or []
    if missing:
        console.print(f"[yellow]{len(missing)} products have no image features and are not indexed[/] "
                      "(fix the files, then `tailor sync`):")
        for m in missing[:20]:
            console.print(f"  {m['id']}: {m['reason']}", markup=False, highlight=False)


def sync_now(driver, as_json: bool = False) -> dict[str, Any] | None:
    """A sync in this process after a load or a retirement; None (and a hint) without a published engine."""
    from cli.progress import phases
    from engine.errors import NotPublishedError
    from engine.session import InteractiveSession
    from engine.workspace import Workspace

    ws = Workspace.default()
    try:
        session = InteractiveSession(ws, driver)
    except NotPublishedError:
        err_console.print("no published engine yet, so nothing to index: run `tailor train`")
        return None
    try:
        if as_json:
            out = session.sync()
        else:
            with phases() as start:
                out = session.sync(start_phase=start)
    finally:
        session.close()
    if not as_json:
        print_sync(out)
    return out


def _ids(ids: list[str] | None, file: Path | None) -> list[str]:
    out = [i.strip() for part in (ids or []) for i in part.split(",") if i.strip()]
    if file is not None:
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{file}: {exc}") from exc
        out += [line.split(",", 1)[0].strip() for line in lines if line.strip() and not line.startswith("#")]
    return list(dict.fromkeys(out))


def retire(
    ids: Annotated[list[str] | None, typer.Argument(help="Product ids (comma- or space-separated).")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="A file with one product id a line "
                                              "(the first column of a CSV line).")] = None,
    index: Index = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    uri: Uri = None, user: User = None, data_dir: DataDir = None,
) -> None:
    """Retire products: their nodes and edges leave Neo4j in one transaction (catalog queries naming them
    too; stored user queries keep their text), and with --index the FAISS index and features at once."""
    from graphdb.catalog import UnknownImagesError, retire_images

    wanted = _ids(ids, file)
    if not wanted:
        raise fail("no product ids given: pass ids or --file FILE")
    with connect(uri, user, data_dir) as driver, engine_errors():
        try:
            report = retire_images(driver, wanted)
        except UnknownImagesError as exc:
            raise fail(str(exc), 2) from exc
        out = {"retired": len(report.images), "relationships_deleted": report.relationships_deleted,
               "captions_deleted": report.captions_deleted, "user_queries_kept": report.user_queries_kept}
        if not as_json:
            console.print(f"retired {out['retired']} products ({out['relationships_deleted']} relationships and "
                          f"{out['captions_deleted']} catalog queries deleted; {out['user_queries_kept']} user "
                          "queries kept without their candidate)")
            if not index:
                console.print("they stay searchable until `tailor sync`")
        out["sync"] = sync_now(driver, as_json) if index else None
    if as_json:
        print_json(out)


def register(app: typer.Typer) -> None:
    app.command()(retire)
