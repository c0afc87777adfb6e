"""graphdb.loaders.load_catalog from files on disk into the real server, and bad files that change nothing.

The catalogs are tiny myntra-layout CSVs written into tmp_path; their images are a few bytes each (all
different, so no pair is dropped as byte-identical) or left out on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import counts, scalar

pytest.importorskip("neo4j")

from graphdb.ingest import IngestError  # noqa: E402
from graphdb.loaders import load_catalog  # noqa: E402
from readers.catalog import MYNTRA, read_catalog  # noqa: E402
from readers.composed import load_or_build  # noqa: E402
from readers.records import ReaderError  # noqa: E402

pytestmark = pytest.mark.neo4j

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
ROWS = [
    "1,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Nike Men Blue Tshirt",
    "2,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Nike Men Red Tshirt",
    "3,Women,Apparel,Topwear,Tops,Navy Blue,Fall,2011,Casual,Puma Women Navy Blue Top",
    "4,Women,Apparel,Topwear,Tops,Black,Fall,2011,Casual,Puma Women Black Top",
    "5,Men,Footwear,Shoes,Casual Shoes,navy blue,Winter,2013,Casual,Adidas Men Navy Blue Shoes",
    "6,Women,Apparel,Topwear,Tops,White,Fall,2011,Casual,Puma Women White Top",
]


def write_catalog(folder: Path, rows: list[str] = ROWS, name: str = "products.csv", images: bool = True,
                  header: str = HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    if images:
        (folder / "images").mkdir(exist_ok=True)
        for row in rows:
            pid = row.split(",", 1)[0]
            (folder / "images" / f"{pid}.jpg").write_bytes(f"not really a jpeg {pid}".encode())
    return path




@pytest.fixture
def loaded(empty_graph, tmp_path: Path):
    """A driver to a graph holding the small catalog, and the catalog's path."""
    path = write_catalog(tmp_path / "shop")
    summary = load_catalog(empty_graph, path, tmp_path / "split.json")
    assert summary.missing_images == []
    return empty_graph, path


def test_load_catalog_twice_creates_nothing_the_second_time(empty_graph, tmp_path):
    path = write_catalog(tmp_path / "shop")
    first = load_catalog(empty_graph, path, tmp_path / "split.json")
    queries = first.query_counts["queries"]
    assert queries > 0  # Nike blue/red and Puma navy blue/black/white pair up
    assert first.images.nodes_created == 6 + 18  # products + distinct attribute values (see below)
    assert first.queries.nodes_created == queries
    assert first.queries.relationships_created == 4 * queries  # MODIFIES, TARGETS, MENTIONS added/removed
    before = counts(empty_graph)
    assert before == (first.images.nodes_created + first.queries.nodes_created,
                      first.images.relationships_created + first.queries.relationships_created)
    second = load_catalog(empty_graph, path, tmp_path / "split.json")
    assert second.created == 0
    assert counts(empty_graph) == before
    assert scalar(empty_graph, "MATCH (c:Caption) RETURN count(c)") == queries


def test_navy_blue_spellings_are_one_attribute(loaded):
    driver, _ = loaded
    names = scalar(driver, "MATCH (a:Attribute) WHERE a.name CONTAINS 'navy' RETURN collect(a.name)")
    assert names == ["navy blue"]
    linked = scalar(driver, "MATCH (i:Image)-[:HAS_ATTRIBUTE]->(:Attribute {name: 'navy blue'}) "
                            "RETURN collect(i.id)")
    assert sorted(linked) == ["3", "5"]
    # 18 = men women | apparel footwear | topwear shoes | tshirts tops casual shoes |
    #      blue red navy blue black white | summer fall winter | casual
    assert scalar(driver, "MATCH (a:Attribute) RETURN count(a)") == 18


def test_truncated_file_changes_nothing(loaded, tmp_path):
    driver, _ = loaded
    before = counts(driver)
    path = tmp_path / "shop" / "truncated.csv"
    text = "\n".join([HEADER, *ROWS[:2], "7,Men,Apparel,Top"])  # the export stopped mid-row
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReaderError) as exc:
        load_catalog(driver, path, tmp_path / "split-truncated.json")
    assert (exc.value.path, exc.value.line) == (str(path), 4)
    assert "truncated" in str(exc.value)
    assert counts(driver) == before


def test_missing_column_changes_nothing(loaded, tmp_path):
    driver, _ = loaded
    before = counts(driver)
    header = HEADER.replace("baseColour,", "")
    rows = [",".join(c for i, c in enumerate(r.split(",")) if i != 5) for r in ROWS]
    path = write_catalog(tmp_path / "shop", rows, name="no-colour.csv", header=header)
    with pytest.raises(ReaderError) as exc:
        load_catalog(driver, path, tmp_path / "split-no-colour.json")
    assert (exc.value.line, exc.value.field_name) == (1, "baseColour")
    assert counts(driver) == before


def test_bad_encoding_changes_nothing(loaded, tmp_path):
    driver, _ = loaded
    before = counts(driver)
    path = tmp_path / "shop" / "latin1.csv"
    good = "\n".join([HEADER, *ROWS[:3]]).encode("utf-8")
    bad = "7,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Café Men Blue Tshirt\n".encode("latin-1")
    path.write_bytes(good + b"\n" + bad)
    with pytest.raises(ReaderError) as exc:
        load_catalog(driver, path, tmp_path / "split-latin1.json")
    assert (exc.value.path, exc.value.line, exc.value.field_name) == (str(path), 5, "productDisplayName")
    assert counts(driver) == before


def test_id_with_another_title_changes_nothing(loaded, tmp_path):
    driver, _ = loaded
    before = counts(driver)
    rows = [ROWS[0], ROWS[1].replace("Nike Men Red Tshirt", "Nike Men Scarlet Tshirt"), ROWS[2]]
    path = write_catalog(tmp_path / "shop", rows, name="renamed.csv")  # same folder: same image paths
    with pytest.raises(IngestError) as exc:
        load_catalog(driver, path, tmp_path / "split-renamed.json")
    assert (exc.value.path, exc.value.line, exc.value.field_name) == (str(path), 3, "title")
    assert "'2'" in str(exc.value) and "Nike Men Scarlet Tshirt" in str(exc.value)
    assert counts(driver) == before


def test_saved_queries_naming_a_product_the_file_lacks_are_skipped_and_counted(empty_graph, tmp_path):
    full = write_catalog(tmp_path / "shop")
    split = tmp_path / "split.json"
    queries = load_or_build(split, list(read_catalog(full, MYNTRA))).queries  # saved: the queries of all 6
    referenced = {q.candidate_id for q in queries} | {q.target_id for q in queries}
    gone = sorted(referenced)[0]
    naming = [q for q in queries if gone in (q.candidate_id, q.target_id)]
    rows = [r for r in ROWS if not r.startswith(f"{gone},")]
    partial = write_catalog(tmp_path / "shop", rows, name="partial.csv")
    summary = load_catalog(empty_graph, partial, split)  # the split file still names the missing product
    assert summary.skipped_queries == len(naming) > 0
    assert scalar(empty_graph, "MATCH (i:Image) RETURN count(i)") == 5
    assert scalar(empty_graph, "MATCH (c:Caption) RETURN count(c)") == len(queries) - len(naming)
    assert scalar(empty_graph, "MATCH (c:Caption)-[:MODIFIES|TARGETS]->(:Image {id: $id}) RETURN count(c)",
                  id=gone) == 0


def test_missing_image_is_counted_or_an_error_under_strict(empty_graph, tmp_path):
    path = write_catalog(tmp_path / "shop")
    (tmp_path / "shop" / "images" / "4.jpg").unlink()
    before = counts(empty_graph)
    with pytest.raises(ReaderError) as exc:
        load_catalog(empty_graph, path, tmp_path / "split.json", strict=True)
    assert (exc.value.line, exc.value.field_name) == (5, "image")
    assert "4.jpg" in str(exc.value)
    assert counts(empty_graph) == before
    summary = load_catalog(empty_graph, path, tmp_path / "split.json")
    assert summary.missing_images == ["4"]
    assert scalar(empty_graph, "MATCH (i:Image {id: '4'}) RETURN i.image_path").endswith("images/4.jpg")
    assert summary.images.nodes_created == 6 + 18
