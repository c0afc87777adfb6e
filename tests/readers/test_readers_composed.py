"""Composed queries from a catalog: grouping traps, duplicates, direction, split integrity, persistence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from readers.catalog import MYNTRA, read_catalog
from readers.composed import (
    ComposedConfig,
    ComposedQueries,
    balanced,
    build_composed_queries,
    group_key_title,
    load_or_build,
)
from readers.records import ImageRecord, ReaderError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CATALOG = FIXTURES / "catalog" / "products.csv"


@pytest.fixture(scope="module")
def records() -> list[ImageRecord]:
    return list(read_catalog(CATALOG, MYNTRA))


@pytest.fixture(scope="module")
def built(records: list[ImageRecord]) -> ComposedQueries:
    return build_composed_queries(records)


def pairs(cq: ComposedQueries, kind: str = "colour") -> set[tuple[str, str]]:
    return {(q.candidate_id, q.target_id) for q in cq.queries if q.extra["kind"] == kind}


# --- title rules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("title", "value", "key", "found"), [
    ("Red Tape Men Red Shoes", "Red", "red tape men shoes", True),  # the brand's "Red" stays
    ("Red Tape Men Black Shoes", "Black", "red tape men shoes", True),
    ("Red Tape Men Shoes", "Red", "red tape men shoes", False),  # only the brand has the word
    ("Black Coffee Men Solid Black Slim Fit Shirt", "Black", "black coffee men solid slim fit shirt", True),
    ("Esprit Women Houston White Gold Links Gold Watches", "Gold", "esprit women houston white gold links watches",
     True),  # last occurrence
    ("W Women Check Navy  Blue Kurtis", "Navy Blue", "w women check kurtis", True),  # multi-word value
    ("Nike Men Navy Blue Polo", "Blue", "nike men navy polo", True),
    ("Kiara Black Women Casual Handbag", "Black", "kiara women casual handbag", True),  # not the first word
    ("Probase Men Solid DK.Grey Trousers", "Grey", "probase men solid trousers", True),  # shade compound
    ("Nike Men Solid Off-White Polo Jerseys", "Off White", "nike men solid polo jerseys", True),
    ("Lee Men Check Shirt", "White", "lee men check shirt", False),  # name without its colour word
    ("Nike Men Bluebird Tee", "Blue", "nike men bluebird tee", False),  # whole words only
])
def test_group_key_title(title: str, value: str, key: str, found: bool) -> None:
    assert group_key_title(title, value) == (key, found)


# --- pairs on the fixture catalog -----------------------------------------------------------------------

def test_brand_colour_words_group_correctly(built: ComposedQueries) -> None:
    # Red Tape Men {Red, Black, Brown} Casual Shoes form one group: all 6 ordered pairs.
    assert {("1", "2"), ("2", "1"), ("1", "3"), ("3", "1"), ("2", "3"), ("3", "2")} <= pairs(built)
    # Black Coffee: "black" is stripped from the product's colour slot, not the brand.
    assert {("4", "5"), ("5", "4")} <= pairs(built)
    q = next(q for q in built.queries if (q.candidate_id, q.target_id) == ("5", "4"))
    assert q.text == "replace navy blue with black"
    assert q.removed == ("navy blue",) and q.added == ("black",)
    assert "black coffee" in q.group


def test_names_without_colour_word(built: ComposedQueries) -> None:
    # "Lee Men Check Shirt" (white), the same title (blue) and "Lee Men Check Green Shirt" share a group.
    assert {("6", "7"), ("7", "6"), ("6", "8"), ("8", "6"), ("7", "8"), ("8", "7")} <= pairs(built)
    assert built.stats["names_without_value"]["colour"] == 2  # ids 6 and 7; NA colour (15) is not counted
    assert next(q for q in built.queries if q.id == "colour:6>7").text == "replace white with blue"


def test_byte_identical_images_are_dropped_and_counted(built: ComposedQueries) -> None:
    got = pairs(built)
    assert ("13", "14") not in got and ("14", "13") not in got  # identical kurta images
    assert ("10", "12") not in got and ("12", "10") not in got  # identical polo images
    assert {("9", "10"), ("10", "9"), ("9", "12"), ("12", "9")} <= got
    assert built.stats["dropped_identical_pairs"] == 4
    assert built.stats["identical_image_sets"] == 2 and built.stats["identical_image_files"] == 4
    # The kurta group has no valid pair left: it is not a group, its images go to train.
    assert built.image_groups["13"] == "" and built.image_splits["13"] == "train"


def test_other_kinds_differ_in_exactly_one_attribute(built: ComposedQueries) -> None:
    assert pairs(built, "gender") == {("9", "11"), ("11", "9")}
    q = next(q for q in built.queries if q.id == "gender:9>11")
    assert q.text == "replace men with women" and q.added == ("women",) and q.removed == ("men",)
    # 11 (women, blue) and 10 (men, white) differ in two attributes: no pair of any kind.
    assert not any({q.candidate_id, q.target_id} == {"10", "11"} for q in built.queries)


def test_counts(built: ComposedQueries) -> None:
    c = built.counts()
    assert c["queries"] == 20 and c["by_kind"] == {"colour": 18, "gender": 2}
    assert sum(c["by_split"].values()) == 20
    assert c["groups_by_kind"] == {"colour": 4, "gender": 1}
    assert sum(sum(v.values()) for v in c["by_split_kind"].values()) == 20


def test_direction_and_template(records: list[ImageRecord]) -> None:
    cq = build_composed_queries(records, ComposedConfig(template="make it {target} instead of {source}"))
    q = next(q for q in cq.queries if q.id == "colour:2>1")
    assert q.text == "make it red instead of black" and q.added == ("red",) and q.removed == ("black",)
    rev = next(q for q in cq.queries if q.id == "colour:1>2")
    assert rev.added == ("black",) and rev.removed == ("red",)
    with pytest.raises(ValueError):
        ComposedConfig(template="replace {source}")


def _check_split_integrity(cq: ComposedQueries) -> None:
    """No test pair, test image or test group is seen in training."""
    for q in cq.queries:
        assert cq.image_splits[q.candidate_id] == q.split == cq.image_splits[q.target_id]
    groups = {s: {q.group for q in cq.queries if q.split == s} for s in ("train", "val", "test")}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["val"]
    assert not groups["val"] & groups["test"]
    train_images = {i for q in cq.split("train") for i in (q.candidate_id, q.target_id)}
    test_images = {i for q in cq.split("test") for i in (q.candidate_id, q.target_id)}
    assert not train_images & test_images


def test_split_by_group_is_consistent(built: ComposedQueries) -> None:
    _check_split_integrity(built)
    # images 9 (colour group) and 11 (gender group) are joined through 9: one unit, one split.
    assert built.image_splits["9"] == built.image_splits["10"] == built.image_splits["11"]
    assert built.image_splits["15"] == "train"  # in no group
    records = list(built.assign(read_catalog(CATALOG, MYNTRA)))
    assert {r.id: r.split for r in records} == built.image_splits
    assert next(r for r in records if r.id == "5").group.startswith("colour:black coffee")


def test_ratios_and_seed(records: list[ImageRecord]) -> None:
    all_test = build_composed_queries(records, ComposedConfig(ratios=(0, 0, 1)))
    assert {q.split for q in all_test.queries} == {"test"}
    all_train = build_composed_queries(records, ComposedConfig(ratios=(1, 0, 0)))
    assert {q.split for q in all_train.queries} == {"train"}
    with pytest.raises(ValueError):
        ComposedConfig(ratios=(0.5, 0.5, 0.5))


def test_split_is_stable_across_processes(built: ComposedQueries) -> None:
    """The split uses SHA-256, not the salted hash(): other hash seeds give the same result."""
    code = ("from readers.catalog import read_catalog, MYNTRA; from readers.composed import build_composed_queries;"
            f"import json; cq = build_composed_queries(read_catalog({str(CATALOG)!r}, MYNTRA));"
            "print(json.dumps(sorted((q.id, q.split) for q in cq.queries)))")
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert json.loads(out.stdout) == [list(x) for x in sorted((q.id, q.split) for q in built.queries)]


def test_save_and_load_roundtrip(built: ComposedQueries, records: list[ImageRecord], tmp_path: Path) -> None:
    path = built.save(tmp_path / "sub" / "queries.json")
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    loaded = ComposedQueries.load(path)
    assert loaded.queries == built.queries and loaded.image_splits == built.image_splits
    assert loaded.image_groups == built.image_groups and loaded.config == built.config
    assert loaded.counts() == built.counts()
    # load_or_build loads the saved file (records are not even looked at) ...
    assert load_or_build(path, []).queries == built.queries
    # ... and refuses a file built with another config.
    with pytest.raises(ValueError):
        load_or_build(path, records, ComposedConfig(seed=1))
    fresh = load_or_build(tmp_path / "new.json", records)
    assert (tmp_path / "new.json").exists() and fresh.queries == built.queries


def test_load_rejects_bad_files(tmp_path: Path, assert_names) -> None:
    p = tmp_path / "q.json"
    p.write_text('{"format": "something else"}')
    with pytest.raises(ReaderError) as e:
        ComposedQueries.load(p)
    assert_names(e.value, p, 1, "format")
    p.write_text('{"format": "tailor.composed-queries",\n "version": 1, "queries": [')
    with pytest.raises(ReaderError) as e:
        ComposedQueries.load(p)
    assert_names(e.value, p, 2, "(document)")


def test_balanced_caps_groups() -> None:
    from readers.records import QueryRecord
    qs = [QueryRecord(id=f"q{i}", candidate_id="a", target_id="b", text="t", split="test", group="big")
          for i in range(50)]
    qs += [QueryRecord(id=f"s{i}", candidate_id="a", target_id="b", text="t", split="test", group="small")
           for i in range(5)]
    qs += [QueryRecord(id="t0", candidate_id="a", target_id="b", text="t", split="train", group="big")]
    out = balanced(qs, per_group=20, seed=0)
    assert Counter(q.group for q in out) == {"big": 20, "small": 5}
    assert out == balanced(qs, per_group=20, seed=0)
    assert [q.id for q in out] == [q.id for q in qs if q in out]  # input order kept
    assert {q.id for q in out} != {q.id for q in balanced(qs, per_group=20, seed=1)}


# --- the real myntra-small catalog -----------------------------------------------------------------------

def test_myntra_composed_queries(myntra_dir: Path, tmp_path: Path) -> None:
    # Speed is a benchmark's business (a timed assertion fails on a busy machine), not a test's.
    cq = build_composed_queries(read_catalog(myntra_dir / "products.csv", MYNTRA))
    c = cq.counts()
    assert c["identical_image_sets"] == 106 and c["identical_image_files"] == 213
    assert c["dropped_identical_pairs"] > 0
    assert 1000 <= c["groups_by_kind"]["colour"] <= 1300
    assert 450 <= c["names_without_value"]["colour"] <= 520
    assert 50_000 <= c["by_kind"]["colour"] <= 60_000
    assert set(c["by_kind"]) == {"colour", "gender", "article_type", "usage"}
    assert all(c["by_split"][s] > 0 for s in ("train", "val", "test"))
    _check_split_integrity(cq)
    # One group dominates the test split; the balanced set caps it at 20.
    test_groups = Counter(q.group for q in cq.split("test"))
    bal = Counter(q.group for q in balanced(cq, per_group=20))
    assert max(bal.values()) <= 20 and len(bal) == len(test_groups)
    # Every query's caption really differs in one attribute value.
    q = next(q for q in cq.queries if q.candidate_id == "15970" and q.extra["kind"] == "colour")
    assert q.text.startswith("replace navy blue with ") and q.removed == ("navy blue",)
