"""Encoders: documented dims, unit norm, determinism, robust image loading, registry, offline errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gnn.features.encoders import (
    EfficientNetLite0Encoder,
    ImageEncoder,
    ImageLoadError,
    ResNet18Encoder,
    TextEncoder,
    WeightsUnavailableError,
    image_encoder,
    prepare_image,
    text_encoder,
)

# ---- image loading -----------------------------------------------------------------------------


def test_zoo_loads_or_fails_with_the_right_reason(image_zoo: dict[str, Path], zoo_expect) -> None:
    for name, path in image_zoo.items():
        expected = zoo_expect[name]
        if expected is None:
            px = prepare_image(path)
            assert px.shape == (224, 224, 3) and px.dtype == np.uint8, name
        else:
            with pytest.raises(ImageLoadError) as info:
                prepare_image(path)
            assert expected in info.value.reason, (name, info.value.reason)
            assert info.value.path == str(path)


def test_transparency_is_composited_onto_white(image_zoo: dict[str, Path]) -> None:
    px = prepare_image(image_zoo["rgba.png"])  # transparent *black* background
    assert (px[0, 0] == 255).all() and (px[-1, -1] == 255).all()
    assert tuple(px[112, 112]) == (200, 0, 0)
    px = prepare_image(image_zoo["palette_transparent.png"])
    assert (px[0, 0] == 255).all()


def test_odd_shapes_are_letterboxed_on_white(image_zoo: dict[str, Path]) -> None:
    wide = prepare_image(image_zoo["wide.jpg"])  # 3000x100 -> 224x7 strip, centred
    assert (wide[:100] > 250).all() and (wide[-100:] > 250).all()
    assert wide[112, 112, 0] > 200 and wide[112, 112, 2] < 60  # the red dress survives
    tiny = prepare_image(image_zoo["tiny.png"])
    assert tiny.shape == (224, 224, 3)
    gray16 = prepare_image(image_zoo["gray16.png"])  # a 16-bit ramp is scaled, not clipped to white
    assert 50 < gray16[112, 112, 0] < 200


def test_pil_and_bytes_inputs_match_paths(photos) -> None:
    a, _ = photos
    from_path = prepare_image(a)
    assert np.array_equal(prepare_image(a.read_bytes()), from_path)
    assert np.array_equal(prepare_image(Image.open(a)), from_path)


# ---- image encoders ------------------------------------------------------------------------------


def test_lite0_dims_norm_and_determinism(lite0: EfficientNetLite0Encoder, photos) -> None:
    assert isinstance(lite0, ImageEncoder)
    assert lite0.name == "efficientnet-lite0" and lite0.dim == 1280
    a, b = photos
    threads = torch.get_num_threads()
    f = lite0.encode_images([a, b, a])
    assert torch.get_num_threads() == threads  # the workers' one-thread setting is undone
    assert f.shape == (3, 1280) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(f[0], f[2], atol=1e-6)  # same image -> same features
    assert float(f[0] @ f[1]) < 0.98  # different images -> different features
    again = lite0.encode_images([a, b], batch_size=1, workers=1)
    np.testing.assert_allclose(again, f[:2], atol=1e-5)  # batch size / threading do not matter


def test_lite0_fused_network_matches_the_library(photos) -> None:
    reference = EfficientNetLite0Encoder(device="cpu", fast=False, normalize=False)
    raw = EfficientNetLite0Encoder(device="cpu", normalize=False)
    assert raw.name == "efficientnet-lite0+raw"
    px = np.stack([prepare_image(p) for p in photos])
    want = reference.encode_pixels(px)
    got = raw.encode_pixels(px)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # and the library model's own preprocessing convention: (x - 127) / 128
    x = (torch.from_numpy(px).permute(0, 3, 1, 2).float() - 127.0) / 128.0
    with torch.inference_mode():
        lib = reference.net.model.extract_features(x).mean((2, 3)).numpy()
    np.testing.assert_allclose(want, lib, rtol=1e-4, atol=1e-4)


def test_encode_images_raises_naming_the_bad_file(lite0: EfficientNetLite0Encoder, image_zoo) -> None:
    with pytest.raises(ImageLoadError, match="garbage.jpg"):
        lite0.encode_images([image_zoo["good.jpg"], image_zoo["garbage.jpg"]])
    res = lite0.try_encode_images([image_zoo["good.jpg"], image_zoo["missing.jpg"], image_zoo["other.png"]])
    assert res.ok.tolist() == [0, 2] and res.features.shape == (2, 1280)
    assert [(i, e.reason) for i, e in res.errors] == [(1, "missing file")]


def test_registry() -> None:
    with pytest.raises(ValueError, match="unknown image encoder"):
        image_encoder("vgg-nonexistent")


def test_resnet18_offline_error_says_how_to_get_weights(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("TAILOR_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError) as info:
        image_encoder("resnet18", device="cpu")
    msg = str(info.value)
    assert "--weights" in msg and str(tmp_path / "torch-home" / "hub" / "checkpoints") in msg
    with pytest.raises(WeightsUnavailableError, match="not found"):
        ResNet18Encoder(device="cpu", weights=tmp_path / "nope.pth")


def test_resnet18_from_a_local_weights_file(tmp_path: Path, photos) -> None:
    from torchvision.models import resnet18

    torch.manual_seed(0)
    weights = tmp_path / "my-resnet18.pth"
    torch.save(resnet18(weights=None).state_dict(), weights)
    enc = image_encoder("resnet18", device="cpu", weights=weights)
    assert enc.dim == 512 and enc.name.startswith("resnet18@")  # custom weights never share a cache
    f = enc.encode_images(list(photos))
    assert f.shape == (2, 512)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)


# ---- text encoders -------------------------------------------------------------------------------


def test_minilm_dims_norm_and_determinism(minilm) -> None:
    assert isinstance(minilm, TextEncoder)
    assert minilm.name == "all-MiniLM-L6-v2" and minilm.dim == 384
    texts = ["is black and sleeveless", "has long sleeves and a collar", "is black and sleeveless"]
    f = minilm.encode_texts(texts)
    assert f.shape == (3, 384) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(f[0], f[2], atol=1e-6)
    assert float(f[0] @ f[1]) < 0.9
    np.testing.assert_allclose(minilm.encode_texts(texts[:2], batch_size=1), f[:2], atol=1e-5)
    np.testing.assert_allclose(minilm.encode_texts(texts, workers=1), f, atol=1e-5)
    # the same numbers as sentence-transformers' own encode()
    np.testing.assert_allclose(minilm.model.encode(texts, normalize_embeddings=True), f, atol=1e-5)
    assert minilm.encode_texts([]).shape == (0, 384)


def test_text_encoder_unknown_model_offline() -> None:
    with pytest.raises(WeightsUnavailableError, match="cannot load"):
        text_encoder("no-such-org/no-such-model", device="cpu")
