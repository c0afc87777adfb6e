"""engine.attributes: the predictor's data from a real graph, its training report, and predicted edges
written back (the steps of `tailor attributes train | predict`)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.attributes import AttributeData, input_features, predict_attributes, train_attributes
from engine.errors import DataError
from gnn.attributes.predictor import AttributeConfig


def _data(n: int = 240, seed: int = 0) -> AttributeData:
    """Two kinds whose values the features separate, CNN part then a 'pixel' part (the input groups)."""
    rng = np.random.default_rng(seed)
    colours, types = ["red", "blue", "green"], ["shirt", "dress"]
    labels, names, rows = [], [], []
    for i in range(n):
        c, t = colours[i % 3], types[(i // 3) % 2]
        labels.append({"colour": {c}, "article_type": {t}})
        names.append({c, t})
        cnn = np.zeros(8, np.float32)
        cnn[types.index(t)] = 1.0
        pixel = np.zeros(6, np.float32)
        pixel[colours.index(c)] = 1.0
        rows.append(np.concatenate([cnn, pixel]) + 0.05 * rng.standard_normal(14).astype(np.float32))
    splits = ["train" if i % 10 < 7 else "val" if i % 10 == 7 else "test" for i in range(n)]
    return AttributeData([f"p{i}" for i in range(n)], splits, np.stack(rows), labels, names,
                         [("cnn", 8), ("pixel-colour", 6)])


def test_the_input_is_the_cnn_part_alone_or_both() -> None:
    data = _data()
    cnn, parts = input_features(data, pixel_colour=False)
    assert cnn.shape[1] == 8 and parts == [("cnn", 8)]
    both, parts = input_features(data, pixel_colour=True)
    assert both.shape[1] == 14 and [w for _, w in parts] == [8, 6]


def test_training_saves_the_model_and_reports_both_predictors(tmp_path) -> None:
    data = _data()
    config = AttributeConfig(epochs=200, seed=0)
    from experiments.attributes import attribute_report

    model, runs = train_attributes(data, config, tmp_path / "attributes.pt", compare=True)
    assert (tmp_path / "attributes.pt").exists() and [n for n, _, _ in runs][-1] == "this predictor"
    report = attribute_report(runs, data.splits, data.labels, data.names, (0.5,))
    rows = {r.kind: r for r in report.accuracy_rows("this predictor")}
    assert rows["colour"].accuracy > 0.9 and rows["article_type"].accuracy > 0.9
    assert {r.kind for r in report.accuracy_rows("CNN only, uncalibrated")} == {"colour", "article_type"}
    assert report.accuracy_rows("CNN only, uncalibrated")[0].accuracy is not None


def test_a_workspace_with_other_features_is_refused_before_anything_is_written(tmp_path) -> None:
    data = _data()
    model, _ = train_attributes(data, AttributeConfig(epochs=5, hidden=0), tmp_path / "a.pt")
    other = AttributeData(data.ids, data.splits, data.features[:, :10], data.labels, data.names,
                          [("cnn", 4), ("pixel-colour", 6)])
    with pytest.raises(DataError, match="train it again"):
        predict_attributes(None, other, model, 0.5, 3, 0, 100)  # no driver needed: refused first
