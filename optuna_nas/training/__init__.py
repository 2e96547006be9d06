"""Training architectures with Optuna reporting and pruning."""

from __future__ import annotations

from optuna_nas.training._device import seed_everything, select_device
from optuna_nas.training._fit import (
    FAIL_REASON_ATTR,
    FitResult,
    TrainingDiverged,
    evaluate,
    fit,
)

__all__ = [
    "FAIL_REASON_ATTR",
    "FitResult",
    "TrainingDiverged",
    "evaluate",
    "fit",
    "seed_everything",
    "select_device",
]
