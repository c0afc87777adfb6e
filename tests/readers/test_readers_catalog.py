"""Catalog reader: good CSV/JSONL, the myntra preset on real data, and bad input naming file/line/field."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from readers.catalog import MYNTRA, ColumnMapping, missing_images, read_catalog
from readers.records import AttributeValue, ReaderError

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName\n"
ROW2 = "15970,Men,Apparel,Topwear,Shirts,Navy Blue,Fall,2011,Casual,Turtle Check Men Navy Blue Shirt\n"
ROW3 = "39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England Men Party Blue Jeans\n"


def write(tmp_path: Path, text: str | bytes, name: str = "products.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def test_fixture_catalog_reads_and_normalises() -> None:
    recs = list(read_catalog(FIXTURES / "catalog" / "products.csv", MYNTRA))
    assert len(recs) == 16  # the repeated identical row for id 1 is skipped
    first = recs[0]
    assert first.id == "1" and first.title == "Red Tape Men Red Casual Shoes" and first.source_line == 2
    assert Path(first.image_path) == (FIXTURES / "catalog" / "images" / "1.jpg").resolve()
    assert AttributeValue("colour", "red") in first.attributes
    assert AttributeValue("article_type", "Casual Shoes") in first.attributes
    navy = next(r for r in recs if r.id == "5")
    assert AttributeValue("colour", "navy blue") in navy.attributes  # "Navy Blue" == "navy blue"
    na = next(r for r in recs if r.id == "15")
    kinds = {a.kind for a in na.attributes}
    assert "colour" not in kinds and "usage" not in kinds  # "NA" cells are skipped
    assert missing_images(recs) == []


def test_limit_streams(tmp_path: Path) -> None:
    assert [r.id for r in read_catalog(FIXTURES / "catalog" / "products.csv", MYNTRA, limit=3)] == ["1", "2", "3"]


def test_missing_images_reports_absent_files(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER + ROW2)
    recs = list(read_catalog(p, MYNTRA))
    assert [r.id for r in missing_images(recs)] == ["15970"]


def test_jsonl_catalog_with_image_column_and_lists() -> None:
    mapping = ColumnMapping(id="sku", image="img", title="name", attributes={"colour": "colour", "tags": "style"})
    recs = list(read_catalog(FIXTURES / "catalog" / "products.jsonl", mapping))
    assert [r.id for r in recs] == ["a1", "a2", "3"]
    assert recs[0].attributes == (AttributeValue("colour", "red"), AttributeValue("style", "casual"),
                                  AttributeValue("style", "leather"))
    assert recs[1].image_path == "" and recs[1].attributes == ()  # null image, "NA" colour
    assert recs[2].image_path == "/abs/3.jpg" and recs[2].attributes == (AttributeValue("colour", "navy blue"),)
    assert [r.source_line for r in recs] == [1, 3, 4]  # blank line 2 skipped, lines still counted


def test_myntra_reads_all_records(myntra_dir: Path) -> None:
    t = time.perf_counter()
    recs = list(read_catalog(myntra_dir / "products.csv", MYNTRA))
    assert len(recs) == 8954
    assert len({r.id for r in recs}) == 8954
    assert time.perf_counter() - t < 5
    r = next(r for r in recs if r.id == "15970")
    assert r.title == "Turtle Check Men Navy Blue Shirt"
    assert {a.kind: a.value for a in r.attributes}["colour"] == "navy blue"


# --- bad input: each error names the file, the line and the field -------------------------------------

def test_missing_required_columns_are_named(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, "id,gender,masterCategory,subCategory,articleType,season,year,productDisplayName\n")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 1, "baseColour, usage")
    assert "missing required column(s) baseColour, usage" in str(e.value)


def test_truncated_last_row_too_few_fields(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, HEADER + ROW2 + "39386,Men,Apparel,Bottomwear,Jea")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 3, "baseColour")
    assert "expected 10 fields, got 5" in str(e.value)


def test_truncated_unterminated_quote(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, HEADER + ROW2 + '39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,"Peter Eng')
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 3, "productDisplayName")
    assert "unterminated quote" in str(e.value)


def test_too_many_fields(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, HEADER + ROW2.rstrip("\n") + ",extra\n")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 2, "column 11")


def test_bad_encoding_names_line_and_field(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    bad = b"39386,Men,Apparel,Bottomwear,Jeans,Blue,Summer,2012,Casual,Peter England Caf" + b"\xe9 Jeans\n"
    p = write(tmp_path, (HEADER + ROW2).encode() + bad)
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 3, "productDisplayName")
    assert "not utf-8" in str(e.value)


def test_empty_id(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, HEADER + ROW2 + "," + ROW3.split(",", 1)[1])
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 3, "id")
    assert "empty id" in str(e.value)


def test_same_id_with_different_data(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, HEADER + ROW2 + ROW3 + ROW2.replace("Navy Blue,Fall", "Black,Fall"))
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 4, "baseColour")
    assert "already read at line 2" in str(e.value)


def test_same_id_with_identical_data_is_skipped(tmp_path: Path) -> None:
    p = write(tmp_path, HEADER + ROW2 + ROW3 + ROW2)
    assert [r.id for r in read_catalog(p, MYNTRA)] == ["15970", "39386"]


def test_jsonl_truncated_last_line(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, '{"id": "1", "name": "Red Shirt"}\n{"id": "2", "name": "Blue Sh', "c.jsonl")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, ColumnMapping(title="name")))
    assert_names(e.value, p, 2, "name")
    assert "invalid JSON" in str(e.value)


def test_jsonl_missing_id_key(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, '{"id": "1"}\n\n{"name": "no id"}\n', "c.jsonl")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, ColumnMapping(title="name")))
    assert_names(e.value, p, 3, "id")


def test_jsonl_bad_encoding(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, b'{"id": "1", "name": "ok"}\n{"id": "2", "name": "Caf\xe9"}\n', "c.jsonl")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, ColumnMapping(title="name")))
    assert_names(e.value, p, 2, "name")


def test_jsonl_nested_object_is_rejected(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, '{"id": "1", "colour": {"r": 1}}\n', "c.jsonl")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, ColumnMapping(attributes={"colour": "colour"})))
    assert_names(e.value, p, 1, "colour")


def test_empty_file(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = write(tmp_path, "")
    with pytest.raises(ReaderError) as e:
        list(read_catalog(p, MYNTRA))
    assert_names(e.value, p, 1, "id")
