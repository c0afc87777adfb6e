"""Caption parsing: template direction, free-text cues, phrase matching, caption split."""

from __future__ import annotations

import pytest

from readers.captions import (
    CaptionRoles,
    Vocabulary,
    caption_split_attributes,
    mentions,
    parse_relative_caption,
)

VOCAB = {"white", "black", "red", "blue", "Navy Blue", "stripes", "long sleeves", "sleeves", "shiny", "silver",
         "dress", "a-line", "line", "floral", "cotton"}


def test_template_keeps_direction() -> None:
    a = parse_relative_caption("replace blue with white", VOCAB)
    b = parse_relative_caption("replace white with blue", VOCAB)
    assert a == CaptionRoles(added=("white",), removed=("blue",))
    assert b == CaptionRoles(added=("blue",), removed=("white",))


def test_template_multiword_values_match_whole() -> None:
    r = parse_relative_caption("replace navy blue with black", VOCAB)
    assert r.removed == ("navy blue",) and r.added == ("black",)
    r = parse_relative_caption("Replace Black with Navy  Blue", VOCAB)
    assert r.removed == ("black",) and r.added == ("navy blue",)


def test_template_with_unknown_words_keeps_the_words() -> None:
    # Fashion200K captions: the differing words need not be in the vocabulary.
    assert parse_relative_caption("replace midi with maxi", VOCAB) == CaptionRoles(added=("maxi",), removed=("midi",))


@pytest.mark.parametrize(("text", "added", "removed"), [
    ("make it white", ("white",), ()),
    ("in black", ("black",), ()),
    ("change to red", ("red",), ()),
    ("more blue", ("blue",), ()),
    ("with long sleeves", ("long sleeves",), ()),
    ("without stripes", (), ("stripes",)),
    ("no stripes", (), ("stripes",)),
    ("remove the stripes", (), ("stripes",)),
    ("not red", (), ("red",)),
    ("is not red", (), ("red",)),
    ("change blue to white", ("white",), ("blue",)),
    ("change white to blue", ("blue",), ("white",)),
    ("is black and has no stripes", ("black",), ("stripes",)),
    ("is shiny and silver", ("shiny", "silver"), ()),
    ("a red dress instead of a blue one", ("red", "dress"), ("blue",)),
    ("not red but blue", ("blue",), ("red",)),
])
def test_free_text_roles(text: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    r = parse_relative_caption(text, VOCAB)
    assert (r.added, r.removed) == (added, removed)


def test_other_known_attributes_are_mentioned() -> None:
    r = parse_relative_caption("a floral dress, make it white", VOCAB)
    assert r.added == ("white",) and r.mentioned == ("floral", "dress")
    assert parse_relative_caption("nothing known here", VOCAB) == CaptionRoles()


def test_mentions_exact_phrases_longest_first_word_boundaries() -> None:
    assert mentions("Navy Blue and blue stripes", VOCAB) == ("navy blue", "blue", "stripes")
    assert mentions("an a-line dress", VOCAB) == ("a-line", "dress")  # not "line" inside "a-line"
    assert mentions("reddish bluebird", VOCAB) == ()
    assert mentions("long sleeves, short sleeves", VOCAB) == ("long sleeves", "sleeves")
    v = Vocabulary(VOCAB)
    assert "navy blue" in v and "Navy  Blue" in v and len(v) == len(VOCAB)
    assert mentions("RED dress", v) == ("red", "dress")
    assert mentions("red", []) == ()


def test_caption_split_attributes() -> None:
    assert caption_split_attributes("black midi dress") == ["black", "midi dress"]
    assert caption_split_attributes("  Blue   floral print maxi dress ") == ["blue", "floral print maxi dress"]
    assert caption_split_attributes("dress") == ["dress"]
    assert caption_split_attributes("") == []
