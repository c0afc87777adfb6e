"""Product catalogs (CSV or JSON Lines) -> ImageRecord, streaming, with errors that name file, line, field.

A :class:`ColumnMapping` says which column holds the id, the image (a column, or a template such as
``images/{id}.jpg`` resolved against the catalog's folder), the title, and which columns are attributes
of which kind. Attribute values are normalised by :class:`~readers.records.AttributeValue`, so "Navy Blue"
and "navy blue" are one value; cells holding a missing marker ("" or "NA" by default) are skipped.

Rules for bad input (each raises :class:`~readers.records.ReaderError` naming file, line and field):
missing required columns; a row with too few or too many fields (a truncated last row) or an unterminated
quote; bytes that do not decode; an empty id; the same id twice with different data (the same id with
identical data is skipped, so concatenated exports read cleanly).
"""

from __future__ import annotations

import csv
import json
import os
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from readers.records import AttributeValue, ImageRecord, ReaderError

__all__ = ["MYNTRA", "ColumnMapping", "missing_images", "read_catalog"]


@dataclass(frozen=True)
class ColumnMapping:
    """Where a catalog keeps each part of an ImageRecord.

    ``image`` is a column name, or a template with ``{column}`` fields (``"images/{id}.jpg"``) when it
    contains a brace; relative paths resolve against the catalog file's folder; ``""`` means no images
    (metadata only). ``attributes`` maps column -> attribute kind. Cells equal (after stripping) to one
    of ``missing`` are treated as absent.
    """

    id: str = "id"
    image: str = ""
    title: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)
    missing: frozenset[str] = frozenset({"", "NA"})
    encoding: str = "utf-8"
    delimiter: str = ","

    @property
    def image_is_template(self) -> bool:
        """True when ``image`` is a path template rather than a column name."""
        return "{" in self.image

    def template_fields(self) -> list[str]:
        """The column names a template image path refers to (empty for a column or no image)."""
        if not self.image_is_template:
            return []
        return [name for _, name, _, _ in string.Formatter().parse(self.image) if name]

    def required_columns(self) -> list[str]:
        """Every column the mapping reads, in a stable order and without repeats."""
        cols = [self.id]
        if self.title:
            cols.append(self.title)
        if self.image:
            cols.extend(self.template_fields() if self.image_is_template else [self.image])
        cols.extend(self.attributes)
        return list(dict.fromkeys(cols))


MYNTRA = ColumnMapping(
    id="id",
    image="images/{id}.jpg",
    title="productDisplayName",
    attributes={
        "baseColour": "colour",
        "articleType": "article_type",
        "gender": "gender",
        "usage": "usage",
        "season": "season",
        "masterCategory": "master_category",
        "subCategory": "sub_category",
    },
)
"""The myntra-small ``products.csv`` layout (``year`` is not an attribute and is not read)."""


class _DecodeFailure(Exception):
    """Raised inside the line generator; turned into a ReaderError where the header is known."""

    def __init__(self, line: int, raw: bytes, error: UnicodeDecodeError):
        super().__init__(str(error))
        self.line, self.raw, self.error = line, raw, error


def _decoded_lines(fh: Iterable[bytes], encoding: str, buffer: list[str]) -> Iterator[str]:
    """Decode a binary file line by line, so a decoding error knows its line; keep the current record."""
    for lineno, raw in enumerate(fh, 1):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as e:
            raise _DecodeFailure(lineno, raw, e) from e
        if lineno == 1 and text.startswith("\ufeff"):
            text = text[1:]
        buffer.append(text)
        yield text


def _decode_error(path: Path, failure: _DecodeFailure, header: list[str] | None, mapping: ColumnMapping,
                  fmt: str) -> ReaderError:
    """Name the field holding the undecodable bytes (CSV: by column; JSONL: the key before them)."""
    text = failure.raw.decode(mapping.encoding, errors="surrogateescape")
    field_name: str | None = None
    if fmt == "csv":
        try:
            cells = next(csv.reader([text], delimiter=mapping.delimiter), [])
        except csv.Error:
            cells = []
        for i, cell in enumerate(cells):
            if any("\udc80" <= ch <= "\udcff" for ch in cell):
                field_name = header[i] if header and i < len(header) else f"column {i + 1}"
                break
    else:
        field_name = _last_json_key(text[: failure.error.start])
    return ReaderError(
        str(path), failure.line,
        f"bytes that are not {mapping.encoding} at byte {failure.error.start} ({failure.error.reason})",
        field_name or "(unknown)",
    )


_JSON_KEY = re.compile(r'"((?:[^"\\]|\\.)*)"\s*:')


def _last_json_key(prefix: str) -> str | None:
    """The last object key that starts before a JSON error, to name the field a bad line broke in."""
    keys = _JSON_KEY.findall(prefix)
    return keys[-1] if keys else None


def _resolve_image(value: str, base: Path) -> str:
    """An image path made absolute against the catalog's folder ("" stays "")."""
    if not value:
        return ""
    return value if os.path.isabs(value) else os.path.join(base, value)


def _cell_values(raw: Any, path: Path, line: int, column: str) -> list[str]:
    """A cell as a list of strings: CSV strings, JSON scalars or lists of scalars."""
    if raw is None:
        return []
    if isinstance(raw, list):
        out: list[str] = []
        for item in raw:
            out.extend(_cell_values(item, path, line, column))
        return out
    if isinstance(raw, bool):
        return ["true" if raw else "false"]
    if isinstance(raw, (str, int, float)):
        return [str(raw).strip()]
    raise ReaderError(str(path), line, f"expected a string, number or list, got {type(raw).__name__}", column)


def _scalar(raw: Any, path: Path, line: int, column: str, mapping: ColumnMapping) -> str:
    """A single-valued cell (id, title, image) as a stripped string; missing markers become ""."""
    values = _cell_values(raw, path, line, column)
    if len(values) > 1:
        raise ReaderError(str(path), line, "expected one value, got a list", column)
    value = values[0] if values else ""
    return "" if value in mapping.missing else value


def _make_record(row: Mapping[str, Any], line: int, path: Path, base: Path, mapping: ColumnMapping) -> ImageRecord:
    """Build one ImageRecord from a row (a dict of column -> cell)."""
    rid = _scalar(row.get(mapping.id), path, line, mapping.id, mapping)
    if not rid:
        raise ReaderError(str(path), line, "empty id", mapping.id)
    title = _scalar(row.get(mapping.title), path, line, mapping.title, mapping) if mapping.title else ""
    image = ""
    if mapping.image_is_template:
        values = {}
        for col in mapping.template_fields():
            v = _scalar(row.get(col), path, line, col, mapping)
            if not v:
                raise ReaderError(str(path), line, f"empty value needed by image template {mapping.image!r}", col)
            values[col] = v
        image = _resolve_image(mapping.image.format_map(values), base)
    elif mapping.image:
        image = _resolve_image(_scalar(row.get(mapping.image), path, line, mapping.image, mapping), base)
    attrs: list[AttributeValue] = []
    for col, kind in mapping.attributes.items():
        for v in _cell_values(row.get(col), path, line, col):
            if v in mapping.missing:
                continue
            a = AttributeValue(kind, v)
            if a.value and a not in attrs:
                attrs.append(a)
    return ImageRecord(id=rid, title=title, image_path=image, attributes=tuple(attrs), source_line=line)


def _csv_rows(path: Path, mapping: ColumnMapping) -> Iterator[tuple[int, dict[str, str]]]:
    """(first line, row dict) for each CSV record; checks header, field counts, quotes and encoding."""
    buffer: list[str] = []
    header: list[str] | None = None
    with path.open("rb") as fh:
        reader = csv.reader(_decoded_lines(fh, mapping.encoding, buffer), delimiter=mapping.delimiter,
                            strict=True)
        last_line = 0
        while True:
            buffer.clear()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except _DecodeFailure as failure:
                raise _decode_error(path, failure, header, mapping, "csv") from None
            except csv.Error as e:
                partial = next(csv.reader(["".join(buffer)], delimiter=mapping.delimiter), [])
                i = max(len(partial) - 1, 0)
                name = header[i] if header and i < len(header) else f"column {i + 1}"
                raise ReaderError(str(path), last_line + 1,
                                  f"malformed CSV ({e}): unterminated quote or truncated file?", name) from None
            start, last_line = last_line + 1, reader.line_num
            if header is None:
                header = [h.strip() for h in cells]
                _check_header(path, header, mapping)
                continue
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if len(cells) < len(header):
                raise ReaderError(str(path), start,
                                  f"expected {len(header)} fields, got {len(cells)} (truncated row?)",
                                  header[len(cells)])
            if len(cells) > len(header):
                raise ReaderError(str(path), start, f"expected {len(header)} fields, got {len(cells)}",
                                  f"column {len(header) + 1}")
            yield start, dict(zip(header, cells, strict=True))
    if header is None:
        raise ReaderError(str(path), 1, "empty file: no header row", mapping.id)


def _check_header(path: Path, header: list[str], mapping: ColumnMapping) -> None:
    """Every column the mapping reads must be in the header, exactly once."""
    required = mapping.required_columns()
    missing = [c for c in required if c not in header]
    if missing:
        raise ReaderError(str(path), 1, f"missing required column(s) {', '.join(missing)}; header has "
                          f"{', '.join(header)}", ", ".join(missing))
    doubled = [c for c in required if header.count(c) > 1]
    if doubled:
        raise ReaderError(str(path), 1, "column appears more than once in the header", ", ".join(doubled))


def _jsonl_rows(path: Path, mapping: ColumnMapping) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, object) for each JSON Lines record; blank lines are skipped; the id key is required."""
    buffer: list[str] = []
    with path.open("rb") as fh:
        lines = _decoded_lines(fh, mapping.encoding, buffer)
        lineno = 0
        while True:
            try:
                text = next(lines)
            except StopIteration:
                break
            except _DecodeFailure as failure:
                raise _decode_error(path, failure, None, mapping, "jsonl") from None
            lineno += 1
            buffer.clear()
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                raise ReaderError(str(path), lineno, f"invalid JSON ({e.msg} at column {e.colno}; truncated?)",
                                  _last_json_key(text[: e.pos]) or "(record)") from None
            if not isinstance(obj, dict):
                raise ReaderError(str(path), lineno, f"expected a JSON object, got {type(obj).__name__}",
                                  "(record)")
            missing = [c for c in (mapping.id, *mapping.template_fields()) if c not in obj]
            if missing:
                raise ReaderError(str(path), lineno, f"missing required key(s) {', '.join(missing)}",
                                  ", ".join(missing))
            yield lineno, obj


def _detect_format(path: Path, fmt: str | None) -> str:
    """csv or jsonl, from ``fmt`` or the file suffix (.jsonl/.ndjson/.json -> jsonl; anything else csv)."""
    if fmt:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
        return fmt
    return "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv"


def read_catalog(path: str | Path, mapping: ColumnMapping = MYNTRA, limit: int | None = None,
                 fmt: str | None = None) -> Iterator[ImageRecord]:
    """Stream ImageRecords from a CSV or JSONL catalog; ``limit`` stops after that many records.

    Image paths come back absolute (resolved against the catalog's folder). Rows repeating an earlier id
    with identical data are skipped; with different data they raise ReaderError naming the first field
    that differs and the line of the first occurrence.
    """
    path = Path(path)
    base = path.resolve().parent
    fmt = _detect_format(path, fmt)
    rows = _csv_rows(path, mapping) if fmt == "csv" else _jsonl_rows(path, mapping)
    seen: dict[str, tuple[int, Mapping[str, Any]]] = {}
    count = 0
    for line, row in rows:
        if limit is not None and count >= limit:
            return
        record = _make_record(row, line, path, base, mapping)
        if record.id in seen:
            first_line, first_row = seen[record.id]
            if first_row == row:
                continue
            differs = next((k for k in (*first_row, *row) if first_row.get(k) != row.get(k)), mapping.id)
            raise ReaderError(str(path), line, f"id {record.id!r} already read at line {first_line} with "
                              f"different data ({first_row.get(differs)!r} != {row.get(differs)!r})", differs)
        seen[record.id] = (line, row)
        count += 1
        yield record


def missing_images(records: Iterable[ImageRecord]) -> list[ImageRecord]:
    """The records whose image file is absent (or that name no image): check before featurising."""
    return [r for r in records if not r.image_path or not Path(r.image_path).is_file()]
