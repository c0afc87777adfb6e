"""What every training loop shares: the epoch log, the result, early stopping on the validation score, seeding."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass
class EpochLog:
    epoch: int
    loss: float
    link: float
    compose: float
    train_id_r10: float
    val_id_r10: float
    val_cap_r10: float
    val_score: float  # what early stopping watches: mean of validation id R@1 and R@10
    seconds: float
    eval_seconds: float = 0.0  # of ``seconds``, the validation (recorded by the sampled trainer)
    steps: int = 0  # batches trained this epoch, and of how many an epoch has (the sampled trainer)
    steps_per_epoch: int = 0


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_val_id_r10: float = 0.0
    best_val_score: float = -1.0
    history: list[EpochLog] = field(default_factory=list)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.median([h.seconds for h in self.history])) if self.history else 0.0


class EarlyStopping:
    """Keeps the weights of the epoch with the best validation score (into ``result``) and says when
    ``patience`` epochs have passed without a better one."""

    def __init__(self, result: TrainResult, patience: int):
        self.result, self.patience, self.stale = result, patience, 0
        self.best_state: dict | None = None

    def step(self, log: EpochLog, model: nn.Module) -> bool:
        """After an epoch: True when training should stop."""
        if log.val_score > self.result.best_val_score:
            self.result.best_epoch, self.result.best_val_id_r10 = log.epoch, log.val_id_r10
            self.result.best_val_score = log.val_score
            self.best_state, self.stale = copy.deepcopy(model.state_dict()), 0
            return False
        self.stale += 1
        return self.stale >= self.patience

    def end_epoch(self, log: EpochLog, model: nn.Module, on_epoch: Callable[[EpochLog], None] | None) -> bool:
        """Record the epoch (the result's history, then the caller's callback) and :meth:`step`."""
        self.result.history.append(log)
        if on_epoch:
            on_epoch(log)
        return self.step(log, model)

    def restore(self, model: nn.Module) -> None:
        """The best epoch's weights back into ``model``."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
