"""Relative captions -> attribute roles (added / removed / mentioned), caption split, phrase mentions.

Text embeddings lose the direction of a change ("replace A with B" and "replace B with A" embed almost
alike), so the graph gets it from the words: an attribute the shopper asks for is *added*, one they want
gone is *removed*, any other known attribute named is *mentioned*. Matching is against a vocabulary of
known normalised attribute values: whole phrases at word boundaries, longest first, so "navy blue" is one
value and never also "blue".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from readers.records import normalise_value

__all__ = [
    "CaptionRoles",
    "Vocabulary",
    "caption_split_attributes",
    "find_mentions",
    "mentions",
    "parse_relative_caption",
]

# Word characters plus '-' and an inner apostrophe: "a-line" is one word, and "line" does not match in it.
_WORD = r"[\w'-]"
_TEMPLATE = re.compile(r"^\s*replace\s+(?P<source>.+?)\s+with\s+(?P<target>.+?)\s*[.!]?\s*$", re.IGNORECASE)
_TOKEN = re.compile(r"[\w'-]+|[^\w\s'-]")

# Cues read backwards from an attribute mention, nearest first; multi-word cues are matched as a whole.
_REMOVE_CUES: tuple[tuple[str, ...], ...] = tuple(
    tuple(c.split()) for c in (
        "instead of", "rather than", "other than", "no longer", "get rid of", "take off", "take away",
        "without", "no", "not", "non", "isn't", "aren't", "don't", "doesn't", "never", "remove", "removed",
        "removing", "less", "minus", "lose", "drop", "replace", "change", "swap", "from", "except",
    )
)
_ADD_CUES: tuple[tuple[str, ...], ...] = tuple(
    tuple(c.split()) for c in (
        "make it", "change to", "changed to", "switch to", "made of", "in", "to", "into", "with", "more",
        "add", "added", "adding", "has", "have", "having", "is", "are", "be", "was", "want", "wants",
        "prefer", "needs", "need", "featuring", "features", "show", "shows", "showing", "wear", "become",
    )
)
# Tokens that end the clause a cue can reach across.
_CLAUSE_END = frozenset({",", ";", ".", "!", "?", ":", "and", "but", "or", "while", "although"})
_COORDINATORS = frozenset({"and", "or", ","})
_FILLERS = frozenset({"a", "an", "the", "it", "its", "in", "rather", "more", "darker", "lighter"})
_CUE_WINDOW = 4  # words a cue may stand before its attribute ("make it a bit more white")


@dataclass(frozen=True)
class CaptionRoles:
    """Attribute values a caption adds, removes, or only mentions (each in order of appearance)."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    mentioned: tuple[str, ...] = ()


class Vocabulary:
    """A compiled set of known attribute values for phrase matching (build once, reuse for many captions)."""

    def __init__(self, values: Iterable[str]):
        norm = {normalise_value(v) for v in values}
        norm.discard("")
        self.values: frozenset[str] = frozenset(norm)
        # Longest first so the regex alternation prefers "navy blue" to "blue" at the same position.
        ordered = sorted(self.values, key=lambda v: (-len(v), v))
        self._pattern = (
            re.compile(rf"(?<!{_WORD})(?:{'|'.join(re.escape(v) for v in ordered)})(?!{_WORD})")
            if ordered else None
        )

    def __contains__(self, value: object) -> bool:
        return isinstance(value, str) and normalise_value(value) in self.values

    def __len__(self) -> int:
        return len(self.values)

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, value) for every non-overlapping match in normalised ``text``, left to right."""
        if self._pattern is None:
            return []
        return [(m.start(), m.end(), m.group(0)) for m in self._pattern.finditer(text)]


@lru_cache(maxsize=32)
def _cached_vocabulary(values: frozenset[str]) -> Vocabulary:
    return Vocabulary(values)


def _as_vocabulary(vocabulary: Vocabulary | Iterable[str]) -> Vocabulary:
    """Accept a compiled Vocabulary or any iterable of values (compiled once per distinct set)."""
    if isinstance(vocabulary, Vocabulary):
        return vocabulary
    return _cached_vocabulary(frozenset(vocabulary))


def _normalise_text(text: str) -> str:
    """Lower-case, single-spaced caption text (the form vocabulary values are in)."""
    return normalise_value(text)


def _dedupe(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def find_mentions(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[tuple[int, int, str]]:
    """(start, end, value) of each known attribute phrase in ``text`` (normalised), longest match first."""
    return _as_vocabulary(vocabulary).find(_normalise_text(text))


def mentions(text: str, vocabulary: Vocabulary | Iterable[str]) -> tuple[str, ...]:
    """Known attribute values named in ``text``: exact whole-phrase matches, in order, without repeats."""
    return _dedupe(v for _, _, v in find_mentions(text, vocabulary))


def _phrase_values(phrase: str, vocab: Vocabulary) -> tuple[str, ...]:
    """Values inside one side of a template caption; the whole phrase when it holds no known value."""
    found = mentions(phrase, vocab)
    return found if found else ((_normalise_text(phrase),) if phrase.strip() else ())


def _cue_role(tokens: list[str]) -> str | None:
    """The role given by the nearest cue in the words before a mention (read backwards within a clause)."""
    window: list[str] = []
    for tok in reversed(tokens):
        if tok == "but" and all(w in _FILLERS for w in window):
            return "added"  # "not red but blue", "same but black"
        if tok in _CLAUSE_END or len(window) >= _CUE_WINDOW:
            break
        window.insert(0, tok)
        # Check cues that end at the start of the current window, nearest position first.
        for cues, role in ((_REMOVE_CUES, "removed"), (_ADD_CUES, "added")):
            for cue in cues:
                n = len(cue)
                if tuple(window[:n]) == cue:
                    return role
    return None


def _before_instead_of(after: list[str]) -> bool:
    """True when "instead of" / "rather than" follows in the same clause ("a red dress instead of ...")."""
    for i, tok in enumerate(after):
        if tok in _CLAUSE_END:
            return False
        if after[i: i + 2] in (["instead", "of"], ["rather", "than"]):
            return True
    return False


def parse_relative_caption(text: str, vocabulary: Vocabulary | Iterable[str]) -> CaptionRoles:
    """Which known attributes a relative caption adds, removes or merely mentions.

    Template captions "replace A with B" remove A and add B (the direction is kept: swapping A and B swaps
    the roles); a side that names no known value is returned as the phrase itself. Free text is read cue
    by cue: "without / no / not / remove (the) / instead of / less X" remove X; "make it / in / change to /
    more / with / is / has X" add X; a value joined by "and"/"or"/"," to the one before it shares its role
    ("is shiny and silver"); "X instead of Y" adds X; anything else known is mentioned.
    """
    vocab = _as_vocabulary(vocabulary)
    m = _TEMPLATE.match(text)
    if m:
        removed = _phrase_values(m.group("source"), vocab)
        added = _phrase_values(m.group("target"), vocab)
        return CaptionRoles(added=added, removed=removed)

    norm = _normalise_text(text)
    found = vocab.find(norm)
    roles: list[str | None] = []
    prev_end = 0
    for i, (start, end, _) in enumerate(found):
        before = _TOKEN.findall(norm[:start])
        role = _cue_role(before)
        if role is None and i > 0:
            between = _TOKEN.findall(norm[prev_end:start])
            if between and all(t in _COORDINATORS for t in between) and roles[-1] is not None:
                role = roles[-1]
        if role is None and _before_instead_of(_TOKEN.findall(norm[end:])):
            role = "added"
        roles.append(role)
        prev_end = end

    added = _dedupe(v for (_, _, v), r in zip(found, roles, strict=True) if r == "added")
    removed = _dedupe(v for (_, _, v), r in zip(found, roles, strict=True) if r == "removed")
    taken = set(added) | set(removed)
    mentioned = _dedupe(v for (_, _, v), r in zip(found, roles, strict=True) if r is None and v not in taken)
    return CaptionRoles(added=added, removed=removed, mentioned=mentioned)


def caption_split_attributes(caption: str) -> list[str]:
    """The paper's "caption split" (appendix A.5): the first word is one attribute, the rest another.

    "black midi dress" -> ["black", "midi dress"]; a one-word caption gives one attribute; "" gives none.
    """
    words = _normalise_text(caption).split(" ")
    words = [w for w in words if w]
    if not words:
        return []
    if len(words) == 1:
        return words
    return [words[0], " ".join(words[1:])]
