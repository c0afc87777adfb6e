"""A grammar of the ways people ask for one change: "replace navy blue with black" is also "black, not
navy", "swap the navy for black", "in black", "a blak one". Pure: text in, text out.

A :class:`Phrasing` is a whole sentence shape with slots for the value to lose (``{A}``) and the value to
get (``{B}``). Two disjoint sets:

* :data:`TRAINING` shapes the model trains with (a caption is drawn from them per batch, so the
  caption's own text features must carry the change, not one fixed wording);
* :data:`HELD_APART` shapes training never sees; each test query is evaluated in every one of them. No
  held-apart shape shares its cue words with a training one (no "swap", "->", "version", "one", "go for",
  "rather", questions, "B, not A" in training), and three of them write the values, and a cue word, with
  typos (in held-apart shapes too: a typo in a training shape would not be a new shape).

Values are written the ways people write them (:func:`surfaces`: "navy blue" or "navy", "tshirts" as
"t-shirt" or "tee", "men" as "mens"), and a typo (:func:`typo`) is one edit of a word of four letters or
more (a short word gets a doubled letter: "redd").
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from readers.captions import lexicon as lx
from readers.captions.tokens import english_words, lemma

__all__ = ["HELD_APART", "TEMPLATE", "TRAINING", "Phrasing", "render", "surfaces", "typo"]

ANY = ("colour", "article_type", "gender", "usage", "value")


@dataclass(frozen=True)
class Phrasing:
    id: str
    text: str  # with {A} (the value to lose) and/or {B} (the value to get)
    kinds: tuple[str, ...] = ANY  # attribute kinds the shape reads naturally for
    typos: bool = False  # values (and cue words) written with a typo

    @property
    def names_source(self) -> bool:
        return "{A}" in self.text

    def fits(self, kind: str) -> bool:
        return kind in self.kinds or (kind not in ANY and "value" in self.kinds)


TEMPLATE = Phrasing("template", "replace {A} with {B}")
TRAINING: tuple[Phrasing, ...] = (
    TEMPLATE,
    Phrasing("change_to", "change {A} to {B}"),
    Phrasing("change_it_from_to", "change it from {A} to {B}"),
    Phrasing("from_to", "from {A} to {B}"),
    Phrasing("a_to_b", "{A} to {B}"),
    Phrasing("make_instead", "make it {B} instead of {A}"),
    Phrasing("instead_of", "{B} instead of {A}"),
    Phrasing("instead_of_the", "the {B} instead of the {A}"),
    Phrasing("not_but", "not {A} but {B}"),
    Phrasing("no_more", "no more {A}, i want {B}"),
    Phrasing("switch_from_to", "switch from {A} to {B}"),
    Phrasing("out_in", "{A} out, {B} in"),
    Phrasing("replace_by", "replace the {A} by {B}"),
    Phrasing("less_more", "less {A}, more {B}", ("colour",)),
    Phrasing("without_with", "without the {A}, with {B}"),
    Phrasing("same_but", "same but {B}"),
    Phrasing("same_in", "the same thing in {B}"),
    Phrasing("in_b", "in {B}"),
    Phrasing("in_b_please", "in {B} please"),
    Phrasing("make_it", "make it {B}"),
    Phrasing("bare", "{B}"),
    Phrasing("b_please", "{B} please"),
    Phrasing("want_it_in", "i want it in {B}"),
    Phrasing("prefer", "i prefer {B}"),
    Phrasing("show_me", "show me {B}"),
    Phrasing("b_instead", "{B} instead"),
    Phrasing("for_b", "for {B}", ("gender", "usage")),
    Phrasing("b_colour", "{B} colour", ("colour",)),
    Phrasing("b_coloured", "{B} coloured please", ("colour",)),
    Phrasing("like_in", "i'd like this in {B}"),
    Phrasing("but_in", "like this but in {B}"),
    Phrasing("not_a", "anything except {A}"),
)
HELD_APART: tuple[Phrasing, ...] = (
    Phrasing("swap_for", "swap the {A} for {B}"),
    Phrasing("arrow", "{A} -> {B}"),
    Phrasing("b_comma_not_a", "{B}, not {A}"),
    Phrasing("not_a_comma_b", "not {A}, {B}"),
    Phrasing("rather_than", "{B} rather than {A}"),
    Phrasing("go_for", "go for {B}"),
    Phrasing("version", "the {B} version"),
    Phrasing("one", "a {B} one"),
    Phrasing("question", "do you have this in {B}?"),
    Phrasing("typo_one", "a {B} one", typos=True),
    Phrasing("typo_swap", "swapp the {A} for {B}", typos=True),
    Phrasing("typo_rather", "{B} rathr than {A}", typos=True),
)

# Other ways to write a value, where the lexicon's other names are not what people write for it.
_GENDER = {"men": ("men", "mens", "men's", "male"), "women": ("women", "womens", "women's", "ladies"),
           "boys": ("boys", "boy's"), "girls": ("girls", "girl's"), "unisex": ("unisex",)}
_SPELLING = {"grey": "gray"}


def surfaces(value: str, kind: str = "value") -> tuple[str, ...]:
    """Ways to write ``value`` (the value itself first): the lexicon's other names for its concept, a
    singular for a plural, grey/gray."""
    if kind == "gender" and value in _GENDER:
        return _GENDER[value]
    out = [value]
    words = value.split(" ")
    if words[-1].endswith("s") and lemma(words[-1]) != words[-1] and len(words[-1]) > 3:
        singular = " ".join([*words[:-1], _singular(words[-1])])
        out.append(singular)
    for name, spelled in _SPELLING.items():
        if name in words:
            out.append(" ".join(spelled if w == name else w for w in words))
    concept = _concept_of(value)
    if concept is not None:
        out += [c.name for c in lx.CONCEPTS.values() if c.parent == concept and c.relation == "same"
                and len(c.name.split()) <= 2]
        if concept != value and len(concept.split()) <= 2:
            out.append(concept)
    return tuple(dict.fromkeys(out))


def _singular(word: str) -> str:
    if word.endswith(("ches", "shes", "xes", "sses")):
        return word[:-2]
    return word[:-1]


_BY_KEY: dict[str, str] = {}


def _concept_of(value: str) -> str | None:
    if not _BY_KEY:
        for c in lx.CONCEPTS.values():
            for s in (c.name, *c.surfaces):
                _BY_KEY.setdefault(" ".join(lemma(w) for w in re.split(r"[\s-]+", s)), c.name)
    return _BY_KEY.get(" ".join(lemma(w) for w in re.split(r"[\s-]+", value)))


_NEIGHBOURS = dict(zip("qwertyuiopasdfghjklzxcvbnm", (
    "wa", "qes", "wrd", "etf", "rtg", "tyh", "yuj", "uik", "iol", "op", "qsz", "awdx", "sefc", "drgv", "fthb",
    "gyjn", "hukm", "jil", "kop", "xas", "zcsd", "xvdf", "cbfg", "vnhg", "bmjh", "nkj"), strict=True))


def typo(word: str, rng: random.Random) -> str:
    """One keyboard slip in ``word`` that makes no other English word: a letter dropped, doubled, swapped
    with the next, or hit beside ("belts" never becomes "bets"); a word of three letters or fewer gets a
    doubled letter, and one of four loses none (the parser's guard corrects no word shorter than four)."""
    if len(word) <= 3 or not word.isalpha():
        return word + word[-1] if word.isalpha() else word
    words = english_words()
    for _ in range(8):
        slip = _slip(word, rng)
        if slip != word and slip not in words:
            return slip
    return word + word[-1]


def _slip(word: str, rng: random.Random) -> str:
    i = rng.randrange(1, len(word) - 1)  # keep the first letter: people rarely miss it
    kind = rng.randrange(1 if len(word) == 4 else 0, 4)
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    if kind == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    near = _NEIGHBOURS.get(word[i].lower(), "e")
    return word[:i] + rng.choice(near) + word[i + 1:]


def _misspell(phrase: str, rng: random.Random) -> str:
    """A typo in the longest word of a phrase ("navy blue" -> "navy bleu")."""
    words = phrase.split(" ")
    k = max(range(len(words)), key=lambda j: (len(words[j]), -j))
    words[k] = typo(words[k], rng)
    return " ".join(words)


def render(phrasing: Phrasing, source: str, target: str, kind: str, rng: random.Random,
           variant: int = 0, typo_share: float = 0.0) -> str:
    """``phrasing`` with the slots filled. Variant 0 writes the values as they are; other variants draw
    another way to write them (:func:`surfaces`). A typo-shaped phrasing always misspells its values;
    any other does with probability ``typo_share``."""
    a, b = source, target
    if variant > 0:
        a = rng.choice(surfaces(source, kind))
        b = rng.choice(surfaces(target, kind))
    if phrasing.typos or (typo_share > 0 and rng.random() < typo_share):
        a, b = _misspell(a, rng), _misspell(b, rng)
    return phrasing.text.replace("{A}", a).replace("{B}", b)
