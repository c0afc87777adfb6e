"""Fashion200K in the layout TIRG reads (github.com/google/tirg, ``datasets.py``), as plain records.

Layout under the dataset root::

    labels/{category}_{split}_detect_all.txt   lines "path<TAB>detection score<TAB>caption"
    test_queries.txt                           lines "source_path target_path" (whitespace-separated)
    women/dresses/.../123_0.jpeg               the images (paths in the label files are relative)

TIRG picks every label file whose name contains the split; here the name must end in
``_{split}_detect_all.txt`` and its first part (``dress``, ``jacket``, ...) becomes a ``category``
attribute. Test queries come from ``test_queries.txt``; the relative caption is TIRG's "replace X with Y",
X the first source word not in the target caption and Y the first target word not in the source. Training
queries TIRG samples on the fly from *parent captions*: a parent is a caption with one word removed, and
two captions with a common parent differ by one word. :class:`CaptionIndex` rebuilds that index and
draws the same kind of queries, deterministically by seed. (TIRG removes a word with ``str.replace``,
which also cuts it out of longer words - "red" out of "embroidered"; here whole words are removed.)
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from readers.captions import caption_split_attributes
from readers.records import AttributeValue, ImageRecord, QueryRecord, ReaderError, normalise_value

__all__ = [
    "CaptionIndex",
    "different_word",
    "image_id_from_path",
    "label_files",
    "read_fashion200k_images",
    "read_fashion200k_test_queries",
]

_LABEL_FILE = re.compile(r"^(?P<category>.+)_(?P<split>[a-z]+)_detect_all\.txt$")


def image_id_from_path(path: str, style: str = "path") -> str:
    """An image id from a label-file path: the path without its extension (``style="path"``, unique by
    construction) or only the file stem (``style="stem"``, e.g. ``51727804_0``; collisions are errors)."""
    p = PurePosixPath(path.strip().replace("\\", "/"))
    if style == "stem":
        return p.stem
    if style == "path":
        return str(p.with_suffix(""))
    raise ValueError(f"style must be 'path' or 'stem', got {style!r}")


def label_files(root: str | Path, split: str) -> list[Path]:
    """The ``labels/*_{split}_detect_all.txt`` files of a split, sorted by name."""
    labels = Path(root) / "labels"
    if not labels.is_dir():
        raise ReaderError(str(labels), None, "no labels folder (expected labels/*_{split}_detect_all.txt)",
                          "labels")
    return sorted(p for p in labels.iterdir() if p.is_file() and (m := _LABEL_FILE.match(p.name))
                  and m.group("split") == split)


def _read_text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; undecodable bytes raise ReaderError naming the line."""
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise ReaderError(str(path), lineno, f"bytes that are not UTF-8 at byte {e.start}", "line") from None


def _caption_attributes(caption: str, category: str) -> tuple[AttributeValue, ...]:
    """The category, and the caption split into first word / rest (the paper's caption-split attributes)."""
    attrs = [AttributeValue("category", category)] if category else []
    for v in caption_split_attributes(caption):
        a = AttributeValue("caption", v)
        if a not in attrs:
            attrs.append(a)
    return tuple(attrs)


def read_fashion200k_images(root: str | Path, split: str, id_style: str = "path",
                            caption_attributes: bool = True) -> Iterator[ImageRecord]:
    """ImageRecords from a split's label files: id from the path, title = caption, split set.

    Lines need three tab-separated fields and a numeric score. The same path twice with the same caption
    is skipped; with another caption it is an error, as are two paths that map to one id.
    ``caption_attributes`` adds the category and the caption-split attributes.
    """
    root = Path(root)
    files = label_files(root, split)
    if not files:
        raise ReaderError(str(root / "labels"), None, f"no *_{split}_detect_all.txt label files", "labels")
    seen: dict[str, tuple[str, str, str, int]] = {}  # id -> (path, caption, file, line)
    for file in files:
        m = _LABEL_FILE.match(file.name)
        category = normalise_value(m.group("category")) if m else ""
        for lineno, line in _read_text_lines(file):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 3:
                missing = ("path", "score", "caption")[len(parts)]
                raise ReaderError(str(file), lineno, f"expected 3 tab-separated fields, got {len(parts)}", missing)
            if len(parts) > 3:
                raise ReaderError(str(file), lineno, f"expected 3 tab-separated fields, got {len(parts)}",
                                  "caption")
            path, score, caption = (x.strip() for x in parts)
            if not path:
                raise ReaderError(str(file), lineno, "empty image path", "path")
            try:
                float(score)
            except ValueError:
                raise ReaderError(str(file), lineno, f"detection score {score!r} is not a number", "score") from None
            caption = normalise_value(caption)
            if not caption:
                raise ReaderError(str(file), lineno, "empty caption", "caption")
            rid = image_id_from_path(path, id_style)
            if rid in seen:
                p0, c0, f0, l0 = seen[rid]
                if p0 == path and c0 == caption:
                    continue
                what = "path" if p0 != path else "caption"
                raise ReaderError(str(file), lineno, f"id {rid!r} already read at {f0}:{l0} with a different "
                                  f"{what} ({(p0 if what == 'path' else c0)!r})", what)
            seen[rid] = (path, caption, file.name, lineno)
            yield ImageRecord(
                id=rid, title=caption, image_path=str(root / path), split=split,
                attributes=_caption_attributes(caption, category) if caption_attributes else (),
                source_line=lineno,
            )


def different_word(source_caption: str, target_caption: str) -> tuple[str, str, str]:
    """TIRG's ``get_different_word``: (source word, target word, "replace X with Y").

    X is the first source word absent from the target caption, Y the first target word absent from the
    source (as in TIRG, the last word when every word is shared).
    """
    source_words, target_words = source_caption.split(), target_caption.split()
    if not source_words or not target_words:
        raise ValueError("captions must not be empty")
    source_word = next((w for w in source_words if w not in target_words), source_words[-1])
    target_word = next((w for w in target_words if w not in source_words), target_words[-1])
    return source_word, target_word, f"replace {source_word} with {target_word}"


def read_fashion200k_test_queries(root: str | Path, images: Iterable[ImageRecord],
                                  id_style: str = "path") -> list[QueryRecord]:
    """The fixed test queries of ``test_queries.txt`` (TIRG's ``generate_test_queries_``).

    ``images`` are the test images (their titles are the captions). Each line names a source and a target
    path; both must be known images. ``extra`` keeps both captions: TIRG counts a hit when the retrieved
    image's caption equals the target caption.
    """
    path = Path(root) / "test_queries.txt"
    if not path.is_file():
        raise ReaderError(str(path), None, "no test_queries.txt", "test_queries.txt")
    by_id = {r.id: r for r in images}
    out: list[QueryRecord] = []
    for lineno, line in _read_text_lines(path):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            name = "target" if len(parts) < 2 else "line"
            raise ReaderError(str(path), lineno, f"expected 'source_path target_path', got {len(parts)} fields",
                              name if parts else "source")
        ends = {}
        for name, p in zip(("source", "target"), parts, strict=True):
            rid = image_id_from_path(p, id_style)
            if rid not in by_id:
                raise ReaderError(str(path), lineno, f"image {p!r} is not in the test label files", name)
            ends[name] = by_id[rid]
        src, tgt = ends["source"], ends["target"]
        x, y, text = different_word(src.title, tgt.title)
        out.append(QueryRecord(
            id=f"f200k-test-{lineno}", candidate_id=src.id, target_id=tgt.id, text=text, split="test",
            added=(y,), removed=(x,), source_line=lineno,
            extra={"source_caption": src.title, "target_caption": tgt.title},
        ))
    return out


def _parents(caption: str) -> list[str]:
    """Captions one word shorter: each word removed in turn (whole words, not substrings)."""
    words = caption.split()
    return [" ".join(words[:i] + words[i + 1:]) for i in range(len(words))]


@dataclass
class CaptionIndex:
    """TIRG's training index: caption -> images, parent caption -> child captions, modifiable images.

    An image is *modifiable* when one of its parent captions has at least two child captions, i.e. some
    other caption differs from its own by exactly one word.
    """

    caption_images: dict[str, list[str]] = field(default_factory=dict)
    parent_children: dict[str, list[str]] = field(default_factory=dict)
    image_caption: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, images: Iterable[ImageRecord]) -> CaptionIndex:
        """Index the images' captions (their titles)."""
        caption_images: dict[str, list[str]] = defaultdict(list)
        image_caption: dict[str, str] = {}
        for r in images:
            caption_images[r.title].append(r.id)
            image_caption[r.id] = r.title
        parent_children: dict[str, list[str]] = defaultdict(list)
        for c in caption_images:
            for p in _parents(c):
                if c not in parent_children[p]:
                    parent_children[p].append(c)
        useful = {p: cs for p, cs in parent_children.items() if len(cs) >= 2}
        return cls(dict(caption_images), useful, image_caption)

    def parents_of(self, image_id: str) -> list[str]:
        """Parent captions of an image that have at least two children."""
        return [p for p in dict.fromkeys(_parents(self.image_caption[image_id])) if p in self.parent_children]

    def modifiable(self) -> list[str]:
        """Ids of images with at least one sibling caption, in a stable order."""
        return sorted(i for i in self.image_caption if self.parents_of(i))

    def training_queries(self, per_image: int = 1, seed: int = 0, split: str = "train") -> Iterator[QueryRecord]:
        """Queries as TIRG draws them: for each modifiable image, ``per_image`` times pick a parent, a
        sibling caption and an image with it. Deterministic: each image's draw is seeded by a stable hash
        of (seed, image id), so results do not depend on order or on Python's hash salt."""
        for image_id in self.modifiable():
            digest = hashlib.sha256(f"{seed}:{image_id}".encode()).digest()
            rng = random.Random(int.from_bytes(digest[:8], "big"))
            source_caption = self.image_caption[image_id]
            parents = self.parents_of(image_id)
            for k in range(per_image):
                parent = rng.choice(parents)
                siblings = [c for c in self.parent_children[parent] if c != source_caption]
                target_caption = rng.choice(siblings)
                target_id = rng.choice(self.caption_images[target_caption])
                x, y, text = different_word(source_caption, target_caption)
                yield QueryRecord(
                    id=f"f200k-{split}-{image_id}-{k}", candidate_id=image_id, target_id=target_id, text=text,
                    split=split, group=parent, added=(y,), removed=(x,),
                    extra={"source_caption": source_caption, "target_caption": target_caption},
                )
