"""The new-products experiment: which products are held out (whole test units, nothing leaking), and the
whole command on a small generated shop against the real server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.new_products import held_out_products, split_units
from readers.catalog import read_catalog
from readers.composed import build_composed_queries
from tests.engine.test_catalog import FIRST, photo, write_shop

# 16 brands, each a split unit of 6 products (colour and article-type pairs): 12 train, 1 val, 3 test units.
SHOP = [(300 + n, b, c, k) for n, (b, k, c) in enumerate(
    (f"Brand{chr(65 + i)}", k, c) for i in range(16) for k in ("Tshirts", "Shorts") for c in ("Red", "Blue", "Black"))]


def test_held_out_products_are_whole_test_units(tmp_path: Path) -> None:
    path = write_shop(tmp_path / "shop", SHOP, "products.csv")
    records = list(read_catalog(path))
    queries = build_composed_queries(records)
    units = split_units(queries, records)
    held, chosen = held_out_products(queries, records, share=0.5, seed=0)
    assert held and chosen
    assert all(queries.image_splits[i] == "test" for i in held)
    assert {units[i] for i in held} == set(chosen)
    for q in queries.queries:  # a query is wholly held out or wholly kept: no edge reaches across
        assert (q.candidate_id in held) == (q.target_id in held)
    test_units = {u for i, u in units.items() if queries.image_splits[i] == "test"}
    assert len(chosen) == round(0.5 * len(test_units))
    assert held_out_products(queries, records, share=0.5, seed=0) == (held, chosen)  # seeded


def test_byte_identical_photos_join_one_unit(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    path = write_shop(folder, FIRST, "products.csv")
    # Birch's red shirt is the very photo of Acme's red tshirt: their groups must be one unit.
    acme, birch = FIRST[0], next(p for p in FIRST if p[1] == "Birch" and p[3] == "Shirts" and p[2] == "Red")
    (folder / "images" / f"{birch[0]}.jpg").write_bytes((folder / "images" / f"{acme[0]}.jpg").read_bytes())
    records = list(read_catalog(path))
    units = split_units(build_composed_queries(records), records)
    assert units[str(acme[0])] == units[str(birch[0])]
    photo(folder / "images" / f"{birch[0]}.jpg", birch[2], birch[3], birch[0])  # put back
    assert units != split_units(build_composed_queries(list(read_catalog(path))), list(read_catalog(path)))


@pytest.mark.neo4j
def test_the_command_trains_without_them_adds_them_and_reports(empty_graph, neo4j_target, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cli.app import app

    path = write_shop(tmp_path / "shop", SHOP, "products.csv")
    config = tmp_path / "small.json"
    config.write_text(json.dumps({"model": {"hidden": 32, "layers": 2}, "simulation": {"enabled": False},
                                  "train": {"batch_size": 128, "negatives": 32}}))
    s = neo4j_target.settings
    env = {"NEO4J_URI": s.uri, "NEO4J_USER": s.user, "NEO4J_PASSWORD": s.password,
           "TAILOR_HOME": str(tmp_path / "home")}
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["experiment", "new-products", str(path), "--out", str(out), "--epochs", "1",
                                      "--config", str(config)], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "new_products.json").read_text())
    assert report["held_out"]["products"] > 0 and report["timing"]["products"] == report["held_out"]["products"]
    assert report["checks"]["new products not indexed"] == []
    models = report["recall"]["new products: all"]
    assert set(models) == {"inductive (published engine)", "inductive + second stage", "inductive (tensors)",
                           "retrained with them", "image only"}
    # The published engine answers what the same weights give over the tensors (FAISS is exact; only a tie
    # at rank 10 may break the other way).
    one_query = 100 / report["counts"]["new products: all"]
    engine, tensors = models["inductive (published engine)"], models["inductive (tensors)"]
    assert engine["id_R@10"] == pytest.approx(tensors["id_R@10"], abs=2 * one_query)
    assert (out / "new_products.png").stat().st_size > 0 and (out / "new_products.md").exists()
    again = CliRunner().invoke(app, ["experiment", "new-products", str(path), "--out", str(out)], env=env)
    assert again.exit_code != 0 and "needs an empty database" in again.output
