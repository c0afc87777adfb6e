"""Fashion200K in TIRG's layout, on fixtures written in exactly that format (no images needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from readers.fashion200k import (
    CaptionIndex,
    different_word,
    image_id_from_path,
    label_files,
    read_fashion200k_images,
    read_fashion200k_test_queries,
)
from readers.records import AttributeValue, ReaderError

ROOT = Path(__file__).resolve().parent / "fixtures" / "fashion200k"


def test_label_files_by_split() -> None:
    assert [p.name for p in label_files(ROOT, "train")] == ["dress_train_detect_all.txt", "jacket_train_detect_all.txt"]
    assert [p.name for p in label_files(ROOT, "test")] == ["dress_test_detect_all.txt", "skirt_test_detect_all.txt"]


def test_image_ids_from_paths() -> None:
    assert image_id_from_path("women/dresses/casual/100/100_0.jpeg") == "women/dresses/casual/100/100_0"
    assert image_id_from_path("women/dresses/casual/100/100_0.jpeg", "stem") == "100_0"


def test_read_images() -> None:
    imgs = list(read_fashion200k_images(ROOT, "train"))
    assert len(imgs) == 7
    first = imgs[0]
    assert first.id == "women/dresses/casual/100/100_0" and first.title == "black midi dress"
    assert first.split == "train" and first.source_line == 1
    assert first.image_path == str(ROOT / "women/dresses/casual/100/100_0.jpeg")
    assert first.attributes == (AttributeValue("category", "dress"), AttributeValue("caption", "black"),
                                AttributeValue("caption", "midi dress"))
    stems = [r.id for r in read_fashion200k_images(ROOT, "test", id_style="stem", caption_attributes=False)]
    assert stems == ["300_0", "301_0", "302_0", "400_0", "401_0"]


def test_different_word_is_tirgs() -> None:
    assert different_word("white lace dress", "red lace dress") == ("white", "red", "replace white with red")
    assert different_word("red lace dress", "white lace dress") == ("red", "white", "replace red with white")
    assert different_word("pleated mini skirt", "denim mini skirt")[2] == "replace pleated with denim"


def test_test_queries() -> None:
    imgs = list(read_fashion200k_images(ROOT, "test"))
    qs = read_fashion200k_test_queries(ROOT, imgs)
    assert [q.text for q in qs] == ["replace white with red", "replace red with white", "replace pleated with denim"]
    q = qs[0]
    assert q.candidate_id == "women/dresses/cocktail/300/300_0" and q.target_id == "women/dresses/cocktail/301/301_0"
    assert q.added == ("red",) and q.removed == ("white",) and q.split == "test"
    assert q.extra["target_caption"] == "red lace dress"


def test_training_queries_from_parent_captions() -> None:
    index = CaptionIndex.build(read_fashion200k_images(ROOT, "train"))
    # "black midi dress" / "blue midi dress" share parent "midi dress"; "black midi" / "black maxi" share
    # "black dress"; the jackets share "leather jacket". The gown has no sibling caption.
    assert set(index.parent_children) == {"midi dress", "black dress", "leather jacket"}
    assert "women/dresses/casual/103/103_0" not in index.modifiable()
    assert len(index.modifiable()) == 6
    qs = list(index.training_queries(per_image=3, seed=0))
    assert len(qs) == 18
    for q in qs:
        src, tgt = q.extra["source_caption"], q.extra["target_caption"]
        assert src != tgt and len(src.split()) == len(tgt.split())
        assert q.text == f"replace {q.removed[0]} with {q.added[0]}"
        assert q.removed[0] in src.split() and q.added[0] in tgt.split()
    assert qs == list(index.training_queries(per_image=3, seed=0))  # deterministic


def test_whole_word_parents_not_substrings(tmp_path: Path) -> None:
    # TIRG's str.replace would turn "red embroidered gown" into parents like "embroide gown" for "red".
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "dress_train_detect_all.txt").write_text("a.jpg\t1\tred embroidered gown\nb.jpg\t1\tblue embroidered gown\n")
    index = CaptionIndex.build(read_fashion200k_images(tmp_path, "train"))
    assert set(index.parent_children) == {"embroidered gown"}


@pytest.mark.parametrize(("line", "field"), [
    ("x.jpg\t0.5", "caption"),
    ("x.jpg", "score"),
    ("x.jpg\tnot-a-number\tred dress", "score"),
    ("\t0.5\tred dress", "path"),
    ("x.jpg\t0.5\t  ", "caption"),
])
def test_bad_label_lines(tmp_path: Path, line: str, field: str, assert_names: Callable[..., None]) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    f = labels / "dress_train_detect_all.txt"
    f.write_text("ok.jpg\t0.9\tblack dress\n" + line + "\n")
    with pytest.raises(ReaderError) as e:
        list(read_fashion200k_images(tmp_path, "train"))
    assert_names(e.value, f, 2, field)


def test_conflicting_caption_for_same_path(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    labels = tmp_path / "labels"
    labels.mkdir()
    f = labels / "dress_train_detect_all.txt"
    f.write_text("a.jpg\t0.9\tblack dress\na.jpg\t0.9\tblack dress\na.jpg\t0.9\tred dress\n")
    with pytest.raises(ReaderError) as e:
        list(read_fashion200k_images(tmp_path, "train"))
    assert_names(e.value, f, 3, "caption")


def test_bad_test_query_lines(tmp_path: Path, assert_names: Callable[..., None]) -> None:
    imgs = list(read_fashion200k_images(ROOT, "test"))
    root = tmp_path
    (root / "test_queries.txt").write_text("women/dresses/cocktail/300/300_0.jpeg women/unknown.jpeg\n")
    with pytest.raises(ReaderError) as e:
        read_fashion200k_test_queries(root, imgs)
    assert_names(e.value, root / "test_queries.txt", 1, "target")
    (root / "test_queries.txt").write_text("\nwomen/dresses/cocktail/300/300_0.jpeg\n")
    with pytest.raises(ReaderError) as e:
        read_fashion200k_test_queries(root, imgs)
    assert_names(e.value, root / "test_queries.txt", 2, "target")
