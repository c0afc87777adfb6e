"""Caption parsing: template direction, change constructions, negation and its reach, comparatives, the
lexicon (synonyms, families, variants), typos, confidence, linear time, caption split."""

from __future__ import annotations

import pytest

from readers.captions import (
    CaptionRoles,
    Vocabulary,
    WorkCounter,
    caption_split_attributes,
    lexicon_vocabulary,
    mentions,
    negated_spans,
    parse_relative_caption,
)
from readers.captions.tokens import TypoIndex, damerau, lemma

VOCAB = {"white", "black", "red", "blue", "Navy Blue", "stripes", "long sleeves", "sleeves", "shiny", "silver",
         "dress", "a-line", "line", "floral", "cotton"}
# A catalog-like vocabulary: myntra-small's kinds of values.
CATALOG = Vocabulary({"black", "white", "grey", "navy blue", "blue", "red", "maroon", "pink", "off white", "cream",
                      "brown", "beige", "olive", "gold", "silver", "steel", "men", "women", "boys", "tshirts",
                      "shirts", "tops", "jackets", "sweaters", "caps", "casual shoes", "sports shoes", "heels",
                      "shorts", "casual", "formal", "sports", "collar", "sleeveless"})


def roles(text: str, vocab=CATALOG) -> tuple[tuple[str, ...], tuple[str, ...]]:
    r = parse_relative_caption(text, vocab)
    return r.added, r.removed


def test_template_keeps_direction() -> None:
    a = parse_relative_caption("replace blue with white", VOCAB)
    b = parse_relative_caption("replace white with blue", VOCAB)
    assert (a.added, a.removed) == (("white",), ("blue",)) and a.confidence == 1.0
    assert (b.added, b.removed) == (("blue",), ("white",))


def test_template_multiword_values_match_whole() -> None:
    r = parse_relative_caption("replace navy blue with black", VOCAB)
    assert r.removed == ("navy blue",) and r.added == ("black",)
    r = parse_relative_caption("Replace Black with Navy  Blue", VOCAB)
    assert r.removed == ("black",) and r.added == ("navy blue",)


def test_template_with_unknown_words_keeps_the_words() -> None:
    # Fashion200K captions: the differing words need not be in the vocabulary.
    r = parse_relative_caption("replace midi with maxi", VOCAB)
    assert (r.added, r.removed) == (("maxi",), ("midi",))
    assert roles("replace it with blue", VOCAB) == (("blue",), ())  # a pronoun is no value


@pytest.mark.parametrize(("text", "added", "removed"), [
    # what people type for "replace navy blue with black" and its kin
    ("in black", ("black",), ()),
    ("black, not navy", ("black",), ("navy blue",)),
    ("black not navy", ("black",), ("navy blue",)),
    ("not navy, black", ("black",), ("navy blue",)),
    ("not navy but black", ("black",), ("navy blue",)),
    ("swap the red for gray", ("grey",), ("red",)),
    ("swap out the red for grey", ("grey",), ("red",)),
    ("red -> grey", ("grey",), ("red",)),
    ("red \u2192 grey", ("grey",), ("red",)),
    ("red to grey", ("grey",), ("red",)),
    ("from red to grey", ("grey",), ("red",)),
    ("change it to olive", ("olive",), ()),
    ("change the red to brown", ("brown",), ("red",)),
    ("switch to beige", ("beige",), ()),
    ("turn it blue", ("blue",), ()),
    ("go for white", ("white",), ()),
    ("a white one", ("white",), ()),
    ("the white version", ("white",), ()),
    ("white please", ("white",), ()),
    ("cream instead of pink", ("cream",), ("pink",)),
    ("instead of pink, cream", ("cream",), ("pink",)),
    ("brown rather than black", ("brown",), ("black",)),
    ("rather brown than black", ("brown",), ("black",)),
    ("i'd prefer blue over red", ("blue",), ("red",)),
    ("substitute blue for red", ("blue",), ("red",)),
    ("red out, blue in", ("blue",), ("red",)),
    ("make it black instead of brown", ("black",), ("brown",)),
    ("no more red, make it white", ("white",), ("red",)),
    ("get rid of the black", (), ("black",)),
    ("lose the pink", (), ("pink",)),
    ("something like this but not red", (), ("red",)),
    # gender and article type
    ("mens version", ("men",), ()),
    ("for women", ("women",), ()),
    ("womens cut instead of mens", ("women",), ("men",)),
    ("a jacket not a sweater", ("jackets",), ("sweaters",)),
    ("a tshirt instead of a top", ("tshirts",), ("tops",)),
    ("casual shoes instead of sports shoes", ("casual shoes",), ("sports shoes",)),
    ("t-shirt", ("tshirts",), ()),  # a caption that only names an item asks for it
])
def test_shopper_phrasings(text: str, added: tuple[str, ...], removed: tuple[str, ...]) -> None:
    assert roles(text) == (added, removed)


@pytest.mark.parametrize(("text", "added", "removed", "negated"), [
    ("not red", (), ("red",), ("red",)),
    ("is not red", (), ("red",), ("red",)),
    ("doesn't have a collar", (), ("collar",), ("collar",)),
    ("does not have a collar", (), ("collar",), ("collar",)),
    ("it is not sleeveless", (), ("sleeveless",), ("sleeveless",)),
    ("isn't sleeveless", (), ("sleeveless",), ("sleeveless",)),
    ("no collar, in black", ("black",), ("collar",), ("collar",)),
    ("without the collar and not grey", (), ("collar", "grey"), ("collar", "grey")),
    ("not red, pink or maroon", (), ("red", "pink", "maroon"), ("red", "pink", "maroon")),
    ("no red and no pink", (), ("red", "pink"), ("red", "pink")),
    ("black and white, not grey", ("black", "white"), ("grey",), ("grey",)),
    ("not grey and has a collar", ("collar",), ("grey",), ("grey",)),
    ("replace red with blue", ("blue",), ("red",), ()),  # a replacement removes without negating
    ("less red", (), ("red",), ()),
    ("remove the red and the pink", (), ("red", "pink"), ()),
])
def test_negation_and_its_reach(text, added, removed, negated) -> None:
    r = parse_relative_caption(text, CATALOG)
    assert (r.added, r.removed, r.negated) == (added, removed, negated)


def test_negation_stops_at_a_preposition_or_an_add_cue_once_it_negated_something() -> None:
    v = Vocabulary(lexicon_vocabulary())
    r = parse_relative_caption("has no words on the graphic", v)
    assert r.removed == ("text",) and r.added == ("graphic",)
    r = parse_relative_caption("no stripes with a pocket", v)
    assert r.removed == ("stripe",) and r.added == ("pocket",)
    r = parse_relative_caption("no sleeves and a v neck", v)  # a new determiner: a new, positive phrase
    assert r.removed == ("sleeve",) and r.added == ("v neck",)


@pytest.mark.parametrize(("text", "added", "removed"), [
    ("instead of a collar it has a hood", ("hood",), ("collar",)),
    ("black instead of the white with stripes", ("black", "stripe"), ("white",)),
    ("a shirt from the same brand in blue", ("blue",), ()),  # "from" without "to" is no change
    ("has a turn-down collar", ("collar",), ()),  # "turn" without a connector is no change
    ("not only red but also blue", ("red", "blue"), ()),
    ("change the collar to a v neck", ("v neck",), ("collar",)),
    ("does not have a collar or buttons but has a zipper", ("zipper",), ("collar", "button")),
    ("is not as long", (), ()),  # a comparative ("less long"), not a removal
])
def test_reach_of_change_constructions(text, added, removed) -> None:
    v = Vocabulary(lexicon_vocabulary())
    assert roles(text, v) == (added, removed)


@pytest.mark.parametrize(("text", "removed", "mentioned"), [
    ("is a no sleeved tank top with art", ("sleeve",), ("tank top",)),  # the noun after it names the item
    ("not a red shirt", ("red",), ("shirt",)),
    ("not a t shirt", ("t shirt",), ()),  # the garment itself negated
    ("is not striped and not a tank top", ("stripe", "tank top"), ()),
])
def test_a_garment_noun_after_a_negated_word_names_the_item(text, removed, mentioned) -> None:
    v = Vocabulary(lexicon_vocabulary())
    r = parse_relative_caption(text, v)
    assert {v.concept_of(x) for x in r.removed} == set(removed)
    assert {v.concept_of(x) for x in r.mentioned} == set(mentioned)


@pytest.mark.parametrize(("text", "added", "removed", "comparatives"), [
    ("is less shiny and a brown colour", ("brown",), ("shiny",), ()),  # a new determiner ends "less"
    ("less striped and a red one", ("red",), ("stripe",), ()),
    ("more red and white", ("red", "white"), (), ()),  # no determiner: "more" goes on
    ("is less colorful", (), (), ("less colorful",)),  # colourful is a degree: graded, not removed
    ("more colourful with long sleeves", ("long sleeve",), (), ("more colourful",)),
    ("not as colorful", (), (), ("less colorful",)),  # "not as X" is "less X"
    ("is not as shiny", (), ("shiny",), ()),  # ... and less of a material removes it
    ("not so revealing", (), (), ("less revealing",)),
    ("has less wording", (), ("text",), ()),
])
def test_graded_words_reach_one_phrase(text, added, removed, comparatives) -> None:
    r = parse_relative_caption(text, Vocabulary(lexicon_vocabulary()))
    assert (r.added, r.removed, tuple(c.text for c in r.comparatives)) == (added, removed, comparatives)
    assert r.negated == ()


@pytest.mark.parametrize(("text", "added", "removed", "comparatives"), [
    # a more/less that graded a quality goes on across "and" to qualities only; an attribute is asserted
    ("is less fitted and purple", ("purple",), (), ("less fitted",)),
    ("is more casual and sleeveless", ("sleeveless",), (), ("more casual",)),
    ("more casual and edgy", (), (), ("more casual", "more edgy")),
    ("less floral and pink", (), ("floral", "pink"), ()),  # after a removal it goes on, as before
    # the lightness words are degrees, like colourful: graded, they are comparatives
    ("is less bright", (), (), ("less bright",)),
    ("is more dark", (), (), ("more dark",)),
    ("is less colourful and bright", (), (), ("less colourful", "less bright")),
    ("is light coloured", ("light",), (), ()),  # ... and asserted, an attribute
    # a comparative waits across "and" for a part only when another comparative follows
    ("is shorter and striped", ("stripe",), (), ("shorter",)),
    ("is darker and belted", ("belt",), (), ("darker",)),
])
def test_graded_words_across_and(text, added, removed, comparatives) -> None:
    r = parse_relative_caption(text, Vocabulary(lexicon_vocabulary()))
    assert (r.added, r.removed, tuple(c.text for c in r.comparatives)) == (added, removed, comparatives)


@pytest.mark.parametrize(("text", "added", "removed", "mentioned"), [
    # "not" + a maximiser denies the totality: the attribute is there in part
    ("is not an entire button up", (), (), ("button",)),
    ("is not all black", (), (), ("black",)),
    ("not completely sheer", (), (), ("sheer",)),
    # a locative preposition after a word the negation reached places it; the place is not negated
    ("has no opening on the top", (), (), ("top",)),
    ("has no holes on top", (), (), ("top",)),  # a place, not an item asked for
    ("no hint of pink", (), ("pink",), ()),  # "of" is not a place
    # a part every item has, right after a negated value, is where the value is
    ("does not have a white sole", (), ("white",), ("sole",)),
    ("no lace heel bow", (), ("lace", "bow"), ("heel",)),
    ("has no heel", (), ("heel",), ()),  # the part itself negated
    # a feature (the shape of a part) does not continue a negated list of details across "and"
    ("has no collar and long sleeves", ("long sleeve",), ("collar",), ()),
    ("has no sleeves and off shoulder", ("off shoulder",), ("sleeve",), ()),
    ("no buttons and pockets", (), ("button", "pocket"), ()),
])
def test_what_a_negation_does_not_reach(text, added, removed, mentioned) -> None:
    r = parse_relative_caption(text, Vocabulary(lexicon_vocabulary()))
    assert (r.added, r.removed, r.mentioned) == (added, removed, mentioned)


@pytest.mark.parametrize(("text", "removed"), [
    ("has no bowtie", ("bow tie",)),  # a run-together word of its own, not a typo of "bootie"
    ("not a wooden heel", ("wood",)),
    ("does not light up", ("light up",)),  # not the shade "light"
    ("not an elastic panel", ("elastic",)),
    ("has no cap toe", ("cap toe",)),  # not the garment "cap"
    ("not a square toe", ("square toe",)),
])
def test_lexicon_words_for_removals(text, removed) -> None:
    assert parse_relative_caption(text, Vocabulary(lexicon_vocabulary())).removed == removed


def test_a_body_location_is_no_attribute() -> None:
    # FashionIQ's attribute files list "shoulder"; the labels never do (a place on the body)
    v = Vocabulary(lexicon_vocabulary() | {"shoulder", "bow"})
    r = parse_relative_caption("has a bow on the shoulder", v)
    assert (r.added, r.mentioned) == (("bow",), ())
    assert parse_relative_caption("is off shoulder", v).added == ("off shoulder",)


@pytest.mark.parametrize(("text", "added", "comparatives"), [
    ("darker", (), (("darker", "lightness", -1, ""),)),
    ("a lighter one", (), (("lighter", "lightness", 1, ""),)),
    ("shorter sleeves", (), (("shorter sleeve", "length", -1, "sleeve"),)),
    ("higher and narrower heel", (), (("higher heel", "height", 1, "heel"), ("narrower heel", "width", -1, "heel"))),
    ("lighter grey", ("grey",), (("lighter", "lightness", 1, ""),)),  # a colour is added, not graded
    ("more casual", (), (("more casual", "casual", 1, ""),)),
    ("less revealing", (), (("less revealing", "revealing", -1, ""),)),
    ("more blue", ("blue",), ()),  # more of a colour adds it
    ("bluer", ("blue",), ()),
])
def test_comparatives_have_a_direction(text, added, comparatives) -> None:
    r = parse_relative_caption(text, Vocabulary(lexicon_vocabulary()))
    assert r.added == added
    assert tuple((c.text, c.quality, c.direction, c.part) for c in r.comparatives) == comparatives


def test_lexicon_synonyms_families_and_spelling_variants() -> None:
    assert roles("navy") == (("navy blue",), ())
    assert roles("gray") == (("grey",), ())
    assert roles("offwhite") == roles("off-white") == roles("off white") == (("off white",), ())
    # a near miss falls back to its family, at a lower confidence
    assert roles("cobalt") == (("blue",), ())  # another name for blue
    pale = parse_relative_caption("light pink", CATALOG)
    assert pale.added == ("pink",) and pale.confidence < parse_relative_caption("pink", CATALOG).confidence
    assert roles("wine coloured") == (("maroon",), ())
    v = Vocabulary({"high neck", "sleeves"})
    assert mentions("a high-neck top", v) == mentions("a highneck top", v) == mentions("a high neck top", v) == (
        "high neck",)
    assert mentions("one sleeve", v) == mentions("sleeves", v) == ("sleeves",)


def test_garment_nouns_that_only_name_the_item_are_mentioned() -> None:
    r = parse_relative_caption("the shirt is black", CATALOG)
    assert r.added == ("black",) and r.mentioned == ("shirts",)
    r = parse_relative_caption("same tshirt in blue", CATALOG)
    assert r.added == ("blue",) and r.mentioned == ("tshirts",)
    assert roles("in tshirts")[0] == ("tshirts",)  # asked for


def test_typos_are_corrected_by_edit_distance_with_a_guard() -> None:
    for typo, value in (("bleu", "blue"), ("blakc", "black"), ("whte", "white"), ("pinkk", "pink"),
                        ("browm", "brown"), ("blaack", "black"), ("redd", "red"), ("off whitee", "off white")):
        r = parse_relative_caption(f"in {typo}", CATALOG)
        assert r.added == (value,), typo
        assert r.confidence < 1.0  # a corrected word lowers the confidence
    assert roles("womens verison")[0] == ("women",)  # a misspelt cue word
    assert roles("pink one insted")[0] == ("pink",)
    assert roles("chnage red to blue") == (("blue",), ("red",))
    # the guard: short words, English words and names are left alone
    assert roles("in tab")[0] == ()  # too short to correct
    assert roles("a bold look")[0] == ()  # "bold" is a word, not a misspelt "gold"
    assert roles("a Rolex like Steel")[0] == ("steel",)
    assert damerau("blakc", "black", 1) == 1 and damerau("abc", "xyz", 1) == 2
    index = TypoIndex(["black", "blue"], known=["bled"])
    assert index.candidates("blck") == ("black",) and index.candidates("bled") == ()


def test_lemmas() -> None:
    assert lemma("sleeves") == lemma("sleeve") and lemma("dresses") == "dress" and lemma("watches") == "watch"
    assert lemma("shorts") != lemma("short") and lemma("heels") != lemma("heel")  # plural-only garments
    assert lemma("men's") == "men" and lemma("gray") == "grey" and lemma("doesn't") == "doesnt"
    assert lemma("accessories") == lemma("accessory") and lemma("hoodies") == lemma("hoodie")


def test_confidence_says_how_sure_the_reading_is() -> None:
    assert parse_relative_caption("replace red with blue", CATALOG).confidence == 1.0
    assert parse_relative_caption("something similar", CATALOG) == CaptionRoles(confidence=0.0)
    vague = parse_relative_caption("something darker", CATALOG)
    assert vague.unsure and not vague.changes and vague.comparatives
    assert not parse_relative_caption("black, not navy", CATALOG).unsure


def test_other_known_attributes_and_values() -> None:
    r = parse_relative_caption("a floral dress, make it white", VOCAB)
    assert r.added == ("floral", "white") and r.mentioned == ("dress",)
    assert parse_relative_caption("nothing known here", VOCAB) == CaptionRoles(confidence=0.0)


def test_mentions_longest_phrase_first_at_word_boundaries() -> None:
    assert mentions("Navy Blue and blue stripes", VOCAB) == ("navy blue", "blue", "stripes")
    assert mentions("an a-line dress", VOCAB) == ("a-line", "dress")  # not "line" inside "a-line"
    assert mentions("bluebird", VOCAB) == ()
    assert mentions("long sleeves, short sleeves", VOCAB) == ("long sleeves", "sleeves")  # short: its family
    v = Vocabulary(VOCAB)
    assert "navy blue" in v and "Navy  Blue" in v and len(v) == len(VOCAB)
    assert mentions("RED dress", v) == ("red", "dress")
    assert mentions("red", []) == ()


def test_a_vocabulary_value_made_of_other_values_is_matched_as_them() -> None:
    v = Vocabulary({"belted", "floral", "belted floral print", "sports sandals", "sandals", "sports"})
    assert mentions("a belted floral print dress", v) == ("belted", "floral")
    assert mentions("sports sandals", v) == ("sports sandals",)  # a product line keeps its name


def test_negated_spans_cover_words_no_vocabulary_knows() -> None:
    text = "it is not a mandarin collar"
    spans = negated_spans(text, CATALOG)
    covered = " ".join(text[a:b] for a, b in spans)
    assert "mandarin" in covered and "collar" in covered
    assert negated_spans("it has long sleeves", CATALOG) == []


def test_parsing_is_linear_in_the_caption_length() -> None:
    unit = "the same shirt but in navy blue, not black, without a collar and swap grey for white; "
    steps = []
    for times in (60, 600):  # about 5,000 and 50,000 characters
        work = WorkCounter()
        parse_relative_caption(unit * times, CATALOG, work=work)
        steps.append(work.steps)
    assert steps[0] > 60 * 10
    assert steps[1] <= 10 * steps[0] * 1.02  # ten times the text, ten times the work (not a hundred)


def test_caption_split_attributes() -> None:
    assert caption_split_attributes("black midi dress") == ["black", "midi dress"]
    assert caption_split_attributes("  Blue   floral print maxi dress ") == ["blue", "floral print maxi dress"]
    assert caption_split_attributes("dress") == ["dress"]
    assert caption_split_attributes("") == []
