"""gnn.attributes.validation: the folds hold product groups out whole, score every grouped train and val image
once, and never read a test image; cross-validation pools the folds' counts. Synthetic features, no Neo4j."""

from __future__ import annotations

from collections import defaultdict

import pytest

from gnn.attributes.predictor import AttributeConfig
from gnn.attributes.validation import HELD_OUT, SET_ASIDE, cross_validate_attributes, fold_splits
from tests.gnn.attributes.test_predictor import FAST, synthetic


def grouped(n: int = 600, seed: int = 0):
    """The predictor's synthetic data with a product group per image (groups of 4, every 10th image none)."""
    feats, splits, labels = synthetic(n, seed=seed)
    groups = ["" if i % 10 == 9 else f"group {i // 4}" for i in range(n)]
    return feats, splits, labels, groups


def test_folds_hold_groups_out_whole_and_score_each_image_once() -> None:
    _, splits, _, groups = grouped()
    scored = defaultdict(int)
    for fold in range(5):
        split = fold_splits(splits, groups, 5, fold)
        held = {groups[i] for i, s in enumerate(split) if s == HELD_OUT}
        trained = {groups[i] for i, s in enumerate(split) if s in ("train", "val")}
        assert held and not held & trained  # no variant of a scored product trains or stops the training
        assert "val" in split
        for i, s in enumerate(split):
            scored[i] += s == HELD_OUT
            if splits[i] == "test":
                assert s == SET_ASIDE
            elif not groups[i]:
                assert s == "train"
    assert all(scored[i] == (splits[i] != "test" and bool(groups[i])) for i in range(len(splits)))
    assert fold_splits(splits, groups, 5, 2) == fold_splits(splits, groups, 5, 2)


def test_bad_folds_are_refused() -> None:
    _, splits, _, groups = grouped(40)
    with pytest.raises(ValueError, match="at least 2 folds"):
        fold_splits(splits, groups, 1, 0)
    with pytest.raises(ValueError, match="groups"):
        fold_splits(splits, groups[:-1], 5, 0)
    feats, splits, labels, _ = grouped(40)
    with pytest.raises(ValueError, match="holds no grouped"):
        cross_validate_attributes(feats, splits, [""] * 40, labels, AttributeConfig(**FAST), folds=2)


def test_cross_validation_pools_folds_and_never_reads_test_labels() -> None:
    feats, splits, labels, groups = grouped()
    config = AttributeConfig(**{**FAST, "epochs": 15})
    cv = cross_validate_attributes(feats, splits, groups, labels, config, folds=3)
    expected = sum(1 for s, g in zip(splits, groups, strict=True) if s != "test" and g)
    assert cv.held_out == expected and len(cv.folds) == 3
    pooled = {a.kind: a for a in cv.pooled()}
    for kind, a in pooled.items():
        assert a.images == sum(f.images for rows in cv.folds for f in rows if f.kind == kind) == expected
        assert a.correct == sum(p.correct for p in cv.predictions if p.kind == kind)
        assert a.accuracy > 0.6  # the synthetic kinds are learnable: chance is at most 1/2
    assert all(splits[p.row] != "test" for p in cv.predictions)
    lying = [dict(lab) if s != "test" else {k: {"nonsense"} for k in lab} for lab, s in zip(labels, splits, strict=True)]
    again = cross_validate_attributes(feats, splits, groups, lying, config, folds=3)
    assert [(p.row, p.top3, p.confidence) for p in again.predictions] == \
        [(p.row, p.top3, p.confidence) for p in cv.predictions]
