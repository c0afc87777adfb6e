"""Attributes predicted from images (paper appendix A.5, Table 5): a classifier over image features.

Input: image features (EfficientNet-Lite0, 1280-d, L2-normalised, from the feature cache), the split of
each image and its catalog attributes grouped by kind (colour, article_type, gender, ...). Output: per
image a list of ``(attribute name, kind, confidence)``, which ``graphdb.predicted`` writes back as
``HAS_ATTRIBUTE {source: 'predicted'}`` edges above a threshold.

Choices, and why:

- **Softmax per single-valued kind, sigmoid per multi-valued kind** (``mode="auto"``). In the myntra
  catalog every image has exactly one colour, one article type, one gender, ...: the values of a kind
  exclude each other, and a softmax says so (its probabilities sum to one, so at a threshold of 0.5 a kind
  yields at most one edge). A catalog whose kind holds several values per image (FashionIQ-style word
  lists) gets independent sigmoids for that kind instead. ``auto`` decides per kind from the training
  images: softmax when at least ``single_valued_share`` of the images that have the kind have one value.
  The rare image with two values of a softmax kind gets a soft target (half on each).
- **One shared hidden layer, one output slice per kind.** The kinds are strongly correlated (the article
  type fixes the sub- and master category, often the gender), so a shared layer lets them help each
  other; each kind still has its own output units and its own loss. ``hidden=0`` gives linear heads.
- **Trained on train-split images only.** The label vocabulary, the feature standardisation and every
  gradient come from ``split == 'train'`` images; val images only choose the stopping epoch (lowest val
  loss, best weights restored); test images are never looked at: they are what the accuracy is reported on.
- **Values the training images never show get no output unit** (nothing to learn them from); held-out
  images with such a value count as errors in the accuracy, so it is not flattered.
- **Images without features** (a zero row: the featuriser could not read the file) are neither trained on
  nor evaluated; :meth:`AttributePredictor.predict` gives them no predictions.
- An attribute name may belong to several kinds (myntra: "watches" is an article type and a sub-category):
  each kind predicts it on its own; a written edge takes the highest confidence (see :func:`merge_by_name`).
  Where that makes an image look as if it had two values of one kind, :func:`catalog_labels` resolves it.

- **Pixel colour fused with the CNN** (``pixel_colour``): pooled EfficientNet-Lite0 features keep little of
  a garment's colour (52% top-1 on held-out colours), so the input is the CNN features followed by the
  garment's pixel colour features (:mod:`gnn.attributes.colour`); one standardisation covers both. The
  caller builds that input (``meta["inputs"]`` names its parts); ``pixel_colour=False`` is the CNN-only
  predictor, kept for comparison.
- **Calibrated confidences** (``calibrate``): a network trained to a low training loss is over-confident on
  new images. One temperature per kind divides its logits, fitted on the val images (never trained on) by
  their log-loss (Guo et al. 2017, temperature scaling); the top-1 prediction does not change, its
  confidence becomes a probability one can weigh an edge by (:func:`reliability` measures it).
- **Optional, off by default** (measured in :mod:`gnn.config`): ``refit`` trains again on train and val
  for the epochs val chose, keeping val's temperatures; ``ensemble`` averages several networks for the
  kinds pixel colour feeds, each trained on its own loss on the same batches.
- **Several predictions per kind** (``predict(top_k=...)``): the graph gets each kind's ``top_k`` values
  with their confidence as edge weights, so a colour the network is unsure between two values of is linked
  to both, each by its probability, instead of one thresholded guess.

Saved atomically (temp file + rename, like ``gnn.checkpoint``) with its config, weights, label vocabulary,
temperatures and training history, so a saved predictor reproduces its predictions.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gnn.checkpoint import atomic_save, fingerprint
from gnn.config import PREDICTED_EDGE_THRESHOLDS as DEFAULT_THRESHOLDS
from gnn.config import AttributeConfig

FORMAT = "tailor.attributes/1"

# Per image: kind -> the attribute names of that kind it has (its catalog labels).
Labels = Mapping[str, Collection[str]]


class Prediction(NamedTuple):
    name: str
    kind: str
    confidence: float


@dataclass
class KindVocab:
    """One kind's output units: ``values[j]`` is unit ``offset + j`` of the logits."""

    kind: str
    mode: str  # softmax | sigmoid
    values: list[str]
    offset: int

    @property
    def stop(self) -> int:
        return self.offset + len(self.values)


@dataclass
class EpochLog:
    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float  # mean over kinds of top-1 accuracy on val images
    seconds: float
    val_loss_by_kind: dict[str, float] = field(default_factory=dict)


@dataclass
class KindAccuracy:
    kind: str
    mode: str
    classes: int  # output units of the kind
    images: int  # evaluated images that have the kind
    correct: int  # top-1 prediction among the image's values
    majority: int  # correct answers of "always the most common training value"
    correct_top3: int = 0  # one of the three most probable values among the image's values
    family: int | None = None  # top-1 in the family of one of the image's values (kinds with families)

    @property
    def accuracy(self) -> float:
        return self.correct / self.images if self.images else 0.0

    @property
    def majority_accuracy(self) -> float:
        return self.majority / self.images if self.images else 0.0

    @property
    def top3_accuracy(self) -> float:
        return self.correct_top3 / self.images if self.images else 0.0

    @property
    def family_accuracy(self) -> float | None:
        return None if self.family is None else (self.family / self.images if self.images else 0.0)


@dataclass
class ReliabilityBin:
    """Top-1 predictions whose confidence fell in ``[low, high)``: how sure they were and how often right."""

    low: float
    high: float
    count: int
    confidence: float  # mean top-1 confidence in the bin
    accuracy: float  # share of the bin's top-1 predictions that were right


@dataclass
class Reliability:
    kind: str
    calibrated: bool
    bins: list[ReliabilityBin]

    @property
    def images(self) -> int:
        return sum(b.count for b in self.bins)

    @property
    def expected_calibration_error(self) -> float:
        """Mean |accuracy - confidence| over bins, weighted by their share of the images (ECE)."""
        n = self.images
        return sum(b.count * abs(b.accuracy - b.confidence) for b in self.bins) / n if n else 0.0


@dataclass
class ThresholdRow:
    threshold: float
    edges: int  # distinct (image, attribute name) pairs at or above the threshold
    images: int  # images with at least one such edge
    per_image: float  # edges / images considered
    precision: float | None = None  # share of edges that are catalog attributes (when truth is given)
    recall: float | None = None  # share of catalog attributes (with an output unit) that became edges


# --- labels ----------------------------------------------------------------------------------------


def labels_by_kind(names: Iterable[str], kinds_of: Mapping[str, Sequence[str]]) -> dict[str, set[str]]:
    """An image's attribute names -> kind -> names, a name counting for every kind it belongs to."""
    out: dict[str, set[str]] = {}
    for name in names:
        for kind in kinds_of.get(name, ()):
            out.setdefault(kind, set()).add(name)
    return out


def catalog_labels(
    image_names: Iterable[Iterable[str]], kinds_of: Mapping[str, Sequence[str]]
) -> list[dict[str, set[str]]]:
    """Per image, kind -> catalog values, with names shared by kinds resolved where the image says how.

    Attribute nodes are keyed by name, so an edge does not say which kind it was for. In myntra,
    "accessories" is a master category (1,900 images) and, for 30 of them, also the sub-category; every
    other accessory (a watch: master "accessories", sub-category "watches") would read as having two
    sub-categories. Rule: when an image has several values of a kind, a value that is also the image's
    only value of a *coarser* kind (one with fewer values in the vocabulary) is taken to be that coarser
    kind's, and set aside here, unless nothing would be left. Uses only the image's own labels and the
    vocabulary, so held-out images are resolved the same way without looking at anything else.
    """
    size: Counter[str] = Counter(k for kinds in kinds_of.values() for k in set(kinds))
    out = []
    for names in image_names:
        labels = labels_by_kind(names, kinds_of)
        resolved = {}
        for kind, values in labels.items():
            if len(values) > 1:
                coarser = {
                    n
                    for n in values
                    if any(
                        k2 != kind and size[k2] < size[kind] and labels.get(k2) == {n} for k2 in kinds_of[n]
                    )
                }
                if values - coarser:
                    values = values - coarser
            resolved[kind] = values
        out.append(resolved)
    return out


def build_vocabulary(labels: Sequence[Labels], config: AttributeConfig) -> list[KindVocab]:
    """Output units from the (training) labels: kinds and values sorted, so the layout is stable."""
    counts: dict[str, Counter[str]] = {}
    sizes: dict[str, Counter[int]] = {}
    for image in labels:
        for kind, values in image.items():
            if values:
                counts.setdefault(kind, Counter()).update(values)
                sizes.setdefault(kind, Counter())[len(values)] += 1
    vocab, offset = [], 0
    for kind in sorted(counts):
        values = sorted(v for v, c in counts[kind].items() if c >= config.min_count)
        if not values:
            continue
        if config.mode == "auto":
            single = sizes[kind][1] / max(1, sum(sizes[kind].values()))
            mode = "softmax" if single >= config.single_valued_share else "sigmoid"
        else:
            mode = config.mode
        vocab.append(KindVocab(kind, mode, values, offset))
        offset += len(values)
    return vocab


def _targets(labels: Sequence[Labels], vocab: list[KindVocab]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (target [n, units], has_kind [n, kinds]). Softmax targets sum to one over a kind's units
    (a soft target when an image has several values); sigmoid targets are 0/1. Values without a unit are
    dropped; an image whose values of a kind all lack units does not take part in that kind's loss."""
    n = len(labels)
    units = vocab[-1].stop if vocab else 0
    target = torch.zeros(n, units)
    has = torch.zeros(n, len(vocab), dtype=torch.bool)
    index = [{v: kv.offset + j for j, v in enumerate(kv.values)} for kv in vocab]
    for i, image in enumerate(labels):
        for k, kv in enumerate(vocab):
            cols = [index[k][v] for v in image.get(kv.kind, ()) if v in index[k]]
            if cols:
                has[i, k] = True
                target[i, cols] = 1.0 / len(cols) if kv.mode == "softmax" else 1.0
    return target, has


# --- the model -------------------------------------------------------------------------------------


class _Members(nn.Module):
    """``members`` networks of one shape, evaluated together by batched matrix products:
    [n, width] -> [members, n, out]. Each member has its own initialisation and its own dropout masks."""

    def __init__(self, members: int, width: int, hidden: int, out: int, dropout: float) -> None:
        super().__init__()
        dims = [width, hidden, out] if hidden > 0 else [width, out]
        self.dropout = float(dropout)
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(dims, dims[1:], strict=False):
            bound = 1.0 / float(np.sqrt(fan_in))  # nn.Linear's default initialisation, per member
            self.weights.append(nn.Parameter(torch.empty(members, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(members, 1, fan_out).uniform_(-bound, bound)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.expand(len(self.weights[0]), *x.shape)
        if len(self.weights) == 1:
            h = F.dropout(h, self.dropout, self.training)
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < len(self.weights) - 1:
                h = F.dropout(F.relu(h), self.dropout, self.training)
        return h


class _InputGroup(nn.Module):
    """Some kinds' outputs from some columns of the features: standardise, (hidden layer), logits; with
    ``members`` > 1 the logits are the mean of that many networks' (an ensemble)."""

    def __init__(self, columns: tuple[int, int], units: Sequence[int], hidden: int, dropout: float,
                 members: int = 1) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"an input group needs at least one member network, not {members}")
        self.columns = (int(columns[0]), int(columns[1]))
        self.members = int(members)
        width = self.columns[1] - self.columns[0]
        # Standardisation from the training images: L2-normalised 1280-d features have entries around
        # 0.03, too small a scale for Adam's default step to move the first layer at a useful speed.
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.register_buffer("units", torch.as_tensor(list(units), dtype=torch.long))
        if members > 1:
            self.body: nn.Module = _Members(members, width, hidden, len(units), dropout)
        elif hidden > 0:
            self.body = nn.Sequential(
                nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, len(units))
            )
        else:
            self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, len(units)))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """[members, n, units of the group]: each member network's logits."""
        lo, hi = self.columns
        z = self.body((x[:, lo:hi] - self.mean) / self.std)
        return z if self.members > 1 else z[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.member_logits(x).mean(dim=0)


@dataclass(frozen=True)
class InputGroup:
    """What one group of :class:`AttributeNet` is: the feature columns ``[lo, hi)`` it reads, the output
    units it gives and how many member networks it averages."""

    columns: tuple[int, int]
    units: tuple[int, ...]
    members: int = 1

    @classmethod
    def from_saved(cls, saved: Sequence[Any] | Mapping[str, Any]) -> InputGroup:
        """From a classifier file: a dict of these fields, or the [columns, units] pair of a file written
        before groups had members."""
        if isinstance(saved, Mapping):
            return cls((int(saved["columns"][0]), int(saved["columns"][1])),
                       tuple(int(u) for u in saved["units"]), int(saved.get("members", 1)))
        return cls((int(saved[0][0]), int(saved[0][1])), tuple(int(u) for u in saved[1]))


class AttributeNet(nn.Module):
    """Standardised features -> (shared hidden layer) -> one logit per (kind, value).

    By default one group reads every column and gives every unit. With several groups each reads its
    own columns (pixel colour features feed only the kinds they pay for) and gives its own kinds' units,
    with its own hidden layer; the groups train together, on the same batches.
    """

    def __init__(self, in_dim: int, units: int, hidden: int, dropout: float,
                 groups: Sequence[InputGroup] | None = None) -> None:
        super().__init__()
        self.in_dim, self.units = int(in_dim), int(units)
        groups = list(groups) if groups else [InputGroup((0, in_dim), tuple(range(units)))]
        covered = sorted(u for g in groups for u in g.units)
        if covered != list(range(units)) or any(not 0 <= g.columns[0] < g.columns[1] <= in_dim for g in groups):
            raise ValueError(f"input groups must give every one of {units} units once, from columns within "
                             f"0..{in_dim}: {[(g.columns, len(g.units)) for g in groups]}")
        members = [g.members for g in groups]
        if len({m for m in members if m > 1}) > 1:
            raise ValueError(f"the groups' ensembles must have one size (or a single network): {members}")
        self.groups = nn.ModuleList(
            _InputGroup(g.columns, g.units, hidden, dropout, g.members) for g in groups)
        self.specs = groups
        self.members = max(members)
        self._whole = len(groups) == 1 and list(groups[0].units) == list(range(units))

    def layout(self) -> list[InputGroup]:
        return list(self.specs)

    def forward(self, x: torch.Tensor, active: Collection[int] | None = None) -> torch.Tensor:
        """Logits; with ``active`` only those groups' (by index) are computed, the others' units are 0."""
        if self._whole and active is None:
            return self.groups[0](x)
        out = x.new_zeros(len(x), self.units)
        for i, g in enumerate(self.groups):
            if active is None or i in active:
                out = out.index_copy(1, g.units, g(x))
        return out

    def member_logits(self, x: torch.Tensor, active: Collection[int] | None = None) -> torch.Tensor:
        """[members, n, units]: per member network its logits (a group of one network repeats its own), so
        that each member is trained on its own loss rather than the ensemble's mean."""
        if self.members == 1:
            return self.forward(x, active)[None]
        out = x.new_zeros(self.members, len(x), self.units)
        for i, g in enumerate(self.groups):
            if active is None or i in active:
                z = g.member_logits(x)
                out = out.index_copy(2, g.units, z.expand(self.members, *z.shape[1:]))
        return out


def _kind_losses(
    logits: torch.Tensor, target: torch.Tensor, has: torch.Tensor, vocab: list[KindVocab]
) -> list[torch.Tensor | None]:
    """Per kind its mean loss over the images that have the kind (None: no image has it)."""
    losses: list[torch.Tensor | None] = []
    for k, kv in enumerate(vocab):
        rows = has[:, k]
        if not bool(rows.any()):
            losses.append(None)
            continue
        z, t = logits[rows, kv.offset : kv.stop], target[rows, kv.offset : kv.stop]
        if kv.mode == "softmax":
            losses.append(-(t * F.log_softmax(z, dim=1)).sum(dim=1).mean())
        else:
            losses.append(F.binary_cross_entropy_with_logits(z, t, reduction="none").sum(dim=1).mean())
    return losses


def _loss(
    logits: torch.Tensor, target: torch.Tensor, has: torch.Tensor, vocab: list[KindVocab]
) -> torch.Tensor:
    """Mean over kinds of each kind's mean loss over the images that have the kind."""
    losses = [x for x in _kind_losses(logits, target, has, vocab) if x is not None]
    return torch.stack(losses).mean() if losses else logits.sum() * 0.0


def _probabilities(
    logits: torch.Tensor, vocab: list[KindVocab], temperatures: Mapping[str, float] | None = None
) -> torch.Tensor:
    out = torch.empty_like(logits)
    for kv in vocab:
        z = logits[:, kv.offset : kv.stop] / float((temperatures or {}).get(kv.kind, 1.0))
        out[:, kv.offset : kv.stop] = torch.softmax(z, dim=1) if kv.mode == "softmax" else torch.sigmoid(z)
    return out


# Temperatures tried per kind (log-spaced): a 1-d search is exact enough and cannot diverge.
_TEMPERATURES = np.exp(np.linspace(np.log(0.25), np.log(8.0), 121))


def fit_temperatures(
    logits: torch.Tensor, target: torch.Tensor, has: torch.Tensor, vocab: list[KindVocab]
) -> dict[str, float]:
    """Per kind the temperature that minimises the log-loss of ``logits`` (val images) on their targets;
    1.0 for a kind no image has."""
    out = {}
    for k, kv in enumerate(vocab):
        rows = has[:, k]
        if not bool(rows.any()):
            out[kv.kind] = 1.0
            continue
        z, t = logits[rows, kv.offset : kv.stop].double(), target[rows, kv.offset : kv.stop].double()
        losses = []
        for temperature in _TEMPERATURES:
            scaled = z / float(temperature)
            if kv.mode == "softmax":
                loss = -(t * F.log_softmax(scaled, dim=1)).sum(dim=1).mean()
            else:
                loss = F.binary_cross_entropy_with_logits(scaled, t, reduction="none").sum(dim=1).mean()
            losses.append(float(loss))
        out[kv.kind] = float(_TEMPERATURES[int(np.argmin(losses))])
    return out


def _valid_rows(features: np.ndarray) -> np.ndarray:
    """Rows with a feature vector: the featuriser leaves a zero row for an image it could not read."""
    return np.abs(features).sum(axis=1) > 0


@dataclass
class AttributePredictor:
    """A trained attribute classifier with its vocabulary; ``predict`` is all a caller needs."""

    config: AttributeConfig
    vocab: list[KindVocab]
    net: AttributeNet
    meta: dict[str, Any] = field(default_factory=dict)  # history, best epoch, data counts, version
    # Kinds whose outputs come from the weights of another epoch (per-kind early stopping): kind -> net.
    kind_nets: dict[str, AttributeNet] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return str(self.meta.get("version", ""))

    @property
    def kinds(self) -> list[str]:
        return [kv.kind for kv in self.vocab]

    @property
    def units(self) -> int:
        return self.vocab[-1].stop if self.vocab else 0

    def unit_labels(self) -> list[tuple[str, str]]:
        """(kind, name) of every output unit, in order."""
        return [(kv.kind, v) for kv in self.vocab for v in kv.values]

    @property
    def temperatures(self) -> dict[str, float]:
        """Per kind the temperature its logits are divided by (1.0: uncalibrated)."""
        return dict(self.meta.get("temperatures") or {})

    @property
    def inputs(self) -> list[tuple[str, int]]:
        """The parts of the input features, in order: (feature name, width)."""
        return [(str(n), int(d)) for n, d in self.meta.get("inputs") or []]

    @torch.inference_mode()
    def probabilities(self, features: np.ndarray, batch_size: int = 4096, calibrated: bool = True) -> np.ndarray:
        """float32 [n, units]: per (kind, value) unit its probability (softmax within a kind, or sigmoid),
        with the kinds' temperatures unless ``calibrated`` is False."""
        x = np.asarray(features, dtype=np.float32)
        out = np.zeros((len(x), self.units), dtype=np.float32)
        temperatures = self.temperatures if calibrated else None
        for start in range(0, len(x), batch_size):
            out[start : start + batch_size] = _probabilities(
                self.logits(torch.from_numpy(x[start : start + batch_size])), self.vocab, temperatures
            ).numpy()
        return out

    @torch.inference_mode()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """[n, units] logits: each kind's from the network of the epoch it stopped at."""
        self.net.eval()
        out = self.net(x)
        by_net: dict[int, tuple[AttributeNet, list[KindVocab]]] = {}
        for kv in self.vocab:
            other = self.kind_nets.get(kv.kind)
            if other is not None:
                by_net.setdefault(id(other), (other, []))[1].append(kv)
        for other, kinds in by_net.values():
            other.eval()
            theirs = other(x)
            for kv in kinds:
                out[:, kv.offset : kv.stop] = theirs[:, kv.offset : kv.stop]
        return out

    @property
    def kind_epochs(self) -> dict[str, int]:
        """Per kind the epoch whose weights give its outputs."""
        return {kv.kind: int(self.meta.get("kind_epochs", {}).get(kv.kind, self.meta.get("best_epoch", 0)))
                for kv in self.vocab}

    def predict(
        self, features: np.ndarray, min_confidence: float = 0.05, top_k: int | None = None
    ) -> list[list[Prediction]]:
        """Per image, ``(name, kind, confidence)`` for every unit at or above ``min_confidence`` (only each
        kind's ``top_k`` most probable when given), most confident first. Images without features (zero
        rows) get an empty list."""
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        probs = self.probabilities(features)
        labels = self.unit_labels()
        valid = _valid_rows(np.asarray(features))
        keep = np.ones(probs.shape, dtype=bool)
        if top_k is not None:
            keep[:] = False
            for kv in self.vocab:
                block = probs[:, kv.offset : kv.stop]
                k = min(top_k, block.shape[1])
                best = np.argpartition(-block, k - 1, axis=1)[:, :k]
                np.put_along_axis(keep[:, kv.offset : kv.stop], best, True, axis=1)
        out: list[list[Prediction]] = []
        for i, row in enumerate(probs):
            if not valid[i]:
                out.append([])
                continue
            cols = np.flatnonzero((row >= min_confidence) & keep[i])
            cols = cols[np.argsort(-row[cols], kind="stable")]
            out.append([Prediction(labels[c][1], labels[c][0], float(row[c])) for c in cols])
        return out

    # --- persistence -------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        atomic_save(
            {
                "format": FORMAT,
                "config": asdict(self.config),
                "vocab": [asdict(kv) for kv in self.vocab],
                "in_dim": self.net.in_dim,
                "groups": [asdict(g) for g in self.net.layout()],
                "state_dict": _state(self.net),
                # one state per epoch, however many kinds stopped at it
                "epoch_state_dicts": {
                    str(self.kind_epochs[kind]): _state(net) for kind, net in self.kind_nets.items()
                },
                "meta": self.meta,
            },
            Path(path),
        )

    @classmethod
    def load(cls, path: Path) -> AttributePredictor:
        # weights_only: the file holds only tensors and plain containers, so nothing executes on load.
        blob = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise ValueError(f"{path}: not a tailor attribute classifier ({FORMAT})")
        # A classifier saved before pixel colour and calibration existed had neither.
        saved = {**blob["config"]}
        if "pixel_colour_kinds" in saved:
            saved["pixel_colour_kinds"] = tuple(saved["pixel_colour_kinds"])
        config = AttributeConfig(**{"pixel_colour": False, "calibrate": False, "per_kind_stopping": False, **saved})
        vocab = [KindVocab(**kv) for kv in blob["vocab"]]
        units = vocab[-1].stop if vocab else 0
        groups = [InputGroup.from_saved(g) for g in blob.get("groups") or []] or None

        def build(state: dict[str, torch.Tensor]) -> AttributeNet:
            net = AttributeNet(blob["in_dim"], units, config.hidden, config.dropout, groups)
            if "mean" in state:  # saved before input groups: one network, every column, every unit
                state = {f"groups.0.{k}": v for k, v in state.items()}
                state["groups.0.units"] = torch.arange(units)
            net.load_state_dict(state)
            return net.eval()

        by_epoch = {int(e): build(state) for e, state in (blob.get("epoch_state_dicts") or {}).items()}
        kind_epochs = blob["meta"].get("kind_epochs") or {}
        kind_nets = {kind: by_epoch[int(e)] for kind, e in kind_epochs.items() if int(e) in by_epoch}
        return cls(config, vocab, build(blob["state_dict"]), blob["meta"], kind_nets)


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in net.state_dict().items()}


# --- training --------------------------------------------------------------------------------------


def _split_rows(splits: Sequence[str], valid: np.ndarray, name: str) -> np.ndarray:
    return np.asarray([i for i, s in enumerate(splits) if s == name and valid[i]], dtype=np.int64)


def fit_attributes(
    features: np.ndarray,
    splits: Sequence[str],
    labels: Sequence[Labels],
    config: AttributeConfig | None = None,
    on_epoch: Callable[[EpochLog], None] | None = None,
    *,
    threads: int | None = 1,
    inputs: Sequence[tuple[str, int]] | None = None,
    schedule: tuple[int, Mapping[str, int]] | None = None,
) -> AttributePredictor:
    """Train on the ``train``-split rows; stop early on the ``val``-split loss (when there are val rows),
    then fit each kind's temperature on the val rows (``config.calibrate``).

    ``features[i]``, ``splits[i]`` and ``labels[i]`` describe image ``i``. Rows of other splits are never
    read for training (test rows not at all), so their labels cannot change the weights. ``inputs`` names
    the parts of a feature row, (name, width) in order (kept in ``meta["inputs"]``; default: one part).
    ``schedule`` = (epoch, {kind: epoch}) trains for fixed epochs instead of stopping on val: the network
    of the first epoch, each listed kind's outputs from the weights of its epoch (cross-fitting uses the
    full model's).

    ``threads``: torch intra-op threads while training (None: leave torch's setting). One by default: the
    network is small, and on a busy 2-core machine two threads spin-waiting on each other made an epoch
    of myntra-small 10x slower (22 s against 2 s).
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    parts = [(str(n), int(d)) for n, d in inputs] if inputs else [("features", int(np.shape(features)[1]))]
    if sum(d for _, d in parts) != int(np.shape(features)[1]):
        raise ValueError(f"inputs {parts} do not add up to the {np.shape(features)[1]}-d features")
    config = config or AttributeConfig()
    # The first part is the CNN's; the parts after it (pixel colour) feed only the kinds they pay for.
    narrow = (0, parts[0][1]) if config.pixel_colour and len(parts) > 1 else None
    try:
        model = _fit(features, splits, labels, config, on_epoch, schedule, narrow)
        if config.refit and schedule is None and model.meta["data"]["val"]:
            model = _refit(model, features, splits, labels, narrow)
    finally:
        torch.set_num_threads(before)
    model.meta["inputs"] = [list(p) for p in parts]
    return model


def _refit(first: AttributePredictor, features: np.ndarray, splits: Sequence[str], labels: Sequence[Labels],
           narrow: tuple[int, int] | None) -> AttributePredictor:
    """The predictor trained again on the train and val images for the epochs val chose (each kind its own),
    with the temperatures val fitted to ``first``: val has done its two jobs, and its images are worth
    more as training data than as a second look at them."""
    merged = ["train" if s == "val" else s for s in splits]
    model = _fit(features, merged, labels, first.config, None, (int(first.meta["best_epoch"]), first.kind_epochs),
                 narrow)
    model.meta.update({
        "temperatures": {kind: first.temperatures.get(kind, 1.0) for kind in model.kinds},
        # the epochs val chose from stay the history; the refit's own epochs (no val loss) are kept apart
        "history": first.meta["history"],
        "refit": {"train": first.meta["data"]["train"], "val": first.meta["data"]["val"],
                  "history": [{k: v for k, v in h.items() if not k.startswith("val")} for h in model.meta["history"]]},
        "best_val_loss": first.meta["best_val_loss"],
    })
    model.meta["version"] = fingerprint(model.meta["version"], "refit", model.meta["temperatures"])
    return model


def _input_groups(
    vocab: list[KindVocab], in_dim: int, narrow: tuple[int, int] | None, config: AttributeConfig
) -> list[InputGroup] | None:
    """With ``narrow`` (the CNN's columns), kinds outside ``config.pixel_colour_kinds`` read only those; the
    others read every column, as ``config.ensemble`` networks averaged. Without it, one group for all (None
    when that is a single network)."""
    units = vocab[-1].stop if vocab else 0
    if narrow is None:
        return None if config.ensemble == 1 else [InputGroup((0, in_dim), tuple(range(units)), config.ensemble)]
    wide_kinds = set(config.pixel_colour_kinds)
    wide = tuple(u for kv in vocab if kv.kind in wide_kinds for u in range(kv.offset, kv.stop))
    rest = tuple(u for kv in vocab if kv.kind not in wide_kinds for u in range(kv.offset, kv.stop))
    groups = [InputGroup((0, in_dim), wide, config.ensemble),
              InputGroup((int(narrow[0]), int(narrow[1])), rest)]
    return [g for g in groups if g.units]


def _fit(
    features: np.ndarray,
    splits: Sequence[str],
    labels: Sequence[Labels],
    config: AttributeConfig | None,
    on_epoch: Callable[[EpochLog], None] | None,
    schedule: tuple[int, Mapping[str, int]] | None = None,
    narrow: tuple[int, int] | None = None,
) -> AttributePredictor:
    config = config or AttributeConfig()
    features = np.asarray(features, dtype=np.float32)
    if not (len(features) == len(splits) == len(labels)):
        raise ValueError(f"{len(features)} feature rows, {len(splits)} splits, {len(labels)} label sets")
    valid = _valid_rows(features)
    train_rows = _split_rows(splits, valid, "train")
    val_rows = _split_rows(splits, valid, "val")
    if len(train_rows) == 0:
        raise ValueError("no train-split images with features: nothing to learn attributes from")
    vocab = build_vocabulary([labels[i] for i in train_rows], config)
    if not vocab:
        raise ValueError("the train-split images have no attributes")

    torch.manual_seed(config.seed)  # weight init
    generator = torch.Generator().manual_seed(config.seed)  # batch order
    x_train = torch.from_numpy(features[train_rows])
    t_train, h_train = _targets([labels[i] for i in train_rows], vocab)
    x_val = torch.from_numpy(features[val_rows])
    t_val, h_val = _targets([labels[i] for i in val_rows], vocab)

    groups = _input_groups(vocab, features.shape[1], narrow, config)
    net = AttributeNet(features.shape[1], vocab[-1].stop, config.hidden, config.dropout, groups)
    for g in net.groups:
        lo, hi = g.columns
        g.mean.copy_(x_train[:, lo:hi].mean(dim=0))
        g.std.copy_(x_train[:, lo:hi].std(dim=0, unbiased=False).clamp_min(1e-6))
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    history: list[EpochLog] = []
    best_loss, best_epoch, stale = float("inf"), 0, 0
    early = config.patience is not None and len(val_rows) > 0 and schedule is None
    per_kind = config.per_kind_stopping and (early or schedule is not None)
    kind_best = {kv.kind: (float("inf"), 0) for kv in vocab}  # kind -> (its lowest val loss, epoch)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}  # epoch -> weights, for the epochs still chosen
    epochs = config.epochs if schedule is None else max([schedule[0], *schedule[1].values()])
    # Fixed epochs (cross-fitting): a group trains only up to the last epoch one of its kinds is read at.
    # The pixel-colour group is the widest (2,504 inputs) and colour stops within a few epochs, while
    # article type runs on to ~20: training it on for nothing was half of `tailor attributes predict`.
    kind_group = [next(i for i, g in enumerate(net.specs) if kv.offset in g.units) for kv in vocab]
    group_until = [epochs] * len(net.groups)
    if schedule is not None:
        epoch_of = {kv.kind: int(schedule[1].get(kv.kind, schedule[0]) if per_kind else schedule[0]) for kv in vocab}
        group_until = [max((epoch_of[kv.kind] for kv, gi in zip(vocab, kind_group, strict=True) if gi == i), default=0)
                       for i in range(len(net.groups))]
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        net.train()
        # None: every group trains (always, without a schedule); else the groups still needed, and only
        # their kinds' losses (a finished group gets no gradient, so AdamW leaves its weights alone)
        active = None if min(group_until) >= epoch else {i for i, u in enumerate(group_until) if u >= epoch}
        kind_on = torch.tensor([active is None or kind_group[k] in active for k in range(len(vocab))])
        order = torch.randperm(len(train_rows), generator=generator)
        total, steps = 0.0, 0
        for b in range(0, len(order), config.batch_size):
            rows = order[b : b + config.batch_size]
            z = net.member_logits(x_train[rows], active)  # each member its own loss, on the same batch
            m = len(z)
            loss = _loss(z.reshape(m * len(rows), -1), t_train[rows].repeat(m, 1),
                         (h_train[rows] & kind_on).repeat(m, 1), vocab)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        val_loss, val_acc, kind_loss = float("nan"), float("nan"), [None] * len(vocab)
        if len(val_rows):
            net.eval()
            with torch.no_grad():
                logits = net(x_val)
                kind_loss = [None if x is None else x.item() for x in _kind_losses(logits, t_val, h_val, vocab)]
                known = [x for x in kind_loss if x is not None]
                val_loss = float(np.mean(known)) if known else float("nan")
                val_acc = float(np.mean([_top1(logits, t_val, h_val, k, kv) for k, kv in enumerate(vocab)]))
        log = EpochLog(epoch, total / max(1, steps), val_loss, val_acc, time.perf_counter() - start,
                       {kv.kind: x for kv, x in zip(vocab, kind_loss, strict=True) if x is not None})
        history.append(log)
        if on_epoch:
            on_epoch(log)
        if schedule is not None:  # fixed epochs (cross-fitting): keep the weights of the epochs asked for
            if epoch == schedule[0] or epoch in schedule[1].values():
                snapshots[epoch] = copy.deepcopy(net.state_dict())
            continue
        if early:
            # The run's length follows the mean val loss (patience as before); within it each kind keeps
            # the weights of its own best epoch. (Letting any kind's improvement extend the run kept
            # near-perfect kinds creeping down for 60+ epochs.)
            chosen = False
            if val_loss < best_loss:
                best_loss, best_epoch, stale, chosen = val_loss, epoch, 0, True
            else:
                stale += 1
            if per_kind:
                for kv, loss in zip(vocab, kind_loss, strict=True):
                    if loss is not None and loss < kind_best[kv.kind][0]:
                        kind_best[kv.kind], chosen = (loss, epoch), True
            if chosen:
                snapshots[epoch] = copy.deepcopy(net.state_dict())
                wanted = {best_epoch} | {e for _, e in kind_best.values()}
                snapshots = {e: w for e, w in snapshots.items() if e in wanted}
            if stale >= config.patience:  # type: ignore[operator]
                break
    if schedule is not None:
        best_epoch = schedule[0]
        kind_epoch = dict(schedule[1]) if per_kind else {}
    elif early and best_epoch:
        kind_epoch = {kind: e for kind, (_, e) in kind_best.items() if e} if per_kind else {}
    else:
        best_epoch, kind_epoch = len(history), {}
        snapshots[best_epoch] = copy.deepcopy(net.state_dict())
    kind_epoch = {kv.kind: kind_epoch.get(kv.kind, best_epoch) for kv in vocab}
    net.load_state_dict(snapshots[best_epoch])
    net.eval()
    kind_nets: dict[str, AttributeNet] = {}
    by_epoch: dict[int, AttributeNet] = {}
    for kind, e in kind_epoch.items():
        if e != best_epoch:
            if e not in by_epoch:
                other = AttributeNet(features.shape[1], vocab[-1].stop, config.hidden, config.dropout, groups)
                other.load_state_dict(snapshots[e])
                by_epoch[e] = other.eval()
            kind_nets[kind] = by_epoch[e]
    model = AttributePredictor(config, vocab, net, {"best_epoch": best_epoch, "kind_epochs": kind_epoch},
                               kind_nets)
    temperatures = {kv.kind: 1.0 for kv in vocab}
    if config.calibrate and len(val_rows):
        with torch.no_grad():
            temperatures = fit_temperatures(model.logits(x_val), t_val, h_val, vocab)
    data = {
        "train": len(train_rows),
        "val": len(val_rows),
        "units": vocab[-1].stop,
        "kinds": {kv.kind: len(kv.values) for kv in vocab},
    }
    model.meta.update({
        "best_epoch": best_epoch,
        "kind_epochs": kind_epoch,
        "best_val_loss": best_loss if early else None,
        "history": [asdict(h) for h in history],
        "data": data,
        "majority": _majority([labels[i] for i in train_rows], vocab),
        "temperatures": temperatures,
        "version": fingerprint("attributes", asdict(config), data, best_epoch, kind_epoch,
                               [asdict(kv) for kv in vocab]),
    })
    return model


def cross_fitted_predictions(
    features: np.ndarray,
    splits: Sequence[str],
    labels: Sequence[Labels],
    full: AttributePredictor,
    folds: int = 5,
    min_confidence: float = 0.05,
    config: AttributeConfig | None = None,
    on_fold: Callable[[int, int], None] | None = None,
    top_k: int | None = None,
) -> list[list[Prediction]]:
    """Predictions as noisy on training images as on test images (cross-fitting).

    A classifier predicts its own training images almost perfectly, so a graph model trained on those
    edges learns to trust them, and then meets edges that are wrong half the time (colour) at test.
    Here each training image is predicted by a classifier trained on the other ``folds - 1`` folds of
    the training images (same config, trained for as many epochs as ``full`` was, then calibrated on the
    val images); every other image by ``full``, except that val images are predicted by the fold models
    when ``full`` was refit on them (``config.refit``). Fixing the epochs instead of stopping each fold early on
    val makes the folds comparable and skips the epochs that only wait out the patience; and each input
    group trains only up to the last epoch its kinds are read at (the pixel-colour group stops at
    colour's few epochs while article type runs on).
    """
    config = config or full.config
    schedule = (int(full.meta["best_epoch"]), full.kind_epochs) if full.meta.get("best_epoch") else None
    out = full.predict(features, min_confidence, top_k)
    train_rows = np.asarray([i for i, s in enumerate(splits) if s == "train"], dtype=np.int64)
    if folds < 2 or len(train_rows) < folds:
        raise ValueError(f"cross-fitting needs at least 2 folds and as many training images ({folds} folds, "
                         f"{len(train_rows)} training images)")
    fold_of = np.random.default_rng(config.seed).permutation(len(train_rows)) % folds
    # A refit predictor trained on the val images too; the fold models never do (val calibrates them), so
    # they predict val, each its share.
    val_rows = np.asarray([i for i, s in enumerate(splits) if s == "val"] if full.meta.get("refit") else [],
                          dtype=np.int64)
    val_fold = np.arange(len(val_rows)) % folds
    for k in range(folds):
        held = train_rows[fold_of == k]
        fold_splits = list(splits)
        for i in held:
            fold_splits[i] = "held-out"  # never read by _fit
        model = fit_attributes(features, fold_splits, labels, config, schedule=schedule, inputs=full.inputs or None)
        rows = np.concatenate([held, val_rows[val_fold == k]])
        for i, preds in zip(rows, model.predict(features[rows], min_confidence, top_k), strict=True):
            out[i] = preds
        if on_fold:
            on_fold(k + 1, folds)
    return out


def _top1(logits: torch.Tensor, target: torch.Tensor, has: torch.Tensor, k: int, kv: KindVocab) -> float:
    rows = has[:, k]
    if not bool(rows.any()):
        return 0.0
    best = logits[rows, kv.offset : kv.stop].argmax(dim=1)
    hit = target[rows, kv.offset : kv.stop].gather(1, best[:, None]).squeeze(1) > 0
    return float(hit.float().mean())


def _majority(train_labels: Sequence[Labels], vocab: list[KindVocab]) -> dict[str, str]:
    """Most common training value per kind: the baseline an accuracy should beat."""
    out = {}
    for kv in vocab:
        counts = Counter(v for image in train_labels for v in image.get(kv.kind, ()))
        if counts:
            out[kv.kind] = min(counts, key=lambda v: (-counts[v], v))
    return out


# --- evaluation ------------------------------------------------------------------------------------


Family = Callable[[str], str]  # a value -> its family ("navy blue" -> "blue"), for near misses


def evaluate_attributes(
    model: AttributePredictor,
    features: np.ndarray,
    splits: Sequence[str],
    labels: Sequence[Labels],
    split: str = "test",
    families: Mapping[str, Family] | None = None,
) -> list[KindAccuracy]:
    """Top-1 (and top-3) accuracy per kind on the images of ``split`` that have features and the kind:
    the most probable value of the kind is right when it is one of the image's catalog values of that
    kind. For a kind in ``families`` the top-1 also counts as a near miss when it shares a family with one
    of the image's values."""
    features = np.asarray(features, dtype=np.float32)
    rows = _split_rows(splits, _valid_rows(features), split)
    probs = model.probabilities(features[rows]) if len(rows) else np.zeros((0, model.units), np.float32)
    majority = model.meta.get("majority", {})
    out = []
    for kv in model.vocab:
        family = (families or {}).get(kv.kind)
        images = correct = base = top3 = near = 0
        for r, i in enumerate(rows):
            truth = set(labels[i].get(kv.kind, ()))
            if not truth:
                continue
            images += 1
            order = np.argsort(-probs[r, kv.offset : kv.stop], kind="stable")
            guess = kv.values[int(order[0])]
            correct += guess in truth
            top3 += any(kv.values[int(j)] in truth for j in order[:3])
            base += majority.get(kv.kind) in truth
            if family is not None:
                near += family(guess) in {family(t) for t in truth}
        out.append(KindAccuracy(kv.kind, kv.mode, len(kv.values), images, correct, base, top3,
                                near if family is not None else None))
    return out


def reliability(
    model: AttributePredictor,
    features: np.ndarray,
    splits: Sequence[str],
    labels: Sequence[Labels],
    kind: str,
    split: str = "test",
    bins: int = 10,
    calibrated: bool = True,
) -> Reliability:
    """The reliability diagram of one kind's top-1 predictions on ``split``'s images: equal-width
    confidence bins, each with its mean confidence and its accuracy (a calibrated kind has them equal)."""
    kv = next((v for v in model.vocab if v.kind == kind), None)
    if kv is None:
        raise ValueError(f"the classifier has no kind {kind!r} (it has {', '.join(model.kinds)})")
    features = np.asarray(features, dtype=np.float32)
    rows = [i for i in _split_rows(splits, _valid_rows(features), split) if labels[i].get(kind)]
    probs = model.probabilities(features[rows], calibrated=calibrated)[:, kv.offset : kv.stop] if rows else None
    confidence = np.zeros(len(rows))
    right = np.zeros(len(rows), dtype=bool)
    for r, i in enumerate(rows):
        best = int(np.argmax(probs[r]))  # type: ignore[index]
        confidence[r] = float(probs[r, best])  # type: ignore[index]
        right[r] = kv.values[best] in labels[i][kind]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        members = which == b
        n = int(members.sum())
        out.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n,
                                  float(confidence[members].mean()) if n else 0.0,
                                  float(right[members].mean()) if n else 0.0))
    return Reliability(kind, calibrated, out)


def merge_by_name(predictions: Iterable[tuple[str, str, float]]) -> dict[str, float]:
    """One image's predictions -> attribute name -> confidence, the highest over the kinds that predict
    the name (an edge goes to the name's node, which the kinds share)."""
    out: dict[str, float] = {}
    for name, _kind, confidence in predictions:
        if confidence > out.get(name, -1.0):
            out[name] = float(confidence)
    return out


def threshold_table(
    predictions: Sequence[Sequence[tuple[str, str, float]]],
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    truth: Sequence[Collection[str]] | None = None,
    known: Collection[str] | None = None,
) -> list[ThresholdRow]:
    """Predicted edges at each threshold (the paper's Table 5: attribute count by predictor threshold).

    An edge is a distinct (image, attribute name) with confidence >= the threshold. With ``truth`` (per
    image its catalog attribute names) each row also gives precision and recall of those edges; recall
    counts only names in ``known`` (the predictor's vocabulary) when given.
    """
    merged = [merge_by_name(p) for p in predictions]
    conf = np.asarray([c for m in merged for c in m.values()], dtype=np.float64)
    n = max(1, len(predictions))
    rows = []
    for t in thresholds:
        edges = int((conf >= t).sum())
        images = sum(1 for m in merged if any(c >= t for c in m.values()))
        row = ThresholdRow(float(t), edges, images, edges / n)
        if truth is not None:
            hits = relevant = 0
            for m, names in zip(merged, truth, strict=True):
                wanted = {x for x in names if known is None or x in known}
                relevant += len(wanted)
                hits += sum(1 for name, c in m.items() if c >= t and name in wanted)
            row.precision = hits / edges if edges else None
            row.recall = hits / relevant if relevant else None
        rows.append(row)
    return rows
