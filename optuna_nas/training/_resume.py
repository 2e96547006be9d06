"""Epoch checkpoints of :func:`optuna_nas.training.fit`, so that a run resumes."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from optuna_nas.training._result import FitResult

_logger = logging.getLogger(__name__)


@dataclass
class EpochCheckpoint:
    """The whole state of a training run, saved after each epoch to one file.

    Attributes:
        path: The file; written atomically, read with ``weights_only=True``.
        signature: What identifies the run (epochs, batch size, data and model size); a
            file with another signature is refused rather than resumed.
        model: The network.
        optimizer: Its optimizer.
        scheduler: Its learning-rate schedule.
        streams: The random generators the run draws from, by name.
    """

    path: str | os.PathLike[str]
    signature: dict[str, int]
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    streams: dict[str, torch.Generator]

    def save(self, epoch: int, result: FitResult, train_seconds: float) -> None:
        """Writes the state after ``epoch``."""
        state = {
            "signature": self.signature,
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "streams": {name: g.get_state() for name, g in self.streams.items()},
            "torch_rng": torch.get_rng_state(),
            "history": result.history,
            "train_seconds": train_seconds,
        }
        partial = f"{os.fspath(self.path)}.partial"
        torch.save(state, partial)
        os.replace(partial, self.path)

    def restore(self, result: FitResult) -> tuple[int, float]:
        """Loads the file if it exists; returns the next epoch and the seconds spent.

        Raises:
            ValueError: If the file cannot be read or belongs to another run.
        """
        if not os.path.exists(self.path):
            return 0, 0.0
        where = repr(os.fspath(self.path))
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            stored = state["signature"]
        except Exception as err:  # a truncated file or another format
            raise ValueError(
                f"cannot resume from checkpoint {where} ({err}); delete it to start over"
            ) from None
        if stored != self.signature:
            raise ValueError(
                f"checkpoint {where} belongs to another run ({stored}, this run: "
                f"{self.signature}); delete it or pass another checkpoint path"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for name, generator in self.streams.items():
            generator.set_state(state["streams"][name])
        torch.set_rng_state(state["torch_rng"])
        result.history = list(state["history"])
        if result.history:
            result.valid_accuracy = result.history[-1]["valid_accuracy"]
            result.best_valid_accuracy = max(h["valid_accuracy"] for h in result.history)
        _logger.info("resuming from %s after epoch %d", where, state["epoch"])
        return int(state["epoch"]) + 1, float(state["train_seconds"])
