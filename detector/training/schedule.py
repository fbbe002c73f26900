"""Early stopping and learning-rate decay on a validation plateau, that really stop.

The authors' loop divides the lr by 10 when validation accuracy stalls and then *resets* its
early-stopping memory, so it never ends on its own. Here the best score is kept for the whole
run, and training stops when any of these holds:

* ``patience`` epochs in a row brought no improvement (early stopping);
* a plateau asked for an lr below ``min_lr`` (the lr has nowhere left to go);
* ``max_epochs`` is reached (checked by the caller).

An lr decay (``lr *= factor``) happens after ``lr_patience`` epochs without improvement, and
again every ``lr_patience`` epochs while the plateau lasts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Decision:
    """What to do after an epoch."""

    improved: bool
    new_lr: float | None  # set when the lr should change
    stop: bool
    reason: str = ""


@dataclass
class PlateauController:
    """Tracks the best validation score (higher is better) and decides decay and stopping."""

    lr: float
    patience: int = 5
    lr_patience: int = 2
    factor: float = 0.1
    min_lr: float = 1e-6
    min_delta: float = 1e-3
    best: float = -math.inf
    best_epoch: int = -1
    bad_epochs: int = 0
    bad_since_decay: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.factor < 1:
            raise ValueError("lr decay factor must be in (0, 1)")
        if self.patience < 1 or self.lr_patience < 1:
            raise ValueError("patience values must be at least 1")

    def step(self, score: float, epoch: int) -> Decision:
        """Record an epoch's validation score and decide."""
        if not math.isnan(score) and score > self.best + self.min_delta:
            self.best, self.best_epoch = score, epoch
            self.bad_epochs = self.bad_since_decay = 0
            return Decision(True, None, False)
        self.bad_epochs += 1
        self.bad_since_decay += 1
        if self.bad_epochs >= self.patience:
            return Decision(
                False, None, True, f"no improvement for {self.bad_epochs} epoch(s) (patience)"
            )
        if self.bad_since_decay >= self.lr_patience:
            self.bad_since_decay = 0
            new_lr = self.lr * self.factor
            if new_lr < self.min_lr * (1 - 1e-9):
                return Decision(
                    False, None, True, f"plateau at the minimum lr ({self.lr:g} -> {new_lr:g})"
                )
            self.lr = new_lr
            return Decision(False, new_lr, False, f"plateau: lr -> {new_lr:g}")
        return Decision(False, None, False)

    def state_dict(self) -> dict[str, Any]:
        """Plain values, for resuming."""
        return asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        for key, value in state.items():
            setattr(self, key, value)
