"""experiments.attributes.colour_check on synthetic images: the predictor and the plain check are scored on
the same images per protocol, cross-validation never reads a test image, and the seeds are reported."""

from __future__ import annotations

import numpy as np

from experiments.attributes import (
    CV_EVERY,
    CV_GROUPED,
    PLAIN,
    PREDICTOR,
    TEST_SPLIT,
    colour_check,
    colour_check_markdown,
    write_colour_check,
)
from gnn.config import AttributeConfig

COLOURS = ["black", "blue", "red", "white"]
TYPES = ["dress", "shirt"]


def catalog(n: int = 480, seed: int = 0):
    """Products in groups of four (one per colour) and ungrouped ones; CNN-like features carry the article
    type and a little colour, the plain features carry the colour more plainly."""
    rng = np.random.default_rng(seed)
    colour_dir = {c: rng.normal(size=16) for c in COLOURS}
    type_dir = {t: rng.normal(size=16) for t in TYPES}
    ids, groups, splits, labels, cnn, plain = [], [], [], [], [], []
    for i in range(n):
        group = f"g{i // 4}" if i < n * 3 // 4 else ""
        key = group or f"u{i}"
        where = int.from_bytes(key.encode(), "little") % 10
        colour, kind = COLOURS[i % 4], TYPES[(i // 4) % 2]
        ids.append(str(i))
        groups.append(group)
        splits.append("test" if where < 2 and group else "val" if where < 3 else "train")
        labels.append({"colour": {colour}, "article_type": {kind}})
        cnn.append(type_dir[kind] + 0.4 * colour_dir[colour] + rng.normal(size=16))
        plain.append(colour_dir[colour] + 0.8 * rng.normal(size=16))
    features = np.concatenate([np.asarray(cnn), np.asarray(plain)], axis=1).astype(np.float32)
    return features, [("cnn", 16), ("pixels", 16)], np.asarray(plain, np.float32), splits, groups, ids, labels


def test_the_colour_check_scores_both_models_on_the_same_images(tmp_path) -> None:
    features, inputs, plain, splits, groups, ids, labels = catalog()
    config = AttributeConfig(hidden=16, epochs=30, patience=5, batch_size=64)
    steps: list[str] = []
    check = colour_check(features, inputs, plain, splits, groups, ids, labels, config, folds=3, seeds=2,
                         on_step=steps.append)
    assert len(check.seed_top1) == len(check.seed_top3) == 2 and len(steps) == 2 + 2
    train_val = [i for i, s in enumerate(splits) if s in ("train", "val")]
    expected = {TEST_SPLIT: splits.count("test"), CV_GROUPED: sum(1 for i in train_val if groups[i]),
                CV_EVERY: len(train_val)}
    for protocol, images in expected.items():
        ours, theirs = check.row(protocol, PREDICTOR), check.row(protocol, PLAIN)
        assert ours.images == theirs.images == images, protocol
        assert 0.5 < theirs.top1 <= theirs.top3 <= 1.0 and 0.25 < ours.top1 <= ours.top3 <= 1.0, protocol
    assert check.row(TEST_SPLIT, PREDICTOR).top1 == check.seed_top1[0]
    # the cross-validation rows never read a test label
    lying = [lab if s != "test" else {"colour": {"white"}, "article_type": {"dress"}}
             for lab, s in zip(labels, splits, strict=True)]
    again = colour_check(features, inputs, plain, splits, groups, ids, lying, config, folds=3, seeds=1)
    for protocol in (CV_GROUPED, CV_EVERY):
        for model in (PREDICTOR, PLAIN):
            assert again.row(protocol, model) == check.row(protocol, model)
    text = colour_check_markdown(check)
    assert all(p in text for p in expected) and "2 training seeds" in text
    write_colour_check(check, tmp_path)
    assert (tmp_path / "colour_check.json").exists() and (tmp_path / "colour_check.md").read_text() == text
