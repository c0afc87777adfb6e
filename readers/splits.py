"""Deterministic train/val/test assignment from a stable hash of a key (a product group).

Python's ``hash()`` is salted per process, so it cannot give the same split twice; a SHA-256 of
``"{seed}:{key}"`` can, on every machine and in every run. A key's split depends only on the key, the
seed and the ratios, never on which other keys exist: adding products to a catalog does not move the
groups that were already assigned.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

SPLITS: tuple[str, str, str] = ("train", "val", "test")
DEFAULT_RATIOS: tuple[float, float, float] = (0.7, 0.1, 0.2)


def stable_fraction(key: str, seed: int = 0) -> float:
    """A number in [0, 1) fixed by ``key`` and ``seed``: the first 8 bytes of SHA-256 as a fraction."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Validate (train, val, test) ratios: three non-negative numbers summing to 1 (within 1e-6)."""
    if len(ratios) != 3:
        raise ValueError(f"ratios must be (train, val, test), got {tuple(ratios)!r}")
    if any(r < 0 for r in ratios) or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"ratios must be non-negative and sum to 1, got {tuple(ratios)!r}")
    return (float(ratios[0]), float(ratios[1]), float(ratios[2]))


def assign_split(key: str, ratios: Sequence[float] = DEFAULT_RATIOS, seed: int = 0) -> str:
    """The split of ``key``: train, val or test with the given probabilities, the same in every run."""
    train, val, _ = check_ratios(ratios)
    x = stable_fraction(key, seed)
    if x < train:
        return "train"
    if x < train + val:
        return "val"
    return "test"
