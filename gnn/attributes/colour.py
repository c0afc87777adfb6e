"""Colour from a garment's pixels: a foreground mask for catalog photos and colour features in Lab and HSV.

Pooled CNN features (EfficientNet-Lite0) keep little of an object's colour (they are trained to be
invariant to it), so the attribute predictor fuses them with these hand-made pixel features.

The mask: catalog photos sit on a near-uniform, near-white background. The background colour is the
median of a thin frame of border pixels; a pixel is foreground when its Lab distance from it exceeds a
threshold. JPEG noise and anti-aliased edges leave specks and gaps, so the mask is closed, its holes are
filled (a white shirt on a white background is outlined by its seams and shadows; filling the outline
recovers its white interior) and it is opened. When almost nothing is left (a white object with no
outline) the whole image counts, so every image gets features. Half the photos show a model wearing
the garment: skin-coloured pixels (a band of hue angles and chromas in Lab) are set aside as a second,
"garment" mask, unless that would leave less than a third of the foreground (a beige or tan garment).

The features (:data:`FEATURE_DIM` in all, in a fixed layout, see :func:`colour_features`), each for the
foreground and again for the garment mask:

- a joint HSV histogram (12 hues x 4 saturations x 4 values) and a joint Lab histogram (5 x 7 x 7),
  square-rooted (the Hellinger map: a linear layer on sqrt-histograms compares them like distributions);
- the mean, median and standard deviation of Lab and of RGB;
- three dominant colours (k-means in Lab) with their shares, largest first;

then coarse Lab histograms (3 x 4 x 4) of six regions of the foreground's bounding box (top, middle and
bottom thirds, each split into its centre and its sides: a model wearing a top also wears trousers, and a
kurta's sleeves are not its body; which region names the colour depends on the article type, which the
predictor learns from the CNN features it fuses these with), and the foreground's and skin's shares.

Cheap on a CPU: images are reduced to :data:`SIZE` pixels a side first (histograms need no detail).
Features are cached by the file's content (see :class:`PixelColourEncoder`: it quacks like an image
encoder, so ``gnn.features.featurize.featurize_images`` and its content-keyed cache serve it unchanged).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from gnn.features.encoders import (
    ImageBatchResult,
    ImageLoadError,
    ImageSource,
    open_image,
    threaded_map,
    to_rgb,
)
from readers.progress import StartPhase

__all__ = [
    "COLOUR_FAMILIES",
    "FEATURE_DIM",
    "PLAIN_DIM",
    "PixelColourEncoder",
    "PlainColourEncoder",
    "colour_family",
    "colour_features",
    "featurize_colour",
    "foreground_mask",
    "plain_colour_features",
    "rgb_to_hsv",
    "rgb_to_lab",
    "skin_mask",
]

SIZE = 112  # pixels a side the photo is reduced to before anything is computed
BORDER = 3  # width of the frame the background colour is estimated from
BACKGROUND_DISTANCE = 12.0  # Lab units (a just-noticeable difference is about 2.3; JPEG noise 2-5)
MIN_FOREGROUND = 0.01  # below this share of the image the mask is not trusted: the whole image counts
MIN_GARMENT = 1 / 3  # below this share of the foreground left after skin, the garment is the foreground
HSV_BINS = (12, 4, 4)
LAB_BINS = (5, 7, 7)
REGION_BINS = (3, 4, 4)
REGIONS = 6  # thirds of the bounding box, each as centre and sides
DOMINANT = 3
VERSION = 2  # part of the cache name: change it whenever the features change

_PER_MASK = int(np.prod(HSV_BINS)) + int(np.prod(LAB_BINS)) + 18 + DOMINANT * 4
FEATURE_DIM = 2 * _PER_MASK + REGIONS * int(np.prod(REGION_BINS)) + 2

# Colour families: a near miss (navy blue for blue) is a near miss. Every myntra colour has one family;
# a colour not listed is its own family.
COLOUR_FAMILIES: dict[str, tuple[str, ...]] = {
    "black": ("black",),
    "grey": ("grey", "charcoal", "grey melange"),
    "white": ("white", "off white", "cream"),
    "blue": ("blue", "navy blue", "turquoise blue", "teal"),
    "green": ("green", "olive", "sea green", "fluorescent green"),
    "red": ("red", "maroon", "burgundy"),
    "pink": ("pink", "magenta", "peach"),
    "purple": ("purple", "lavender", "mauve"),
    "orange": ("orange", "rust"),
    "yellow": ("yellow", "mustard"),
    "brown": ("brown", "coffee brown", "tan", "taupe"),
    "beige": ("beige", "khaki", "nude", "skin"),
    "metallic": ("silver", "steel", "gold", "copper", "bronze", "metallic"),
    "multi": ("multi",),
}
_FAMILY_OF = {colour: family for family, colours in COLOUR_FAMILIES.items() for colour in colours}


def colour_family(colour: str) -> str:
    """The family of a colour name (case-insensitive); an unlisted colour is its own family."""
    key = colour.strip().lower()
    return _FAMILY_OF.get(key, key)


# --- colour spaces ---------------------------------------------------------------------------------

# sRGB (D65) -> linear light, as a table over the 256 byte values.
_SRGB = np.arange(256, dtype=np.float64) / 255.0
_LINEAR = np.where(_SRGB <= 0.04045, _SRGB / 12.92, ((_SRGB + 0.055) / 1.055) ** 2.4).astype(np.float32)
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]],
    dtype=np.float32,
)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)  # D65


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[..., 3]`` -> CIE Lab float32 ``[..., 3]`` (L 0..100, a and b about -100..100)."""
    linear = _LINEAR[np.asarray(rgb, dtype=np.uint8)]
    xyz = (linear @ _RGB_TO_XYZ.T) / _WHITE
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    lab = np.empty_like(f)
    lab[..., 0] = 116 * f[..., 1] - 16
    lab[..., 1] = 500 * (f[..., 0] - f[..., 1])
    lab[..., 2] = 200 * (f[..., 1] - f[..., 2])
    return lab


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[h, w, 3]`` -> HSV float32 in [0, 1] each (hue as a fraction of the circle); PIL's
    conversion, which is C and many times faster than the same arithmetic in numpy."""
    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).convert("HSV"))
    return hsv.astype(np.float32) / 256.0


# --- the mask --------------------------------------------------------------------------------------


def foreground_mask(lab: np.ndarray) -> np.ndarray:
    """bool ``[h, w]``: the object's pixels in a catalog photo of Lab pixels ``[h, w, 3]``."""
    h, w = lab.shape[:2]
    frame = np.concatenate(
        [lab[:BORDER].reshape(-1, 3), lab[-BORDER:].reshape(-1, 3), lab[:, :BORDER].reshape(-1, 3),
         lab[:, -BORDER:].reshape(-1, 3)]
    )
    background = np.median(frame, axis=0)
    mask = np.linalg.norm(lab - background, axis=-1) > BACKGROUND_DISTANCE
    mask = ndimage.binary_closing(mask, iterations=2)
    mask = ndimage.binary_fill_holes(mask)
    mask = ndimage.binary_opening(mask, iterations=1)
    if mask.mean() < MIN_FOREGROUND:
        return np.ones((h, w), dtype=bool)
    return mask


def skin_mask(lab: np.ndarray) -> np.ndarray:
    """bool ``[h, w]``: skin-coloured pixels (lightness 30-88, hue angle 25-80 degrees, chroma 8-45 in Lab:
    the range of the models' faces and arms in myntra photos; beige and tan cloth falls in it too, which
    is why the features keep the whole foreground as well)."""
    lightness, a, b = lab[..., 0], lab[..., 1], lab[..., 2]
    angle = np.degrees(np.arctan2(b, a))
    chroma = np.hypot(a, b)
    return (lightness > 30) & (lightness < 88) & (angle > 25) & (angle < 80) & (chroma > 8) & (chroma < 45)


# --- the features ----------------------------------------------------------------------------------


def _histogram(values: np.ndarray, bins: tuple[int, ...], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Joint histogram of ``values [n, d]`` over ``bins`` equal cells per axis in [lo, hi], as counts."""
    cells = np.clip(((values - lo) / (hi - lo) * np.asarray(bins)).astype(np.int64), 0, np.asarray(bins) - 1)
    flat = np.ravel_multi_index(tuple(cells.T), bins)
    return np.bincount(flat, minlength=int(np.prod(bins))).astype(np.float32)


_LAB_LO = np.array([0.0, -80.0, -80.0], dtype=np.float32)
_LAB_HI = np.array([100.0, 80.0, 80.0], dtype=np.float32)
_UNIT_LO = np.zeros(3, dtype=np.float32)
_UNIT_HI = np.ones(3, dtype=np.float32)


def _dominant(lab: np.ndarray, k: int = DOMINANT, iterations: int = 6, sample: int = 256) -> np.ndarray:
    """k-means in Lab on (a fixed, evenly spaced sample of) the pixels -> ``[k, 4]``: centre and share,
    largest share first. Seeded from lightness quantiles, so it is deterministic."""
    pts = lab[:: max(1, len(lab) // sample)]
    order = np.argsort(pts[:, 0], kind="stable")
    centres = pts[order[np.linspace(0, len(pts) - 1, k).astype(int)]].copy()
    assign = np.zeros(len(pts), dtype=np.int64)
    for _ in range(iterations):
        assign = ((pts[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        for c in range(k):
            members = pts[assign == c]
            if len(members):
                centres[c] = members.mean(0)
    shares = np.bincount(assign, minlength=k).astype(np.float32) / len(pts)
    order = np.argsort(-shares, kind="stable")
    return np.concatenate([centres[order] / 100.0, shares[order, None]], axis=1).astype(np.float32)


def _mask_features(lab: np.ndarray, hsv: np.ndarray, rgb: np.ndarray) -> list[np.ndarray]:
    """Histograms, statistics and dominant colours of one mask's pixels (``[n, 3]`` each, n > 0)."""
    n = float(len(lab))
    scaled = rgb.astype(np.float32) / 255.0
    return [
        np.sqrt(_histogram(hsv, HSV_BINS, _UNIT_LO, _UNIT_HI) / n),
        np.sqrt(_histogram(lab, LAB_BINS, _LAB_LO, _LAB_HI) / n),
        lab.mean(0) / 100.0, np.median(lab, axis=0) / 100.0, lab.std(0) / 100.0,
        scaled.mean(0), np.median(scaled, axis=0), scaled.std(0),
        _dominant(lab).ravel(),
    ]


def _region_features(lab_image: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    """Coarse Lab histograms of the bounding box's thirds (top to bottom), centre then sides, each as a
    share of all foreground pixels (so a region's size counts too)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    row_edges = np.linspace(rows[0], rows[-1] + 1, 4).round().astype(int)
    col_edges = np.linspace(cols[0], cols[-1] + 1, 5).round().astype(int)
    centre = np.zeros(mask.shape[1], dtype=bool)
    centre[col_edges[1] : col_edges[3]] = True
    n = float(mask.sum())
    out = []
    for third in range(3):
        band = np.zeros_like(mask)
        band[row_edges[third] : row_edges[third + 1]] = True
        for columns in (centre, ~centre):
            pixels = lab_image[band & columns[None, :] & mask]
            hist = _histogram(pixels, REGION_BINS, _LAB_LO, _LAB_HI) if len(pixels) else np.zeros(
                int(np.prod(REGION_BINS)), np.float32)
            out.append(np.sqrt(hist / n))
    return out


def colour_features(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[h, w, 3]`` (any size; reduced to :data:`SIZE` first) -> float32 ``[FEATURE_DIM]``."""
    if rgb.shape[:2] != (SIZE, SIZE):
        rgb = np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.Resampling.BOX))
    lab_image = rgb_to_lab(rgb)
    hsv_image = rgb_to_hsv(rgb)
    mask = foreground_mask(lab_image)
    skin = skin_mask(lab_image) & mask
    garment = mask & ~skin
    if garment.sum() < MIN_GARMENT * mask.sum():
        garment = mask
    parts: list[np.ndarray] = []
    for m in (mask, garment):
        parts += _mask_features(lab_image[m], hsv_image[m], rgb[m])
    parts += _region_features(lab_image, mask)
    parts.append(np.array([mask.mean(), skin.sum() / mask.sum()], dtype=np.float32))
    out = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])
    if out.shape != (FEATURE_DIM,):  # a layout bug, not bad input
        raise AssertionError(f"colour features have shape {out.shape}, expected ({FEATURE_DIM},)")
    return out


# The plain check: what anyone would try first, and what the predictor's colour is measured against.
PLAIN_WHITE = 235  # a pixel whose three channels all exceed this is background
PLAIN_DIM = int(np.prod(HSV_BINS)) + 9


def plain_colour_features(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB ``[h, w, 3]`` -> float32 ``[PLAIN_DIM]``: the share of each cell of a joint HSV histogram
    (12 x 4 x 4) over the pixels that are not near-white, then the mean, median and standard deviation of
    their RGB (0..1). No mask morphology, no skin, no Lab, no regions: the plain check of DESIGN.md."""
    if rgb.shape[:2] != (SIZE, SIZE):
        rgb = np.asarray(Image.fromarray(rgb).resize((SIZE, SIZE), Image.Resampling.BOX))
    flat = rgb.reshape(-1, 3)
    keep = flat.min(axis=1) <= PLAIN_WHITE
    if keep.mean() < MIN_FOREGROUND:  # a white object on white: the whole image
        keep[:] = True
    hsv = rgb_to_hsv(rgb).reshape(-1, 3)[keep]
    pixels = flat[keep].astype(np.float32) / 255.0
    hist = _histogram(hsv, HSV_BINS, _UNIT_LO, _UNIT_HI) / len(hsv)
    return np.concatenate([hist, pixels.mean(0), np.median(pixels, 0), pixels.std(0)]).astype(np.float32)


def _prepare(source: ImageSource) -> np.ndarray | ImageLoadError:
    try:
        img = to_rgb(open_image(source, SIZE))
        if img.size != (SIZE, SIZE):
            # Letterbox onto the photo's own border colour would change nothing the mask relies on; the
            # plain resize keeps the object's pixels (the aspect ratio does not matter to a histogram).
            img = img.resize((SIZE, SIZE), Image.Resampling.BOX)
        return np.asarray(img, dtype=np.uint8)
    except ImageLoadError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - e.g. a palette image with a broken palette
        return ImageLoadError("<image>", f"cannot convert to RGB: {exc}")


class PixelColourEncoder:
    """Pixel colour features with the image-encoder interface ``featurize_images`` uses (so they are
    cached by file content like CNN features). Work runs on ``workers`` threads: decoding and the scipy
    morphology release the GIL."""

    features = staticmethod(colour_features)  # one photo's uint8 RGB [SIZE, SIZE, 3] -> its features

    def __init__(self, workers: int | None = None, batch_size: int = 32) -> None:
        self.name = f"pixel-colour-v{VERSION}"
        self.dim = FEATURE_DIM
        self.image_size = SIZE
        self.device = torch.device("cpu")
        self.workers = workers or max(1, min(torch.get_num_threads(), 8))
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"PixelColourEncoder(name={self.name!r}, dim={self.dim}, workers={self.workers})"

    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        return np.stack([self.features(p) for p in pixels]) if len(pixels) else np.zeros((0, self.dim), np.float32)

    def _batch(self, batch: Sequence[ImageSource]) -> tuple[list[np.ndarray], list[int], list[tuple[int, ImageLoadError]]]:
        feats, ok, errors = [], [], []
        for j, source in enumerate(batch):
            prepared = _prepare(source)
            if isinstance(prepared, ImageLoadError):
                errors.append((j, prepared))
                continue
            feats.append(self.features(prepared))
            ok.append(j)
        return feats, ok, errors

    def try_encode_images(
        self,
        images: Sequence[ImageSource],
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ImageBatchResult:
        bs = batch_size or self.batch_size
        starts = range(0, len(images), bs)
        feats: list[np.ndarray] = []
        ok: list[int] = []
        errors: list[tuple[int, ImageLoadError]] = []
        for i, (f, o, e) in zip(starts, threaded_map(lambda i: self._batch(images[i : i + bs]), starts,
                                                     self.workers, None), strict=True):
            feats += f
            ok += [i + j for j in o]
            errors += [(i + j, err) for j, err in e]
            if on_batch is not None:
                on_batch(min(bs, len(images) - i))
        out = np.stack(feats) if feats else np.zeros((0, self.dim), np.float32)
        return ImageBatchResult(out, np.asarray(ok, dtype=np.int64), errors)

    def encode_images(self, images: Sequence[ImageSource], batch_size: int | None = None) -> np.ndarray:
        res = self.try_encode_images(images, batch_size)
        if res.errors:
            raise res.errors[0][1]
        return res.features


class PlainColourEncoder(PixelColourEncoder):
    """:func:`plain_colour_features` with the same interface and cache (under its own name)."""

    features = staticmethod(plain_colour_features)

    def __init__(self, workers: int | None = None, batch_size: int = 32) -> None:
        super().__init__(workers, batch_size)
        self.name, self.dim = "plain-colour-v1", PLAIN_DIM


@dataclass
class ColourFeatures:
    """Pixel colour features aligned with the items asked for (zero rows where an image failed)."""

    name: str
    features: np.ndarray  # float32 [len(items), FEATURE_DIM]
    summary: str
    failed: list


def featurize_colour(
    items: Sequence[tuple[str, str]], cache_root: Path, *, start_phase: StartPhase | None = None,
    encoder: PixelColourEncoder | None = None,
) -> ColourFeatures:
    """Pixel colour features of ``(image id, path)`` items through the content-keyed feature cache under
    ``cache_root`` (a second call, or a renamed file, computes nothing)."""
    from gnn.features.cache import FeatureCache
    from gnn.features.featurize import featurize_images

    encoder = encoder or PixelColourEncoder()
    result = featurize_images(items, encoder, FeatureCache(cache_root, encoder.name, encoder.dim),
                              start_phase=start_phase)
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    row_of = result.row_of()
    for i, (image_id, _) in enumerate(items):
        if image_id in row_of:
            out[i] = result.features[row_of[image_id]]
    return ColourFeatures(encoder.name, out, result.summary(), result.failed)
