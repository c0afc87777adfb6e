"""FashionIQ reader: fixtures in the real layout, bad input, and the real files (val = 6,016 triplets)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from readers.fashioniq import (
    fashioniq_vocabulary,
    gallery,
    join_captions,
    read_fashioniq_attributes,
    read_fashioniq_images,
    read_fashioniq_queries,
)
from readers.records import AttributeValue, ReaderError

ROOT = Path(__file__).resolve().parent / "fixtures" / "fashioniq"


def test_join_captions() -> None:
    caps = ["is shiny and silver with shorter sleeves", "fit and flare"]
    assert join_captions(caps, "dress") == "dress is shiny and silver with shorter sleeves and it fit and flare"
    assert join_captions(caps, "dress", joiner=" and ", prefix_category=False) == (
        "is shiny and silver with shorter sleeves and fit and flare")
    assert join_captions([" a ", ""], "shirt") == "shirt a"


def test_val_queries_from_fixtures() -> None:
    qs = list(read_fashioniq_queries(ROOT, "val", categories=("dress", "shirt")))
    assert [q.id for q in qs] == ["fiq-dress-val-00000", "fiq-dress-val-00001", "fiq-shirt-val-00000"]
    q = qs[0]
    assert q.text == "dress is shiny and silver with shorter sleeves and it fit and flare"
    assert q.candidate_id == "B005X4PL1G" and q.target_id == "B0084Y8XIU" and q.group == "dress"
    assert q.source_line == 2 and qs[1].source_line == 10  # the line where each entry starts
    assert q.extra["caption_2"] == "fit and flare"
    assert qs[1].text == "dress is black without stripes and it has long sleeves"


def test_roles_from_vocabulary() -> None:
    vocab = {"black", "stripes", "long sleeves", "white", "casual", "shiny", "silver"}
    qs = list(read_fashioniq_queries(ROOT, "val", categories=("dress", "shirt"), vocabulary=vocab))
    assert qs[0].added == ("shiny", "silver")
    assert qs[1].added == ("black", "long sleeves") and qs[1].removed == ("stripes",)
    assert qs[2].added == ("white",) and qs[2].mentioned == ("casual",)  # "more casual" is a comparative


def test_test_split_has_no_target() -> None:
    (q,) = read_fashioniq_queries(ROOT, "test", categories=("dress",))
    assert q.target_id is None and q.text == "dress yello and more flowing and it short and black"


def test_images_metadata_only_and_with_folder() -> None:
    imgs = list(read_fashioniq_images(ROOT, "val", categories=("dress", "shirt")))
    assert [r.id for r in imgs] == ["B005X4PL1G", "B0084Y8XIU", "B008XODTD0", "B00AKLK08G", "B00SHIRT01",
                                    "B00SHIRT02"]  # B0084Y8XIU once, though listed under both categories
    assert all(r.image_path == "" and r.split == "val" for r in imgs)
    shared = imgs[1]
    assert AttributeValue("texture", "flower") in shared.attributes
    assert AttributeValue("part", "long sleeves") in shared.attributes  # merged from the shirt file
    assert AttributeValue("category", "top") in shared.attributes
    with_images = next(read_fashioniq_images(ROOT, "val", categories=("dress",), images_dir="/img"))
    assert with_images.image_path == "/img/B005X4PL1G.png"


def test_attribute_kinds() -> None:
    attrs = read_fashioniq_attributes(ROOT, "dress", "val")
    assert attrs["B005X4PL1G"] == (AttributeValue("category", "dress"), AttributeValue("fabric", "cotton"),
                                   AttributeValue("shape", "a-line"), AttributeValue("part", "back cutout"),
                                   AttributeValue("style", "summer"))
    assert read_fashioniq_attributes(ROOT, "toptee", "val") == {}


def _layout(tmp_path: Path, captions: str) -> Path:
    (tmp_path / "captions").mkdir()
    p = tmp_path / "captions" / "cap.dress.val.json"
    p.write_text(captions)
    return p


def test_missing_candidate(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = _layout(tmp_path, '[\n {"candidate": "A", "target": "B", "captions": ["x", "y"]},\n'
                          ' {"target": "B", "captions": ["x", "y"]}\n]')
    with pytest.raises(ReaderError) as e:
        list(read_fashioniq_queries(tmp_path, "val", categories=("dress",)))
    assert_names(e.value, p, 3, "candidate")


def test_missing_target_outside_test(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = _layout(tmp_path, '[{"candidate": "A", "captions": ["x", "y"]}]')
    with pytest.raises(ReaderError) as e:
        list(read_fashioniq_queries(tmp_path, "val", categories=("dress",)))
    assert_names(e.value, p, 1, "target")


def test_bad_captions_field(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = _layout(tmp_path, '[\n{"candidate": "A", "target": "B", "captions": "x"}]')
    with pytest.raises(ReaderError) as e:
        list(read_fashioniq_queries(tmp_path, "val", categories=("dress",)))
    assert_names(e.value, p, 2, "captions")


def test_truncated_caption_file(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    p = _layout(tmp_path, '[\n {"candidate": "A", "target": "B", "captions": ["x", "y"]},\n {"candidate": "C", "tar')
    with pytest.raises(ReaderError) as e:
        list(read_fashioniq_queries(tmp_path, "val", categories=("dress",)))
    assert_names(e.value, p, 3, "(element)")


def test_bad_attribute_entry(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    (tmp_path / "attributes").mkdir()
    p = tmp_path / "attributes" / "asin2attr.dress.val.json"
    p.write_text('{\n"A": [[], [], [], [], [], []],\n"B": [["dress"], []]\n}')
    with pytest.raises(ReaderError) as e:
        read_fashioniq_attributes(tmp_path, "dress", "val")
    assert_names(e.value, p, 3, "B")


# --- the real files ---------------------------------------------------------------------------------------

def test_real_val_has_6016_triplets(fashioniq_dir: Path) -> None:
    t = time.perf_counter()
    qs = list(read_fashioniq_queries(fashioniq_dir, "val"))
    assert len(qs) == 6016
    assert {q.group: 0 for q in qs}.keys() == {"dress", "shirt", "toptee"}
    assert all(q.target_id for q in qs)
    assert qs[0].text == "dress is shiny and silver with shorter sleeves and it fit and flare"
    assert time.perf_counter() - t < 3


def test_real_test_split_and_galleries(fashioniq_dir: Path) -> None:
    qs = list(read_fashioniq_queries(fashioniq_dir, "test"))
    assert len(qs) == 6118 and all(q.target_id is None for q in qs)
    assert len(gallery(fashioniq_dir, "dress", "val")) == 3817


def test_real_vocabulary(fashioniq_dir: Path) -> None:
    vocab = fashioniq_vocabulary(fashioniq_dir)
    assert len(vocab) == 926 and {"a-line", "back cutout"} <= vocab
