"""The phrasing grammar: held-apart shapes share nothing with training ones, renderings are what the parser
reads, typos are one slip that makes no English word."""

from __future__ import annotations

import random

import pytest

from readers.captions import Vocabulary, parse_relative_caption
from readers.captions.tokens import english_words, tokenize
from readers.phrasings import HELD_APART, TEMPLATE, TRAINING, render, surfaces, typo

VOCAB = Vocabulary({"navy blue", "black", "grey", "white", "men", "women", "tshirts", "tops", "casual", "formal"})
CASES = [("colour", "navy blue", "black"), ("colour", "grey", "white"), ("gender", "men", "women"),
         ("article_type", "tshirts", "tops"), ("usage", "casual", "formal")]


def _cue_words(text: str) -> set[str]:
    return {t.lemma for t in tokenize(text.replace("{A}", "").replace("{B}", ""))}


def test_held_apart_shapes_are_disjoint_from_training() -> None:
    train_ids = {p.id for p in TRAINING}
    assert not train_ids & {p.id for p in HELD_APART}
    assert TEMPLATE in TRAINING and TEMPLATE not in HELD_APART
    train_texts = {p.text for p in TRAINING}
    for p in HELD_APART:
        assert p.text not in train_texts
    # the cue words that make a held-apart shape never appear in a training one
    train_words = set().union(*(_cue_words(p.text) for p in TRAINING))
    for word in ("swap", "swapp", "->", "version", "one", "go", "rather", "rathr", "have"):
        assert word not in train_words, word
    assert sum(p.typos for p in HELD_APART) >= 3


@pytest.mark.parametrize("phrasing", [*TRAINING, *HELD_APART], ids=lambda p: p.id)
def test_every_phrasing_is_read_as_its_change(phrasing) -> None:
    for kind, source, target in CASES:
        if not phrasing.fits(kind):
            continue
        for variant in (0, 1):
            rng = random.Random(f"{phrasing.id}{source}{variant}")
            text = render(phrasing, source, target, kind, rng, variant=variant)
            r = parse_relative_caption(text, VOCAB)
            if "{B}" in phrasing.text:
                assert target in r.added, (text, r)
            if phrasing.names_source:
                assert source not in r.added, (text, r)


def test_typos_are_one_slip_and_never_a_word() -> None:
    rng = random.Random(0)
    words = english_words()
    for word in ("black", "white", "purple", "tshirts", "sandals", "navy"):
        for _ in range(20):
            t = typo(word, rng)
            assert t != word and t not in words
            assert abs(len(t) - len(word)) <= 1 and t[0] == word[0]
    assert typo("red", rng) == "redd"  # a short word gets the one slip the parser corrects


def test_surfaces_are_ways_people_write_a_value() -> None:
    assert surfaces("navy blue", "colour")[0] == "navy blue" and "navy" in surfaces("navy blue", "colour")
    assert "gray" in surfaces("grey", "colour")
    assert "tshirt" in surfaces("tshirts", "article_type")
    assert "mens" in surfaces("men", "gender")
    for kind, source, _ in CASES:
        for s in surfaces(source, kind):
            assert parse_relative_caption(f"in {s}", VOCAB).added == (source,), s
