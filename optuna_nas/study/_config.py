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
class ObjectiveConfig:
    """How :class:`~optuna_nas.ArchitectureObjective` runs each trial; stored with the study.

    Every process that runs trials of the study (a resumed ``optuna-nas search``, each
    ``optuna-nas worker``) builds its objective from these, so all trials are comparable.

    Attributes:
        seed: Seed of the data splits and of each trial's initialization.
        inherit_weights: Start children of a sampler that records parents from the
            parent's checkpoint.
        inherit_lr_scale: Peak learning rate of an inherited child as a fraction of the
            training rate; ``None`` for :data:`optuna_nas.training.INHERIT_LR_SCALE`.
        inherit_partial: Also transfer tensors whose shape a mutation changed, in part.
        save_checkpoints: Save each trial's weights in the artifact store.
        estimate_rung: A zero-cost proxy (a name of :data:`optuna_nas.oneshot.PROXIES`)
            that scores each architecture before it trains, reported at step 0 for
            ``LowFidelityPruner(estimate_rung=True)``; ``None`` for none.
    """

    seed: int = 0
    inherit_weights: bool = False
    inherit_lr_scale: float | None = None
    inherit_partial: bool = True
    save_checkpoints: bool = True
    estimate_rung: str | None = None

    def __post_init__(self) -> None:
        if self.inherit_weights and not self.save_checkpoints:
            raise ValueError(
                "inherit_weights reads the parents' checkpoints, which save_checkpoints=False "
                "would not write (--inherit-weights with --no-checkpoints); drop one"
            )
        if self.inherit_lr_scale is not None and not self.inherit_lr_scale > 0:
            raise ValueError(f"inherit_lr_scale must be positive, got {self.inherit_lr_scale!r}")
        if self.estimate_rung is not None:
            from optuna_nas.oneshot import PROXIES

            if self.estimate_rung not in PROXIES:
                raise ValueError(
                    f"unknown proxy {self.estimate_rung!r} for the estimate rung; choose one "
                    f"of: {', '.join(PROXIES)}"
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
