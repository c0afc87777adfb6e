"""Shared fixtures for gnn tests: each model is loaded once per test session; test images are generated."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

# Model hubs are unreachable here: make any accidental hub access fail fast instead of hanging.
# (Set before any test imports transformers, which reads these at import time.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def lite0():
    from gnn.features.encoders import image_encoder

    return image_encoder("efficientnet-lite0", device="cpu")


@pytest.fixture(scope="session")
def minilm():
    from gnn.features.encoders import text_encoder

    return text_encoder("minilm", device="cpu")


def product_photo(kind: str, size: tuple[int, int] = (224, 224)) -> Image.Image:
    """A synthetic catalog-style photo: one coloured garment-ish shape on white."""
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    w, h = size
    if kind == "red-dress":
        d.polygon(
            [(w * 0.4, h * 0.1), (w * 0.6, h * 0.1), (w * 0.8, h * 0.9), (w * 0.2, h * 0.9)], fill="red"
        )
    elif kind == "blue-shirt":
        d.rectangle([w * 0.25, h * 0.2, w * 0.75, h * 0.85], fill=(20, 40, 200))
        d.rectangle([w * 0.05, h * 0.2, w * 0.95, h * 0.4], fill=(20, 40, 200))
    else:
        d.ellipse([w * 0.2, h * 0.2, w * 0.8, h * 0.8], fill="green")
    return img


# name -> reason fragment expected in the failure report (None: must load fine)
ZOO_EXPECT: dict[str, str | None] = {
    "good.jpg": None,
    "good_copy.jpg": None,  # byte-identical to good.jpg
    "other.png": None,
    "gray.png": None,
    "cmyk.jpg": None,
    "rgba.png": None,
    "palette_transparent.png": None,
    "gray16.png": None,
    "tiny.png": None,
    "wide.jpg": None,
    "big.jpg": None,
    "truncated.jpg": "truncated",
    "garbage.jpg": "not an image",
    "empty.jpg": "empty file",
    "missing.jpg": "missing file",
}


def make_image_zoo(root: Path) -> dict[str, Path]:
    """Good, odd and broken images written at test time (nothing binary committed)."""
    root.mkdir(parents=True, exist_ok=True)
    p = {name: root / name for name in ZOO_EXPECT}
    product_photo("red-dress").save(p["good.jpg"], quality=90)
    p["good_copy.jpg"].write_bytes(p["good.jpg"].read_bytes())
    product_photo("blue-shirt").save(p["other.png"])
    product_photo("green", (150, 200)).convert("L").save(p["gray.png"])
    product_photo("blue-shirt", (200, 260)).convert("CMYK").save(p["cmyk.jpg"])
    rgba = Image.new("RGBA", (180, 240), (0, 0, 0, 0))  # fully transparent background...
    ImageDraw.Draw(rgba).rectangle([40, 40, 140, 200], fill=(200, 0, 0, 255))  # ...around an opaque garment
    rgba.save(p["rgba.png"])
    pal = product_photo("red-dress", (100, 100)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    pal.info["transparency"] = pal.getpixel((0, 0))  # the (white) background colour becomes transparent
    pal.save(p["palette_transparent.png"], transparency=pal.getpixel((0, 0)))
    g16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    Image.fromarray(g16).save(p["gray16.png"])
    product_photo("green", (3, 5)).save(p["tiny.png"])
    product_photo("red-dress", (3000, 100)).save(p["wide.jpg"], quality=80)
    product_photo("blue-shirt", (2400, 1800)).save(p["big.jpg"], quality=80)
    buf = io.BytesIO()
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    noisy.save(buf, "JPEG", quality=95)
    p["truncated.jpg"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    p["garbage.jpg"].write_bytes(np.random.default_rng(1).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    p["empty.jpg"].write_bytes(b"")
    # missing.jpg is deliberately not written
    return p


@pytest.fixture
def image_zoo(tmp_path: Path) -> dict[str, Path]:
    return make_image_zoo(tmp_path / "zoo")


@pytest.fixture
def zoo_expect() -> dict[str, str | None]:
    return dict(ZOO_EXPECT)


@pytest.fixture
def photos(tmp_path: Path) -> tuple[Path, Path]:
    """Two different synthetic product photos (a red dress JPEG, a blue shirt PNG)."""
    a, b = tmp_path / "a.jpg", tmp_path / "b.png"
    product_photo("red-dress").save(a, quality=90)
    product_photo("blue-shirt").save(b)
    return a, b
