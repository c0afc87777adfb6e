"""Relative captions -> attribute roles (added / removed / mentioned), comparatives and a confidence; phrase
mentions; the paper's caption split.

Text embeddings lose the direction of a change ("replace A with B" and "replace B with A" embed almost
alike), so the graph gets it from the words: an attribute the shopper asks for is *added*, one they want
gone is *removed*, any other known attribute named is *mentioned*. Parts:

* :mod:`~readers.captions.lexicon` the words (colours with families, patterns, materials, details,
  garments, cue words), :mod:`~readers.captions.tokens` tokens, match keys and typo correction,
* :mod:`~readers.captions.vocabulary` a vocabulary (the graph's attribute names) joined to the lexicon,
  matched in one pass,
* :mod:`~readers.captions.roles` the role grammar (change constructions, negation and its reach,
  comparatives).

Parsing is linear in the caption's length (``WorkCounter`` counts its steps).
"""

from __future__ import annotations

from collections.abc import Iterable

from readers.captions.roles import UNSURE_BELOW, CaptionRoles, Comparative, parse_roles
from readers.captions.tokens import tokenize
from readers.captions.vocabulary import Vocabulary, WorkCounter, as_vocabulary, lexicon_vocabulary
from readers.records import normalise_value

__all__ = [
    "UNSURE_BELOW",
    "CaptionRoles",
    "Comparative",
    "Vocabulary",
    "WorkCounter",
    "caption_split_attributes",
    "find_mentions",
    "lexicon_vocabulary",
    "mentions",
    "negated_spans",
    "parse_relative_caption",
]


def parse_relative_caption(text: str, vocabulary: Vocabulary | Iterable[str],
                           work: WorkCounter | None = None) -> CaptionRoles:
    """Which known attributes a relative caption adds, removes or merely mentions, its comparatives and
    the reading's confidence (see :mod:`readers.captions.roles`).

    Template captions "replace A with B" remove A and add B (swapping A and B swaps the roles); a side that
    names no known value is returned as the phrase itself.
    """
    return parse_roles(text, as_vocabulary(vocabulary), work)


def find_mentions(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[tuple[int, int, str]]:
    """(start, end, value) of each known attribute phrase in ``text`` (normalised), longest match first."""
    return as_vocabulary(vocabulary).find(normalise_value(text))


def mentions(text: str, vocabulary: Vocabulary | Iterable[str]) -> tuple[str, ...]:
    """Known attribute values named in ``text``, in order, without repeats."""
    return tuple(dict.fromkeys(v for _, _, v in find_mentions(text, vocabulary)))


def negated_spans(text: str, vocabulary: Vocabulary | Iterable[str]) -> list[tuple[int, int]]:
    """Character spans of normalised ``text`` that the caption's negations reach ("it is not sleeveless":
    the span of "sleeveless"), for callers that find phrases by other means (the attribute tagger)."""
    from readers.captions.roles import negated_token_spans

    norm = normalise_value(text)
    tokens = tokenize(norm)
    return [(tokens[a].start, tokens[b - 1].end) for a, b in negated_token_spans(norm, as_vocabulary(vocabulary))]


def caption_split_attributes(caption: str) -> list[str]:
    """The paper's "caption split" (appendix A.5): the first word is one attribute, the rest another.

    "black midi dress" -> ["black", "midi dress"]; a one-word caption gives one attribute; "" gives none.
    """
    words = [w for w in normalise_value(caption).split(" ") if w]
    if not words:
        return []
    if len(words) == 1:
        return words
    return [words[0], " ".join(words[1:])]
