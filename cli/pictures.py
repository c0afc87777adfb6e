"""Pictures of results: the candidate, the text, the ranked products (target outlined when known)."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from readers.files import atomic_write

TILE = 160
PAD = 8
CAPTION_H = 38


@dataclass
class Tile:
    path: str
    label: str
    highlight: str | None = None  # outline colour: the target is green


def _thumbnail(path: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((TILE, TILE))
    except (OSError, ValueError):
        img = Image.new("RGB", (TILE, TILE), (235, 235, 235))  # no image file (metadata-only data)
    canvas = Image.new("RGB", (TILE, TILE), "white")
    canvas.paste(img, ((TILE - img.width) // 2, (TILE - img.height) // 2))
    return canvas


def _place(sheet: Image.Image, draw: ImageDraw.ImageDraw, font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
           tile: Tile, x: int, y: int) -> None:
    """A tile's thumbnail at (x, y), outlined when it asks to be, with up to three lines of its label under it."""
    sheet.paste(_thumbnail(tile.path), (x, y))
    if tile.highlight:
        draw.rectangle([x - 3, y - 3, x + TILE + 2, y + TILE + 2], outline=tile.highlight, width=4)
    for i, line in enumerate(textwrap.wrap(tile.label, 26)[:3]):
        draw.text((x, y + TILE + 2 + 11 * i), line, fill="black", font=font)


def render_query(candidate: Tile, text: str, results: list[Tile], path: Path, per_row: int = 5) -> Path:
    """One row for the query (candidate + text), then the results; written atomically as PNG."""
    font = ImageFont.load_default()
    rows = 1 + (len(results) + per_row - 1) // per_row
    width = PAD + per_row * (TILE + PAD)
    height = PAD + rows * (TILE + CAPTION_H + PAD)
    sheet = Image.new("RGB", (max(width, 2 * TILE + 3 * PAD + 300), height), "white")
    draw = ImageDraw.Draw(sheet)

    def place(tile: Tile, x: int, y: int) -> None:
        _place(sheet, draw, font, tile, x, y)

    place(candidate, PAD, PAD)
    for i, line in enumerate(textwrap.wrap(f'"{text}"', 40)[:6]):
        draw.text((2 * PAD + TILE, PAD + 40 + 14 * i), line, fill=(20, 100, 20), font=font)
    for i, tile in enumerate(results):
        r, c = divmod(i, per_row)
        place(tile, PAD + c * (TILE + PAD), PAD + (r + 1) * (TILE + CAPTION_H + PAD))
    return atomic_write(path, lambda fh: sheet.save(fh, "PNG"))


def render_grid(tiles: list[Tile], path: Path, title: str = "", per_row: int = 6) -> Path:
    """Tiles in rows under an optional title line; written atomically as PNG."""
    font = ImageFont.load_default()
    top = PAD + (16 if title else 0)
    rows = max(1, (len(tiles) + per_row - 1) // per_row)
    sheet = Image.new("RGB", (PAD + per_row * (TILE + PAD), top + rows * (TILE + CAPTION_H + PAD)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), title, fill="black", font=font)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, per_row)
        _place(sheet, draw, font, tile, PAD + c * (TILE + PAD), top + r * (TILE + CAPTION_H + PAD))
    return atomic_write(path, lambda fh: sheet.save(fh, "PNG"))


def query_sheet(bundle, candidate: str, text: str, results: list[str], path: Path, target: str | None = None,
                marks: dict[str, str] | None = None) -> Path:
    """The picture of one answer from a published bundle: the candidate, the text, the ranked results
    (the known ``target`` outlined green, ``marks`` outlining others: id -> colour)."""

    def tile(image_id: str, label: str, highlight: str | None = None) -> Tile:
        row = bundle.image_row[image_id]
        return Tile(bundle.image_paths[row], label, highlight)

    outlines = {**(marks or {}), **({target: "green"} if target else {})}
    return render_query(
        tile(candidate, f"{candidate}: {bundle.image_titles[bundle.image_row[candidate]]}"), text,
        [tile(i, f"{n}. {i} {bundle.image_titles[bundle.image_row[i]]}", outlines.get(i))
         for n, i in enumerate(results, 1)],
        path,
    )
