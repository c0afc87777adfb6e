"""gnn.attributes.colour: the foreground mask of catalog-style photos, the colour spaces, the features'
layout and their cache, the colour families. Pictures are drawn here (a garment on a white background),
plus a few real myntra-small photos where the dataset is present."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from gnn.attributes.colour import (
    COLOUR_FAMILIES,
    FEATURE_DIM,
    PLAIN_DIM,
    PixelColourEncoder,
    PlainColourEncoder,
    colour_family,
    colour_features,
    featurize_colour,
    foreground_mask,
    plain_colour_features,
    rgb_to_hsv,
    rgb_to_lab,
    skin_mask,
)
from readers.datasets import myntra_catalog


def garment(colour: tuple[int, int, int], outline: tuple[int, int, int] | None = None,
            background: tuple[int, int, int] = (250, 250, 250), size: int = 224) -> np.ndarray:
    """A 'shirt' (a filled polygon) on a near-white background, with JPEG-like noise."""
    img = Image.new("RGB", (size, size), background)
    draw = ImageDraw.Draw(img)
    s = size / 224
    shape = [(70 * s, 40 * s), (154 * s, 40 * s), (190 * s, 90 * s), (160 * s, 100 * s), (160 * s, 200 * s),
             (64 * s, 200 * s), (64 * s, 100 * s), (34 * s, 90 * s)]
    draw.polygon(shape, fill=colour, outline=outline, width=3 if outline else 0)
    arr = np.asarray(img).astype(np.int16)
    noise = np.random.default_rng(0).integers(-3, 4, arr.shape)
    return np.clip(arr + noise, 0, 255).astype(np.uint8)


def shirt_pixels(size: int) -> np.ndarray:
    img = Image.new("L", (size, size), 0)
    s = size / 224
    ImageDraw.Draw(img).polygon([(70 * s, 40 * s), (154 * s, 40 * s), (190 * s, 90 * s), (160 * s, 100 * s),
                                 (160 * s, 200 * s), (64 * s, 200 * s), (64 * s, 100 * s), (34 * s, 90 * s)], fill=1)
    return np.asarray(img).astype(bool)


def test_lab_and_hsv_of_known_colours() -> None:
    lab = rgb_to_lab(np.array([[255, 255, 255], [0, 0, 0], [255, 0, 0], [0, 0, 255]], dtype=np.uint8))
    np.testing.assert_allclose(lab[0], [100, 0, 0], atol=0.5)
    np.testing.assert_allclose(lab[1], [0, 0, 0], atol=0.5)
    np.testing.assert_allclose(lab[2], [53.2, 80.1, 67.2], atol=0.5)  # sRGB red, D65
    np.testing.assert_allclose(lab[3], [32.3, 79.2, -107.9], atol=0.5)
    hsv = rgb_to_hsv(np.array([[[255, 0, 0], [0, 255, 0], [0, 0, 255], [128, 128, 128]]], dtype=np.uint8))[0]
    np.testing.assert_allclose(hsv[:, 0][:3], [0, 1 / 3, 2 / 3], atol=0.01)
    np.testing.assert_allclose(hsv[:, 1], [1, 1, 1, 0], atol=0.01)


def test_the_mask_finds_a_coloured_garment_on_white() -> None:
    rgb = garment((200, 30, 40))
    small = np.asarray(Image.fromarray(rgb).resize((112, 112), Image.Resampling.BOX))
    mask = foreground_mask(rgb_to_lab(small))
    truth = shirt_pixels(112)
    iou = (mask & truth).sum() / (mask | truth).sum()
    assert iou > 0.9, iou


def test_filling_recovers_a_white_garment_outlined_on_white() -> None:
    rgb = garment((252, 252, 252), outline=(150, 150, 150))
    small = np.asarray(Image.fromarray(rgb).resize((112, 112), Image.Resampling.BOX))
    mask = foreground_mask(rgb_to_lab(small))
    truth = shirt_pixels(112)
    assert (mask & truth).sum() / truth.sum() > 0.9  # its white interior counts, not just the seams


def test_a_blank_image_counts_whole_rather_than_empty() -> None:
    blank = np.full((112, 112, 3), 250, dtype=np.uint8)
    assert foreground_mask(rgb_to_lab(blank)).all()
    assert np.isfinite(colour_features(blank)).all()


def test_skin_is_told_from_blue_and_red_cloth() -> None:
    pixels = np.array([[[224, 172, 138], [198, 134, 103], [30, 60, 160], [200, 20, 30], [250, 250, 250]]],
                      dtype=np.uint8)
    assert skin_mask(rgb_to_lab(pixels))[0].tolist() == [True, True, False, False, False]


def test_features_have_a_fixed_layout_and_separate_colours() -> None:
    red, blue, navy = (garment(c) for c in [(200, 30, 40), (40, 80, 220), (20, 30, 80)])
    feats = {name: colour_features(x) for name, x in [("red", red), ("blue", blue), ("navy", navy)]}
    feats["white"] = colour_features(garment((252, 252, 252), outline=(150, 150, 150)))
    for f in feats.values():
        assert f.shape == (FEATURE_DIM,) and f.dtype == np.float32 and np.isfinite(f).all()
    # blue is nearer navy than red (a near miss is near)
    assert np.linalg.norm(feats["blue"] - feats["navy"]) < np.linalg.norm(feats["blue"] - feats["red"])
    # the same picture at another size gives nearly the same features
    big = colour_features(np.asarray(Image.fromarray(red).resize((448, 448))))
    assert np.linalg.norm(big - feats["red"]) < 0.25 * np.linalg.norm(feats["red"] - feats["blue"])


def test_the_encoder_caches_by_content_and_reports_bad_files(tmp_path: Path) -> None:
    paths = []
    for name, colour in [("a", (200, 30, 40)), ("b", (40, 80, 220))]:
        path = tmp_path / f"{name}.jpg"
        Image.fromarray(garment(colour)).save(path, quality=90)
        paths.append(path)
    copy = tmp_path / "copy-of-a.jpg"
    copy.write_bytes(paths[0].read_bytes())
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    items = [("a", str(paths[0])), ("b", str(paths[1])), ("c", str(copy)), ("x", str(broken)),
             ("m", str(tmp_path / "missing.jpg"))]
    encoder = PixelColourEncoder(workers=2)
    first = featurize_colour(items, tmp_path / "cache", encoder=encoder)
    assert first.features.shape == (5, FEATURE_DIM)
    assert {f.id for f in first.failed} == {"x", "m"}
    assert not first.features[3:].any()  # failed images get zero rows
    np.testing.assert_array_equal(first.features[0], first.features[2])  # identical bytes, one vector
    np.testing.assert_allclose(first.features[1], encoder.encode_images([str(paths[1])])[0], atol=1e-6)
    second = featurize_colour(items, tmp_path / "cache", encoder=encoder)
    assert "0 computed" in second.summary
    np.testing.assert_array_equal(second.features, first.features)


def test_the_plain_check_histograms_the_non_white_pixels(tmp_path: Path) -> None:
    """The plain check's features: shares of an HSV histogram over the pixels that are not near-white
    (they sum to one; a red and a blue garment fill different hue cells) and their RGB statistics; cached
    under their own name, apart from the pixel colour features."""
    red, blue = plain_colour_features(garment((200, 30, 40))), plain_colour_features(garment((40, 80, 220)))
    assert red.shape == blue.shape == (PLAIN_DIM,) and red.dtype == np.float32
    hist = red[:PLAIN_DIM - 9]
    assert abs(hist.sum() - 1.0) < 1e-5 and (hist >= 0).all()
    assert np.argmax(red[:PLAIN_DIM - 9]) != np.argmax(blue[:PLAIN_DIM - 9])
    mean_rgb = red[PLAIN_DIM - 9:PLAIN_DIM - 6]
    np.testing.assert_allclose(mean_rgb, np.array([200, 30, 40]) / 255, atol=0.03)  # background left out
    blank = plain_colour_features(np.full((224, 224, 3), 250, np.uint8))
    assert abs(blank[:PLAIN_DIM - 9].sum() - 1.0) < 1e-5  # all white: the whole image counts
    path = tmp_path / "red.jpg"
    Image.fromarray(garment((200, 30, 40))).save(path, quality=95)
    plain = featurize_colour([("r", str(path))], tmp_path / "cache", encoder=PlainColourEncoder(workers=1))
    rich = featurize_colour([("r", str(path))], tmp_path / "cache", encoder=PixelColourEncoder(workers=1))
    assert plain.name != rich.name and plain.features.shape == (1, PLAIN_DIM)
    assert rich.features.shape == (1, FEATURE_DIM) and "0 cached" in rich.summary


def test_colour_families() -> None:
    assert colour_family("Navy Blue") == "blue" == colour_family("blue")
    assert colour_family("maroon") == "red"
    assert colour_family("off white") == "white"
    assert colour_family("chartreuse") == "chartreuse"  # unlisted: its own family
    listed = [c for colours in COLOUR_FAMILIES.values() for c in colours]
    assert len(listed) == len(set(listed))  # one family per colour


@pytest.mark.skipif(not myntra_catalog().is_file(), reason="myntra-small is not at ../shared/datasets")
def test_real_photos_get_a_foreground_that_is_neither_empty_nor_everything() -> None:
    images = sorted((myntra_catalog().parent / "images").glob("*.jpg"))[:40]
    shares = []
    for path in images:
        rgb = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB").resize((112, 112)))
        shares.append(foreground_mask(rgb_to_lab(rgb)).mean())
    assert 0.05 < float(np.median(shares)) < 0.8, shares
