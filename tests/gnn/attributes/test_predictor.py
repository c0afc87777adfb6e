"""gnn.attributes.predictor on synthetic features: it learns, it trains on train-split images only, it is seeded and
saved faithfully, and its threshold table is monotone. No Neo4j, no encoders: features are class
centroids plus noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gnn.attributes.predictor import (
    AttributeConfig,
    AttributePredictor,
    build_vocabulary,
    catalog_labels,
    evaluate_attributes,
    fit_attributes,
    labels_by_kind,
    merge_by_name,
    threshold_table,
)

KINDS = {
    "colour": ["black", "blue", "red", "white"],
    "article_type": ["dress", "jeans", "shirt", "skirt", "top"],
    "gender": ["men", "women"],
}
FAST = dict(hidden=32, epochs=40, patience=5, batch_size=64)


def synthetic(n: int = 600, dim: int = 48, noise: float = 0.35, seed: int = 0):
    """Each image: one value per kind; features = sum of the values' centroids + noise, L2-normalised."""
    rng = np.random.default_rng(seed)
    centroids = {(k, v): rng.normal(size=dim) for k, values in KINDS.items() for v in values}
    labels, feats = [], []
    for _ in range(n):
        lab = {k: {values[rng.integers(len(values))]} for k, values in KINDS.items()}
        x = sum(centroids[(k, next(iter(v)))] for k, v in lab.items()) + noise * rng.normal(size=dim) * 3
        labels.append(lab)
        feats.append(x / np.linalg.norm(x))
    splits = ["train"] * int(0.6 * n) + ["val"] * int(0.2 * n)
    splits += ["test"] * (n - len(splits))
    return np.asarray(feats, dtype=np.float32), splits, labels


def state(model: AttributePredictor) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def same_weights(a: AttributePredictor, b: AttributePredictor) -> bool:
    sa, sb = state(a), state(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def untimed(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in h.items() if k != "seconds"} for h in history]


def accuracy(model, feats, splits, labels, split="test") -> dict[str, float]:
    return {r.kind: r.accuracy for r in evaluate_attributes(model, feats, splits, labels, split)}


@pytest.fixture(scope="module")
def data():
    return synthetic()


@pytest.fixture(scope="module")
def model(data) -> AttributePredictor:
    feats, splits, labels = data
    return fit_attributes(feats, splits, labels, AttributeConfig(**FAST))


def test_learns_a_separable_problem(data, model) -> None:
    feats, splits, labels = data
    acc = accuracy(model, feats, splits, labels)
    assert set(acc) == set(KINDS)
    assert all(a >= 0.95 for a in acc.values()), acc
    assert all(kv.mode == "softmax" for kv in model.vocab)  # one value per image: softmax heads
    for r in evaluate_attributes(model, feats, splits, labels):
        assert r.images == splits.count("test")
        assert r.accuracy > r.majority_accuracy  # beats "always the most common value"


def test_linear_heads_learn_too(data) -> None:
    feats, splits, labels = data
    linear = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "hidden": 0}))
    assert min(accuracy(linear, feats, splits, labels).values()) >= 0.9


def test_test_labels_never_influence_training(data, model) -> None:
    """Contradictory labels on test images (and a value only they have): the same weights and vocabulary."""
    feats, splits, labels = data
    lying = [
        lab
        if s != "test"
        else {
            "colour": {"green"},
            "article_type": {"jeans" if "dress" in lab["article_type"] else "dress"},
            "gender": {"men"},
        }
        for lab, s in zip(labels, splits, strict=True)
    ]
    other = fit_attributes(feats, splits, lying, AttributeConfig(**FAST))
    assert same_weights(model, other)
    assert other.unit_labels() == model.unit_labels()  # "green" (test-only) got no output unit
    assert untimed(other.meta["history"]) == untimed(model.meta["history"])
    # Measured against the true labels, the accuracy is the same; against the lies, it collapses.
    assert accuracy(other, feats, splits, labels) == accuracy(model, feats, splits, labels)
    assert accuracy(other, feats, splits, lying)["colour"] == 0.0


def test_val_labels_only_choose_the_stopping_epoch(data) -> None:
    feats, splits, labels = data
    shuffled = [
        lab if s != "val" else {"colour": {"white"}, "article_type": {"top"}, "gender": {"women"}}
        for lab, s in zip(labels, splits, strict=True)
    ]
    fixed = AttributeConfig(**{**FAST, "patience": None, "epochs": 8, "refit": False})  # no early stopping
    a = fit_attributes(feats, splits, labels, fixed)
    b = fit_attributes(feats, splits, shuffled, fixed)
    assert same_weights(a, b)  # no gradient ever saw a val label
    assert a.meta["best_epoch"] == b.meta["best_epoch"] == 8


def test_refit_trains_on_val_for_the_epochs_and_with_the_temperatures_val_chose(data) -> None:
    """``refit``: val chooses each kind's epoch and temperature, then the predictor trains again on train
    and val for those epochs; a value only val images have gets an output unit, test labels still never
    count, and cross-fitting predicts the val images with fold models that never trained on them."""
    from gnn.attributes.predictor import cross_fitted_predictions

    feats, splits, labels = data
    labels = [dict(lab) for lab in labels]
    first_val = splits.index("val")
    labels[first_val] = {**labels[first_val], "colour": {"mauve"}}
    once = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "refit": False}))
    refit = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "refit": True}))
    assert refit.meta["refit"]["val"] == splits.count("val") and refit.meta["data"]["train"] == splits.count(
        "train") + splits.count("val")
    assert refit.kind_epochs == once.kind_epochs and refit.meta["best_epoch"] == once.meta["best_epoch"]
    assert refit.temperatures == once.temperatures and set(refit.temperatures) == set(KINDS)
    assert untimed(refit.meta["history"]) == untimed(once.meta["history"])  # the epochs val chose from
    assert len(refit.meta["refit"]["history"]) == max(refit.kind_epochs.values())  # fixed epochs, no patience
    assert "mauve" in {name for _, name in refit.unit_labels()} and refit.version != once.version
    assert accuracy(refit, feats, splits, labels)["colour"] > 0.8
    lying = [lab if s != "test" else {"colour": {"green"}} for lab, s in zip(labels, splits, strict=True)]
    assert same_weights(refit, fit_attributes(feats, splits, lying, AttributeConfig(**{**FAST, "refit": True})))
    plain = refit.predict(feats, min_confidence=0.0)
    cross = cross_fitted_predictions(feats, splits, labels, refit, folds=3, min_confidence=0.0)
    val = [i for i, s in enumerate(splits) if s == "val"]
    assert all(cross[i] == plain[i] for i, s in enumerate(splits) if s == "test")
    assert sum(cross[i] != plain[i] for i in val) > len(val) // 2


def test_vocabulary_comes_from_train_images_only() -> None:
    feats, splits, labels = synthetic(n=200)
    labels = [dict(lab) for lab in labels]
    first_val = splits.index("val")
    labels[first_val] = {**labels[first_val], "colour": {"mauve"}}
    m = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "epochs": 2, "refit": False}))
    assert "mauve" not in {name for _, name in m.unit_labels()}


def test_seeded(data) -> None:
    feats, splits, labels = data
    config = AttributeConfig(**{**FAST, "epochs": 5, "seed": 3})
    a = fit_attributes(feats, splits, labels, config)
    b = fit_attributes(feats, splits, labels, config)
    assert same_weights(a, b)
    c = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "epochs": 5, "seed": 4}))
    assert not same_weights(a, c)


def test_early_stopping_restores_the_best_epoch(data, model) -> None:
    history = model.meta["history"]
    best = model.meta["best_epoch"]
    assert 1 <= best <= len(history)
    assert history[best - 1]["val_loss"] == min(h["val_loss"] for h in history)
    assert len(history) < FAST["epochs"] or best == len(history) or len(history) - best < FAST["patience"] + 1


def test_predict_format_and_softmax_semantics(data, model) -> None:
    feats, splits, labels = data
    preds = model.predict(feats[:20], min_confidence=0.0)
    for image in preds:
        assert len(image) == model.units
        assert [p.confidence for p in image] == sorted((p.confidence for p in image), reverse=True)
        for kind in KINDS:  # softmax: a kind's confidences sum to one
            assert sum(p.confidence for p in image if p.kind == kind) == pytest.approx(1.0, abs=1e-4)
        top = {}
        for p in image:
            top.setdefault(p.kind, p)
        assert all(isinstance(p.name, str) and p.name in KINDS[p.kind] for p in top.values())
    default = model.predict(feats[:20])
    assert all(p.confidence >= 0.05 for image in default for p in image)


def test_thresholds_are_monotone(data, model) -> None:
    feats, splits, labels = data
    test = [i for i, s in enumerate(splits) if s == "test"]
    preds = model.predict(feats[test], min_confidence=0.01)
    truth = [set().union(*labels[i].values()) for i in test]
    thresholds = (0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
    rows = threshold_table(preds, thresholds, truth)
    edges = [r.edges for r in rows]
    assert edges == sorted(edges, reverse=True) and edges[0] > edges[-1]
    assert [r.images for r in rows] == sorted((r.images for r in rows), reverse=True)
    recalls = [r.recall for r in rows]
    assert recalls == sorted(recalls, reverse=True)
    at_half = rows[thresholds.index(0.5)]
    assert at_half.edges <= len(KINDS) * len(test)  # softmax: at most one value per kind above 0.5
    assert at_half.precision > 0.9


def test_save_and_load(tmp_path: Path, data, model) -> None:
    feats, _, _ = data
    path = tmp_path / "ckpt" / "attributes.pt"
    model.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["attributes.pt"]  # no temp file left behind
    loaded = AttributePredictor.load(path)
    assert loaded.unit_labels() == model.unit_labels()
    assert loaded.version == model.version and loaded.version
    assert np.array_equal(loaded.probabilities(feats), model.probabilities(feats))
    assert loaded.predict(feats[:5]) == model.predict(feats[:5])
    assert loaded.temperatures == model.temperatures and set(loaded.temperatures) == set(KINDS)
    assert loaded.inputs == model.inputs == [("features", feats.shape[1])]
    bad = tmp_path / "other.pt"
    torch.save({"format": "something else"}, bad)
    with pytest.raises(ValueError, match="not a tailor attribute classifier"):
        AttributePredictor.load(bad)


def test_images_without_features_are_skipped(data) -> None:
    feats, splits, labels = data
    feats = feats.copy()
    feats[:10] = 0.0  # train images the featuriser could not read
    m = fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "epochs": 3}))
    assert m.meta["data"]["train"] == splits.count("train") - 10
    assert m.predict(feats[:12])[:10] == [[]] * 10


def test_multi_valued_kind_gets_sigmoid() -> None:
    rng = np.random.default_rng(1)
    words = ["floral", "striped", "long sleeves", "v-neck"]
    centroids = {w: rng.normal(size=32) for w in words}
    feats, labels = [], []
    for _ in range(300):
        have = {w for w in words if rng.random() < 0.5} or {words[0]}
        x = sum(centroids[w] for w in have) + 0.3 * rng.normal(size=32)
        feats.append(x / np.linalg.norm(x))
        labels.append({"detail": have, "gender": {"women"}})
    splits = ["train"] * 200 + ["val"] * 50 + ["test"] * 50
    m = fit_attributes(np.asarray(feats, np.float32), splits, labels, AttributeConfig(**FAST))
    assert {kv.kind: kv.mode for kv in m.vocab} == {"detail": "sigmoid", "gender": "softmax"}
    rows = threshold_table(
        m.predict(np.asarray(feats[250:], np.float32)),
        (0.5,),
        [set().union(*lab.values()) for lab in labels[250:]],
    )
    assert rows[0].precision > 0.85 and rows[0].recall > 0.85


def test_vocabulary_modes() -> None:
    labels = [{"colour": {"red"}}, {"colour": {"red", "blue"}}, {"colour": {"blue"}}]
    assert build_vocabulary(labels, AttributeConfig(mode="auto"))[0].mode == "sigmoid"  # 1/3 multi-valued
    assert (
        build_vocabulary(labels, AttributeConfig(mode="auto", single_valued_share=0.6))[0].mode == "softmax"
    )
    assert (
        build_vocabulary(labels, AttributeConfig(mode="sigmoid", single_valued_share=0.0))[0].mode
        == "sigmoid"
    )
    assert build_vocabulary(labels, AttributeConfig(min_count=2))[0].values == ["blue", "red"]
    with pytest.raises(ValueError):
        AttributeConfig(mode="tanh")


def test_names_shared_by_kinds() -> None:
    kinds_of = {"watches": ["article_type", "sub_category"], "black": ["colour"]}
    assert labels_by_kind({"watches", "black", "unknown"}, kinds_of) == {
        "article_type": {"watches"},
        "sub_category": {"watches"},
        "colour": {"black"},
    }
    merged = merge_by_name(
        [("watches", "article_type", 0.6), ("watches", "sub_category", 0.8), ("black", "colour", 0.4)]
    )
    assert merged == {"watches": 0.8, "black": 0.4}
    rows = threshold_table(
        [[("watches", "article_type", 0.6), ("watches", "sub_category", 0.8)]], (0.5, 0.7, 0.9)
    )
    assert [r.edges for r in rows] == [1, 1, 0]  # one edge per name, at its highest confidence


def test_catalog_labels_resolve_names_shared_with_a_coarser_kind() -> None:
    """myntra: "accessories" is a master category (6 values) and, rarely, a sub-category (30 values)."""
    kinds_of = {
        "accessories": ["master_category", "sub_category"],
        "apparel": ["master_category"],
        "watches": ["article_type", "sub_category"],
        "bags": ["sub_category"],
        "topwear": ["sub_category"],
        "shirts": ["article_type"],
        "handbags": ["article_type"],
        "tshirts": ["article_type"],
        "flip flops": ["article_type", "sub_category"],
        "sandal": ["sub_category"],
        # more article types than sub-categories, as in myntra (75 vs 30): the finer kind
        **{t: ["article_type"] for t in ("jeans", "skirts", "kurtas", "heels", "caps")},
    }
    got = catalog_labels(
        [
            {"accessories", "watches"},  # a watch: sub-category watches, not accessories
            {"accessories", "bags", "handbags"},
            {"accessories"},  # sub-category really is "accessories": nothing else to take it from
            {"apparel", "topwear", "shirts"},
            {"flip flops", "sandal"},  # flip flops is an article type, a finer kind: stays ambiguous
        ],
        kinds_of,
    )
    assert got[0] == {
        "master_category": {"accessories"},
        "sub_category": {"watches"},
        "article_type": {"watches"},
    }
    assert got[1]["sub_category"] == {"bags"} and got[1]["master_category"] == {"accessories"}
    assert got[2] == {"master_category": {"accessories"}, "sub_category": {"accessories"}}
    assert got[3] == {"master_category": {"apparel"}, "sub_category": {"topwear"}, "article_type": {"shirts"}}
    assert got[4]["sub_category"] == {"flip flops", "sandal"}


def test_rejects_bad_input(data) -> None:
    feats, splits, labels = data
    with pytest.raises(ValueError, match="label sets"):
        fit_attributes(feats, splits, labels[:-1])
    with pytest.raises(ValueError, match="no train-split images"):
        fit_attributes(feats, ["test"] * len(splits), labels)
    with pytest.raises(ValueError, match="add up"):
        fit_attributes(feats, splits, labels, AttributeConfig(**{**FAST, "epochs": 1}), inputs=[("cnn", 3)])


def test_cross_fitted_training_predictions_are_as_noisy_as_test_predictions() -> None:
    """A classifier that memorises its training images predicts them far better than test images; the
    cross-fitted predictions of those images come from classifiers that never saw them."""
    from gnn.attributes.predictor import cross_fitted_predictions

    feats, splits, labels = synthetic(n=600, noise=1.2)
    full = fit_attributes(feats, splits, labels, AttributeConfig(hidden=64, epochs=60, patience=None, batch_size=64,
                                                                 refit=False))
    plain = full.predict(feats, min_confidence=0.0)
    cross = cross_fitted_predictions(feats, splits, labels, full, folds=3, min_confidence=0.0)

    def colour_accuracy(preds, split: str) -> float:
        rows = [i for i, s in enumerate(splits) if s == split]
        return float(np.mean([next(p.name for p in preds[i] if p.kind == "colour") in labels[i]["colour"]
                              for i in rows]))

    memorised, held_out, test = colour_accuracy(plain, "train"), colour_accuracy(cross, "train"), colour_accuracy(
        plain, "test")
    assert memorised > test + 0.15  # the overfit the cross-fitting is for
    assert abs(held_out - test) < 0.12 and held_out < memorised - 0.1
    assert all(cross[i] == plain[i] for i, s in enumerate(splits) if s != "train")  # others: the full model
    with pytest.raises(ValueError, match="folds"):
        cross_fitted_predictions(feats, splits, labels, full, folds=1)


def test_temperatures_calibrate_an_overconfident_classifier_on_val_images() -> None:
    """Trained far past its best epoch on noisy data, the raw confidences are too high; the temperatures
    (fitted on val, never on test) bring the test images' confidences near their accuracy, and leave every
    top-1 prediction as it was."""
    from gnn.attributes.predictor import reliability

    feats, splits, labels = synthetic(n=900, noise=1.4, seed=2)
    config = AttributeConfig(hidden=64, epochs=80, patience=None, batch_size=64, dropout=0.0, refit=False)
    model = fit_attributes(feats, splits, labels, config)
    raw_model = fit_attributes(feats, splits, labels, AttributeConfig(**{**config.__dict__, "calibrate": False}))
    assert same_weights(model, raw_model)  # calibration changes no weight
    assert all(t == 1.0 for t in raw_model.temperatures.values())
    assert model.temperatures["colour"] > 1.2  # softened
    raw = reliability(model, feats, splits, labels, "colour", calibrated=False)
    calibrated = reliability(model, feats, splits, labels, "colour")
    assert raw.images == calibrated.images == splits.count("test")
    assert calibrated.expected_calibration_error < 0.6 * raw.expected_calibration_error
    p_raw = model.probabilities(feats, calibrated=False)
    p_cal = model.probabilities(feats)
    for kv in model.vocab:
        block = slice(kv.offset, kv.stop)
        assert (p_raw[:, block].argmax(1) == p_cal[:, block].argmax(1)).all()
    # the temperatures come from val labels alone
    shuffled = [lab if s != "val" else {**lab, "colour": {"white"}} for lab, s in zip(labels, splits, strict=True)]
    other = fit_attributes(feats, splits, shuffled, config)
    assert same_weights(model, other) and other.temperatures["colour"] != model.temperatures["colour"]
    with pytest.raises(ValueError, match="no kind"):
        reliability(model, feats, splits, labels, "pattern")


def test_top_k_keeps_each_kinds_most_probable_values(data, model) -> None:
    feats, _, _ = data
    probs = model.probabilities(feats[:20])
    for row, preds in zip(probs, model.predict(feats[:20], min_confidence=0.0, top_k=2), strict=True):
        assert len(preds) == 2 * len(model.vocab)
        for kv in model.vocab:
            mine = [p for p in preds if p.kind == kv.kind]
            best = np.argsort(-row[kv.offset : kv.stop])[:2]
            assert {p.name for p in mine} == {kv.values[j] for j in best}
        confidences = [p.confidence for p in preds]
        assert confidences == sorted(confidences, reverse=True)
    floor = model.predict(feats[:20], min_confidence=0.3, top_k=3)
    assert all(p.confidence >= 0.3 for preds in floor for p in preds)
    with pytest.raises(ValueError, match="top_k"):
        model.predict(feats[:2], top_k=0)


def test_top3_and_family_accuracy(data, model) -> None:
    feats, splits, labels = data
    families = {"colour": lambda c: "dark" if c in ("black", "blue") else "light"}
    for r in evaluate_attributes(model, feats, splits, labels, families=families):
        assert r.accuracy <= r.top3_accuracy <= 1.0
        if r.kind == "colour":
            assert r.family_accuracy is not None and r.family_accuracy >= r.accuracy
        else:
            assert r.family_accuracy is None


def test_a_classifier_saved_before_pixel_colour_loads_as_cnn_only(tmp_path: Path, data, model) -> None:
    path = tmp_path / "old.pt"
    model.save(path)
    blob = torch.load(path, weights_only=True)
    for name in ("pixel_colour", "calibrate"):
        del blob["config"][name]
    blob["meta"].pop("temperatures")
    for key in ("groups", "epoch_state_dicts"):
        blob.pop(key)
    blob["meta"].pop("kind_epochs")
    # the network's parameters as they were named before input groups
    blob["state_dict"] = {k.removeprefix("groups.0."): v for k, v in blob["state_dict"].items()
                          if k != "groups.0.units"}
    torch.save(blob, path)
    old = AttributePredictor.load(path)
    assert old.config.pixel_colour is False and old.config.calibrate is False
    assert old.temperatures == {}
    feats, _, _ = data
    expected = model.net(torch.from_numpy(feats[:5])).detach()  # the main network, every kind
    np.testing.assert_allclose(old.logits(torch.from_numpy(feats[:5])).numpy(), expected.numpy(), atol=1e-6)


def test_each_kind_stops_at_its_own_best_epoch() -> None:
    """Colour is learnt from noisy features (it overfits early), the rest from clean ones: each kind's
    outputs come from the epoch of its own lowest val loss, saved and loaded as such, and cross-fitting
    folds train to the same epochs."""
    from gnn.attributes.predictor import cross_fitted_predictions

    feats, splits, labels = synthetic(n=600, noise=0.9, seed=5)
    config = AttributeConfig(hidden=64, epochs=60, patience=8, batch_size=64, dropout=0.0, refit=False)
    model = fit_attributes(feats, splits, labels, config)
    history = model.meta["history"]
    for kind, epoch in model.kind_epochs.items():
        losses = [h["val_loss_by_kind"][kind] for h in history]
        assert epoch == 1 + int(np.argmin(losses)), kind
    assert len(set(model.kind_epochs.values())) > 1  # the kinds did stop at different epochs
    assert set(model.kind_nets) == {k for k, e in model.kind_epochs.items() if e != model.meta["best_epoch"]}
    one = fit_attributes(feats, splits, labels, AttributeConfig(**{**config.__dict__, "per_kind_stopping": False}))
    assert set(one.kind_epochs.values()) == {one.meta["best_epoch"]} and not one.kind_nets
    with_kinds, without = model.probabilities(feats), one.probabilities(feats)
    assert not np.allclose(with_kinds, without)
    fixed = fit_attributes(feats, splits, labels, config, schedule=(model.meta["best_epoch"], model.kind_epochs))
    assert fixed.kind_epochs == model.kind_epochs and same_weights(fixed, model)  # same seed, same epochs
    assert len(fixed.meta["history"]) == max(model.kind_epochs.values())
    cross = cross_fitted_predictions(feats, splits, labels, model, folds=2, min_confidence=0.0)
    assert len(cross) == len(feats) and all(cross[i] for i in range(len(feats)))


def test_pixel_colour_features_feed_only_the_colour_kind() -> None:
    """Inputs in two parts (CNN, pixel colour): the colour kind reads both, every other kind the CNN part
    alone, so noise in the pixel part moves colour and nothing else."""
    feats, splits, labels = synthetic(n=400)
    rng = np.random.default_rng(1)
    extra = rng.normal(size=(len(feats), 6)).astype(np.float32)
    both = np.concatenate([feats, extra], axis=1)
    config = AttributeConfig(**{**FAST, "epochs": 6})
    model = fit_attributes(both, splits, labels, config, inputs=[("cnn", feats.shape[1]), ("pixels", 6)])
    assert model.inputs == [("cnn", feats.shape[1]), ("pixels", 6)]
    assert [(g.columns, len(g.units), g.members) for g in model.net.layout()] == [
        ((0, both.shape[1]), len(KINDS["colour"]), 1),
        ((0, feats.shape[1]), len(KINDS["article_type"]) + len(KINDS["gender"]), 1)]
    moved = both.copy()
    moved[:, -6:] += 5.0
    delta = np.abs(model.probabilities(moved) - model.probabilities(both))
    for kv in model.vocab:
        changed = delta[:, kv.offset : kv.stop].max()
        assert (changed > 1e-3) if kv.kind == "colour" else (changed == 0.0), kv.kind
    single = fit_attributes(both, splits, labels, AttributeConfig(**{**FAST, "epochs": 6, "pixel_colour": False}),
                            inputs=[("cnn", feats.shape[1]), ("pixels", 6)])
    assert len(single.net.layout()) == 1


def two_part_inputs(n: int = 400):
    """The synthetic features as the CNN part, followed by a noisy 'pixel colour' part."""
    feats, splits, labels = synthetic(n=n)
    extra = np.random.default_rng(1).normal(size=(len(feats), 6)).astype(np.float32)
    return np.concatenate([feats, extra], axis=1), splits, labels, [("cnn", feats.shape[1]), ("pixels", 6)]


def test_fixed_epochs_stop_training_a_group_after_its_kinds_last_epoch() -> None:
    """Cross-fitting's fixed epochs: once colour's epoch has passed, the pixel-colour group is not trained
    further (its weights in the last epoch's network are those of colour's epoch), while the other kinds'
    group trains on to theirs."""
    both, splits, labels, inputs = two_part_inputs()
    config = AttributeConfig(**{**FAST, "epochs": 8})
    epochs = {"colour": 2, "article_type": 6, "gender": 5}
    model = fit_attributes(both, splits, labels, config, inputs=inputs, schedule=(6, epochs))
    assert len(model.meta["history"]) == 6 and model.kind_epochs == epochs
    last, at_colour = model.net.groups[0].state_dict(), model.kind_nets["colour"].groups[0].state_dict()
    assert all(torch.equal(last[k], at_colour[k]) for k in last)
    gender_net = model.kind_nets["gender"].groups[1].state_dict()
    assert not all(torch.equal(model.net.groups[1].state_dict()[k], gender_net[k]) for k in gender_net)


def test_an_ensemble_averages_its_members_each_trained_on_its_own_loss(tmp_path: Path) -> None:
    """``ensemble`` = 3: the pixel-colour group holds three networks with their own initialisations, its
    logits are their mean (not a wider network's), the CNN group stays one network, cross-fitting and
    saving keep the members, and the ensemble learns as well as one network does."""
    both, splits, labels, inputs = two_part_inputs()
    config = AttributeConfig(**{**FAST, "epochs": 8, "ensemble": 3})
    model = fit_attributes(both, splits, labels, config, inputs=inputs)
    colour_group, cnn_group = model.net.groups
    assert (colour_group.members, cnn_group.members) == (3, 1)
    x = torch.from_numpy(both[:50])
    with torch.no_grad():
        members = colour_group.member_logits(x)
        assert members.shape == (3, 50, len(KINDS["colour"]))
        assert torch.allclose(colour_group(x), members.mean(dim=0))
        assert not torch.allclose(members[0], members[1], atol=1e-3)  # different networks, not copies
    single = fit_attributes(both, splits, labels, AttributeConfig(**{**FAST, "epochs": 8}), inputs=inputs)
    got, alone = accuracy(model, both, splits, labels), accuracy(single, both, splits, labels)
    assert got["colour"] >= alone["colour"] - 0.05 and got["colour"] > 0.8
    path = tmp_path / "ensemble.pt"
    model.save(path)
    loaded = AttributePredictor.load(path)
    assert [g.members for g in loaded.net.groups] == [3, 1]
    assert np.array_equal(loaded.probabilities(both), model.probabilities(both))
    with pytest.raises(ValueError, match="at least 1"):
        AttributeConfig(ensemble=0)
