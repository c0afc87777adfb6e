"""Checkpoints: weights, config, relation vocabulary and id map, saved atomically in one file."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gnn.config import ExperimentConfig
from readers.files import atomic_write

FORMAT = "tailor.checkpoint/1"


@dataclass
class Checkpoint:
    model_kind: str  # graph | tirg | composeae
    config: ExperimentConfig
    state_dict: dict[str, torch.Tensor]
    relations: list[str]
    ids: dict[str, list[str]]  # node kind -> ids in table order at training time
    in_dims: dict[str, int]
    meta: dict[str, Any]  # data fingerprint, training history, model version

    @property
    def version(self) -> str:
        """A short content hash: written beside every embedding so stale ones can be found."""
        return self.meta.get("version", "")


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file in the same folder, then rename: never a half-written file."""
    atomic_write(path, lambda fh: torch.save(obj, fh))


def fingerprint(*parts: Any) -> str:
    """Stable short hash of JSON-serialisable parts (config, data counts, ...)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def save_checkpoint(
    path: Path,
    model: nn.Module,
    model_kind: str,
    config: ExperimentConfig,
    relations: list[str],
    ids: dict[str, list[str]],
    in_dims: dict[str, int],
    meta: dict[str, Any],
) -> Checkpoint:
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    version = fingerprint(model_kind, config.to_dict(), meta.get("data", {}), meta.get("best_epoch"))
    meta = {**meta, "version": version}
    atomic_save(
        {
            "format": FORMAT,
            "model_kind": model_kind,
            "config": config.to_dict(),
            "state_dict": state,
            "relations": relations,
            "ids": ids,
            "in_dims": in_dims,
            "meta": meta,
        },
        path,
    )
    return Checkpoint(model_kind, config, state, relations, ids, in_dims, meta)


def load_checkpoint(path: Path) -> Checkpoint:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"{path}: not a tailor checkpoint ({FORMAT})")
    return Checkpoint(
        blob["model_kind"],
        ExperimentConfig.from_dict(blob["config"]),
        blob["state_dict"],
        blob["relations"],
        blob["ids"],
        blob["in_dims"],
        blob["meta"],
    )
