"""The settings a study is created with and stores, so that any process can rebuild it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_nas.data import Dataset


@dataclass(frozen=True)
class TrainingConfig:
    """How each architecture is trained; stored with the study.

    Attributes:
        epochs: Training epochs per trial; trials report steps 0 to ``epochs - 1``, so the
            pruners get ``max_step=epochs - 1``.
        batch_size: Examples per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"invalid training config {self}; epochs and batch_size must be positive, lr "
                "positive and weight_decay non-negative"
            )


@dataclass(frozen=True)
class DatasetConfig:
    """Which data a study trains on; stored with the study.

    Attributes:
        name: A name from :func:`optuna_nas.data.available`.
        options: Keyword arguments of :func:`optuna_nas.data.load` (``seed``, ``root``, ...).
    """

    name: str = "mnist1d"
    options: Mapping[str, Any] = field(default_factory=dict)

    def load(self, **overrides: Any) -> Dataset:
        """Loads the dataset; ``overrides`` replace stored options (e.g. a local ``root``)."""
        from optuna_nas import data

        return data.load(self.name, **{**dict(self.options), **overrides})
