"""Training architectures with Optuna reporting and pruning."""

from __future__ import annotations

from optuna_nas.training._augment import Augment
from optuna_nas.training._device import seed_everything, select_device
from optuna_nas.training._fidelity import Fidelity
from optuna_nas.training._fit import evaluate, fit, measure_latency
from optuna_nas.training._inherit import (
    CHECKPOINT_ATTR,
    INHERIT_LR_SCALE,
    INHERITED_ATTR,
    MODEL_TENSORS_ATTR,
    PARTIAL_ATTR,
    PEAK_LR_ATTR,
    InheritanceWarning,
    WeightTransfer,
    inherit_weights,
    load_checkpoint,
    save_checkpoint,
    transfer_weights,
)
from optuna_nas.training._memory import (
    LEDGER_DIR_ENV,
    MEMORY_MARGIN,
    GpuMemoryLedger,
    Reservation,
    estimate_training_memory,
    saved_activation_bytes,
)
from optuna_nas.training._result import FAIL_REASON_ATTR, FitResult, TrainingDiverged

__all__ = [
    "Augment",
    "CHECKPOINT_ATTR",
    "FAIL_REASON_ATTR",
    "Fidelity",
    "GpuMemoryLedger",
    "LEDGER_DIR_ENV",
    "MEMORY_MARGIN",
    "Reservation",
    "estimate_training_memory",
    "saved_activation_bytes",
    "INHERIT_LR_SCALE",
    "INHERITED_ATTR",
    "MODEL_TENSORS_ATTR",
    "PARTIAL_ATTR",
    "PEAK_LR_ATTR",
    "FitResult",
    "InheritanceWarning",
    "TrainingDiverged",
    "WeightTransfer",
    "evaluate",
    "fit",
    "inherit_weights",
    "load_checkpoint",
    "measure_latency",
    "save_checkpoint",
    "transfer_weights",
    "seed_everything",
    "select_device",
]
