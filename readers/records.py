"""Plain records that readers produce and ingest writes. No Neo4j, no tensors."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SPACES = re.compile(r"\s+")


def normalise_value(value: str) -> str:
    """One spelling per attribute value: "Navy Blue", " navy  blue" -> "navy blue"."""
    return _SPACES.sub(" ", value.strip().lower())


@dataclass(frozen=True, order=True)
class AttributeValue:
    """An attribute node: a normalised value and its kind (colour, article_type, gender, ...)."""

    kind: str
    value: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", normalise_value(self.value))
        object.__setattr__(self, "kind", normalise_value(self.kind).replace(" ", "_"))

    @property
    def name(self) -> str:
        """The unique key of the Attribute node: the normalised value (kinds share a value space)."""
        return self.value


@dataclass(frozen=True)
class ImageRecord:
    id: str
    title: str = ""
    image_path: str = ""  # absolute or relative to the catalog; "" in metadata-only mode
    split: str = ""  # train | val | test | "" (unassigned)
    group: str = ""  # product group (display name without the varying attribute), for splits
    attributes: tuple[AttributeValue, ...] = ()
    source_line: int = 0  # line in the source file, for error messages


@dataclass(frozen=True)
class QueryRecord:
    """A composed query: candidate image + relative caption -> target image."""

    id: str
    candidate_id: str
    target_id: str | None  # None where the split has no targets (FashionIQ test)
    text: str
    split: str = ""
    group: str = ""
    added: tuple[str, ...] = ()  # attribute values the caption asks for
    removed: tuple[str, ...] = ()  # attribute values the caption takes away
    mentioned: tuple[str, ...] = ()  # other attribute values named in the caption
    source_line: int = 0
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)


class ReaderError(ValueError):
    """Bad input, naming the file, line and field at fault."""

    def __init__(self, path: str, line: int | None, message: str, field_name: str | None = None):
        self.path, self.line, self.field_name = str(path), line, field_name
        where = self.path + (f":{line}" if line else "")
        what = f" field {field_name!r}:" if field_name else ""
        super().__init__(f"{where}:{what} {message}")
