"""Group k-fold cross-validation of the attribute predictor inside the train and val images.

Why: the val split of myntra-small holds 536 images, so one val accuracy has a standard error of about
2 points, as large as the differences between the variants worth comparing, and val already chooses
each kind's stopping epoch. Cross-validation over the 7,600 train and val images scores every grouped
image once, on the same protocol as the test split, without reading a test image.

The protocol mirrors the real split:

- A product group (the display name without its varying attribute) is held out whole: each group falls
  in one fold, by a stable hash of its name (:func:`readers.splits.stable_fraction`), so a fold never
  sees a variant of a product it scores.
- Images without a group are never scored and always train, as they do in the real split.
- Within each fold's training groups, :data:`VAL_SHARE` of the groups play val (early stopping and the
  temperature), the share val has of train and val in the real split.
- Test images are set aside before anything else: no fold trains, stops or scores on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from gnn.attributes.predictor import (
    Family,
    KindAccuracy,
    Labels,
    _split_rows,
    _valid_rows,
    evaluate_attributes,
    fit_attributes,
)
from gnn.config import AttributeConfig
from readers.splits import stable_fraction

__all__ = ["HELD_OUT", "VAL_SHARE", "CrossValidation", "OutOfFold", "cross_validate_attributes", "fold_splits"]

HELD_OUT = "fold"  # the split name a fold's scored images get (never "test": those are set aside)
SET_ASIDE = "set aside"  # the split name test images get: no fold reads them
VAL_SHARE = 0.125  # val's share of the train and val groups in the default 0.7 / 0.1 / 0.2 split


def fold_splits(splits: Sequence[str], groups: Sequence[str], folds: int, fold: int, seed: int = 0
                ) -> list[str]:
    """The split of every image for ``fold`` of ``folds``: :data:`HELD_OUT` for the grouped train and val
    images of the fold's groups, ``val`` for those of :data:`VAL_SHARE` of the other groups, ``train`` for
    every other train or val image (ungrouped ones included) and :data:`SET_ASIDE` for the rest (test)."""
    if folds < 2 or not 0 <= fold < folds:
        raise ValueError(f"cross-validation needs at least 2 folds and a fold in 0..{folds - 1}, "
                         f"got fold {fold} of {folds}")
    if len(splits) != len(groups):
        raise ValueError(f"{len(splits)} splits but {len(groups)} groups")
    out = []
    for split, group in zip(splits, groups, strict=True):
        if split not in ("train", "val"):
            out.append(SET_ASIDE)
        elif not group:
            out.append("train")
        elif int(stable_fraction(group, seed) * folds) == fold:
            out.append(HELD_OUT)
        else:
            out.append("val" if stable_fraction(group, seed + 1) < VAL_SHARE else "train")
    return out


@dataclass
class OutOfFold:
    """One scored image and kind: its values, the three most probable predictions with their
    probabilities, and the fold that scored it."""

    row: int
    kind: str
    truth: tuple[str, ...]
    top3: tuple[str, ...]
    confidence: tuple[float, ...]
    fold: int

    @property
    def correct(self) -> bool:
        return self.top3[0] in self.truth


@dataclass
class CrossValidation:
    folds: list[list[KindAccuracy]]  # per fold, per kind: accuracy on the fold's held-out images
    predictions: list[OutOfFold]  # every scored image and kind, in row order within each fold
    held_out: int  # images scored (each once)
    seconds: float
    config: dict = field(default_factory=dict)

    def pooled(self) -> list[KindAccuracy]:
        """Per kind the counts summed over folds (each image scored once)."""
        by_kind: dict[str, KindAccuracy] = {}
        for rows in self.folds:
            for a in rows:
                p = by_kind.get(a.kind)
                if p is None:
                    by_kind[a.kind] = KindAccuracy(a.kind, a.mode, a.classes, a.images, a.correct, a.majority,
                                                   a.correct_top3, a.family)
                    continue
                p.classes = max(p.classes, a.classes)
                p.images += a.images
                p.correct += a.correct
                p.majority += a.majority
                p.correct_top3 += a.correct_top3
                if p.family is not None and a.family is not None:
                    p.family += a.family
        return list(by_kind.values())

    def fold_spread(self, kind: str) -> tuple[float, float]:
        """(mean, standard error) of ``kind``'s top-1 accuracy over the folds."""
        acc = [a.accuracy for rows in self.folds for a in rows if a.kind == kind and a.images]
        if not acc:
            return 0.0, 0.0
        return float(np.mean(acc)), float(np.std(acc, ddof=1) / np.sqrt(len(acc))) if len(acc) > 1 else 0.0


def cross_validate_attributes(
    features: np.ndarray,
    splits: Sequence[str],
    groups: Sequence[str],
    labels: Sequence[Labels],
    config: AttributeConfig,
    folds: int = 5,
    inputs: Sequence[tuple[str, int]] | None = None,
    families: Mapping[str, Family] | None = None,
    on_fold: Callable[[int, int], None] | None = None,
) -> CrossValidation:
    """Fit and score the predictor ``config`` describes on each fold of :func:`fold_splits`."""
    clock = time.perf_counter()
    features = np.asarray(features, dtype=np.float32)
    valid = _valid_rows(features)
    per_fold: list[list[KindAccuracy]] = []
    predictions: list[OutOfFold] = []
    held_out = 0
    for fold in range(folds):
        split = fold_splits(splits, groups, folds, fold, config.seed)
        rows = _split_rows(split, valid, HELD_OUT)
        if not len(rows):
            raise ValueError(f"fold {fold + 1} of {folds} holds no grouped train or val image with features: "
                             "use fewer folds, or load a catalog whose products form groups")
        model = fit_attributes(features, split, labels, config, inputs=inputs)
        per_fold.append(evaluate_attributes(model, features, split, labels, HELD_OUT, families))
        probs = model.probabilities(features[rows])
        for kv in model.vocab:
            block = probs[:, kv.offset:kv.stop]
            order = np.argsort(-block, axis=1, kind="stable")[:, :3]
            for r, i in enumerate(rows):
                truth = tuple(sorted(labels[i].get(kv.kind, ())))
                if truth:
                    predictions.append(OutOfFold(int(i), kv.kind, truth, tuple(kv.values[j] for j in order[r]),
                                                 tuple(float(block[r, j]) for j in order[r]), fold))
        held_out += len(rows)
        if on_fold is not None:
            on_fold(fold + 1, folds)
    return CrossValidation(per_fold, predictions, held_out, time.perf_counter() - clock,
                           {**asdict(config), "folds": folds, "val_share": VAL_SHARE})
