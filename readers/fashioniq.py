"""FashionIQ (captions, image splits, attribute files) as plain records; images optional.

Layout under the dataset root::

    captions/cap.{category}.{split}.json          [{"candidate", "target", "captions": [two strings]}]
    image_splits/split.{category}.{split}.json    [asin, ...]
    attributes/asin2attr.{category}.{split}.json  {asin: [category, texture, fabric, shape, part, style]}

The two captions of a triplet become one relative caption, joined with " and it " and led by the
category word as in the paper's appendix ("dress is shiny and silver with shorter sleeves and it fit and
flare"); both are configurable, and the raw captions stay in ``extra``. Test triplets have no target
(``target_id=None``). Without an images folder the records are metadata-only (``image_path=""``).
An ASIN can be listed under two categories (shirt and toptee) and in several splits; a reader call
yields each id once, with the attributes of every file it appears in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from readers.captions import Vocabulary, lexicon_vocabulary, parse_relative_caption
from readers.records import AttributeValue, ImageRecord, QueryRecord, ReaderError, normalise_value

__all__ = [
    "ATTRIBUTE_KINDS",
    "CATEGORIES",
    "SPLITS",
    "caption_vocabulary",
    "fashioniq_vocabulary",
    "gallery",
    "join_captions",
    "read_fashioniq_attributes",
    "read_fashioniq_images",
    "read_fashioniq_queries",
]

CATEGORIES: tuple[str, ...] = ("dress", "shirt", "toptee")
SPLITS: tuple[str, ...] = ("train", "val", "test")
ATTRIBUTE_KINDS: tuple[str, ...] = ("category", "texture", "fabric", "shape", "part", "style")
DEFAULT_JOINER = " and it "


def _iter_json_array(path: Path) -> Iterator[tuple[int, Any]]:
    """(line, element) for each element of a top-level JSON array, with the line where it starts."""
    text = _read_text(path)
    decoder = json.JSONDecoder()
    pos = _skip_ws(text, 0)
    if pos >= len(text) or text[pos] != "[":
        raise ReaderError(str(path), text.count("\n", 0, pos) + 1, "expected a JSON array", "(document)")
    pos = _skip_ws(text, pos + 1)
    line, counted = 1, 0
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            raise ReaderError(str(path), e.lineno, f"invalid JSON ({e.msg}; truncated?)",
                              "(element)") from None
        yield line, obj
        pos = _skip_ws(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_ws(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            return
        raise ReaderError(str(path), text.count("\n", 0, pos) + 1,
                          "expected ',' or ']' after an element (truncated file?)", "(element)")


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _read_text(path: Path) -> str:
    """A UTF-8 file's text; undecodable bytes raise ReaderError naming their line."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReaderError(str(path), data.count(b"\n", 0, e.start) + 1,
                          f"bytes that are not UTF-8 at byte {e.start}", "(text)") from None


def _load_json(path: Path) -> tuple[Any, str]:
    """A whole JSON document, with its text (for line numbers of later errors)."""
    text = _read_text(path)
    try:
        return json.loads(text), text
    except json.JSONDecodeError as e:
        raise ReaderError(str(path), e.lineno, f"invalid JSON ({e.msg}; truncated?)", "(document)") from None


def _line_of(text: str, needle: str) -> int | None:
    """Line of the first occurrence of ``needle`` in ``text`` (to point at a bad entry), else None."""
    i = text.find(needle)
    return text.count("\n", 0, i) + 1 if i >= 0 else None


def join_captions(captions: Sequence[str], category: str | None = None, joiner: str = DEFAULT_JOINER,
                  prefix_category: bool = True) -> str:
    """One relative caption from FashionIQ's two: stripped, empty ones dropped, joined with ``joiner``,
    led by the category word when ``prefix_category`` ("dress is shiny ... and it fit and flare")."""
    parts = [" ".join(c.split()) for c in captions if c and c.strip()]
    text = joiner.join(parts)
    if prefix_category and category:
        text = f"{category} {text}" if text else category
    return text


def _caption_path(root: Path, category: str, split: str) -> Path:
    return root / "captions" / f"cap.{category}.{split}.json"


def read_fashioniq_queries(root: str | Path, split: str, categories: Iterable[str] = CATEGORIES,
                           joiner: str = DEFAULT_JOINER, prefix_category: bool = True,
                           vocabulary: Vocabulary | Iterable[str] | None = None) -> Iterator[QueryRecord]:
    """QueryRecords from ``captions/cap.{category}.{split}.json`` (val: 6,016 across the three categories).

    ``group`` is the category (per-category galleries, as CLIP4Cir evaluates); ``target_id`` is None on
    the test split. With a ``vocabulary`` the caption's added / removed / mentioned attributes are filled
    in by :func:`readers.captions.parse_relative_caption`, on each caption separately.
    """
    root = Path(root)
    vocab = None if vocabulary is None else (
        vocabulary if isinstance(vocabulary, Vocabulary) else Vocabulary(vocabulary))
    for category in categories:
        path = _caption_path(root, category, split)
        if not path.is_file():
            raise ReaderError(str(path), None, "caption file not found", "captions")
        for index, (line, entry) in enumerate(_iter_json_array(path)):
            if not isinstance(entry, dict):
                raise ReaderError(str(path), line, f"expected an object, got {type(entry).__name__}", "(element)")
            candidate = entry.get("candidate")
            if not isinstance(candidate, str) or not candidate.strip():
                raise ReaderError(str(path), line, "missing or empty candidate", "candidate")
            target = entry.get("target")
            if target is not None and (not isinstance(target, str) or not target.strip()):
                raise ReaderError(str(path), line, "empty or non-string target", "target")
            if target is None and split != "test":
                raise ReaderError(str(path), line, "missing target (only test triplets lack one)", "target")
            captions = entry.get("captions")
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise ReaderError(str(path), line, "captions must be a list of strings", "captions")
            text = join_captions(captions, category, joiner, prefix_category)
            added: tuple[str, ...] = ()
            removed: tuple[str, ...] = ()
            mentioned: tuple[str, ...] = ()
            if vocab is not None:
                roles = [parse_relative_caption(c, vocab) for c in captions]
                added = tuple(dict.fromkeys(v for r in roles for v in r.added))
                removed = tuple(dict.fromkeys(v for r in roles for v in r.removed))
                taken = set(added) | set(removed)
                mentioned = tuple(dict.fromkeys(v for r in roles for v in r.mentioned if v not in taken))
            extra = {"category": category, **{f"caption_{i + 1}": c for i, c in enumerate(captions)}}
            yield QueryRecord(
                id=f"fiq-{category}-{split}-{index:05d}", candidate_id=candidate.strip(),
                target_id=target.strip() if target is not None else None, text=text, split=split,
                group=category, added=added, removed=removed, mentioned=mentioned, source_line=line, extra=extra,
            )


def read_fashioniq_attributes(root: str | Path, category: str, split: str) -> dict[str, tuple[AttributeValue, ...]]:
    """``asin2attr.{category}.{split}.json``: ASIN -> attributes from the six lists (kinds in order:
    category, texture, fabric, shape, part, style). A missing file gives an empty dict."""
    path = Path(root) / "attributes" / f"asin2attr.{category}.{split}.json"
    if not path.is_file():
        return {}
    data, text = _load_json(path)
    if not isinstance(data, dict):
        raise ReaderError(str(path), 1, f"expected an object of ASIN -> lists, got {type(data).__name__}",
                          "(document)")
    out: dict[str, tuple[AttributeValue, ...]] = {}
    for asin, lists in data.items():
        if not isinstance(lists, list) or len(lists) != len(ATTRIBUTE_KINDS) or not all(
                isinstance(x, list) for x in lists):
            raise ReaderError(str(path), _line_of(text, f'"{asin}"'),
                              f"expected {len(ATTRIBUTE_KINDS)} lists ({', '.join(ATTRIBUTE_KINDS)})", asin)
        attrs: list[AttributeValue] = []
        for kind, words in zip(ATTRIBUTE_KINDS, lists, strict=True):
            for w in words:
                if not isinstance(w, str):
                    raise ReaderError(str(path), _line_of(text, f'"{asin}"'), f"non-string {kind} value {w!r}",
                                      asin)
                if normalise_value(w):
                    a = AttributeValue(kind, w)
                    if a not in attrs:
                        attrs.append(a)
        out[asin] = tuple(attrs)
    return out


def gallery(root: str | Path, category: str, split: str) -> list[str]:
    """The ASINs of ``image_splits/split.{category}.{split}.json``: one category's retrieval gallery."""
    path = Path(root) / "image_splits" / f"split.{category}.{split}.json"
    if not path.is_file():
        raise ReaderError(str(path), None, "image split file not found", "image_splits")
    out = []
    for line, asin in _iter_json_array(path):
        if not isinstance(asin, str) or not asin.strip():
            raise ReaderError(str(path), line, f"expected an ASIN string, got {asin!r}", "(element)")
        out.append(asin.strip())
    return out


def read_fashioniq_images(root: str | Path, split: str, categories: Iterable[str] = CATEGORIES,
                          images_dir: str | Path | None = None, image_ext: str = ".png",
                          with_attributes: bool = True) -> Iterator[ImageRecord]:
    """ImageRecords for the images of one split (each ASIN once, attributes merged across categories).

    ``images_dir`` gives ``image_path = images_dir / (asin + image_ext)``; without it the records are
    metadata-only (``image_path=""``). The title is empty: FashionIQ has no product names.
    """
    root = Path(root)
    seen: dict[str, list[AttributeValue]] = {}
    order: list[str] = []
    for category in categories:
        attrs = read_fashioniq_attributes(root, category, split) if with_attributes else {}
        for asin in gallery(root, category, split):
            if asin not in seen:
                seen[asin] = []
                order.append(asin)
            for a in attrs.get(asin, ()):
                if a not in seen[asin]:
                    seen[asin].append(a)
    for asin in order:
        path = str(Path(images_dir) / f"{asin}{image_ext}") if images_dir is not None else ""
        yield ImageRecord(id=asin, image_path=path, split=split, attributes=tuple(seen[asin]))


def fashioniq_vocabulary(root: str | Path, splits: Iterable[str] = SPLITS,
                         categories: Iterable[str] = CATEGORIES) -> set[str]:
    """Every distinct attribute phrase in the attribute files (926 in the full set): a caption vocabulary."""
    words: set[str] = set()
    cats = tuple(categories)
    for split in splits:
        for category in cats:
            path = Path(root) / "attributes" / f"asin2attr.{category}.{split}.json"
            if not path.is_file():
                continue
            data, _ = _load_json(path)
            if not isinstance(data, dict):
                raise ReaderError(str(path), 1, "expected an object of ASIN -> lists", "(document)")
            for lists in data.values():
                for words_of_kind in lists if isinstance(lists, list) else ():
                    if isinstance(words_of_kind, list):
                        words.update(w for w in words_of_kind if isinstance(w, str))
    vocab = {normalise_value(w) for w in words}
    vocab.discard("")
    return vocab


def caption_vocabulary(root: str | Path, splits: Iterable[str] = SPLITS,
                       categories: Iterable[str] = CATEGORIES) -> set[str]:
    """What FashionIQ captions are parsed against: the attribute files' phrases and the lexicon's words
    (colours, patterns, materials, details, garments: the attribute files have almost no colours, while
    43% of the captions name one)."""
    return fashioniq_vocabulary(root, splits, categories) | lexicon_vocabulary()
