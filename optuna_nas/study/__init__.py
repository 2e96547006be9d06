"""Architecture-search studies: creating and resuming them, the objective, and retries.

:func:`create_study` records the space, dataset, training settings, sampler and pruner
with the study, so that resuming, ``optuna-nas worker`` and ``optuna-nas train-best``
rebuild everything from storage alone. :class:`ArchitectureObjective` suggests, builds
and trains one architecture per trial; drawing, checkpointing and weight inheritance are
hooks it runs around training. :class:`OOMRetryCallback` queues a trial that ran out of
GPU memory once more, at half the batch size.
"""

from __future__ import annotations

from optuna_nas.study._config import DatasetConfig, ObjectiveConfig, TrainingConfig
from optuna_nas.study._create import (
    best_trial,
    check_resume,
    create_study,
    objective_settings,
    resumed_seed,
    study_settings,
)
from optuna_nas.study._objective import (
    ArchitectureObjective,
    CheckpointHook,
    DrawingHook,
    InheritanceHook,
    TrialHook,
)
from optuna_nas.study._oneshot import OneShotResult, oneshot_search
from optuna_nas.study._retrain import (
    RetrainResult,
    record_retrain,
    retrain,
    retrained,
    train_final,
)
from optuna_nas.study._retry import OOMRetryCallback, enqueue_retry, is_retry, trials_counted

__all__ = [
    "ArchitectureObjective",
    "CheckpointHook",
    "DatasetConfig",
    "DrawingHook",
    "InheritanceHook",
    "OOMRetryCallback",
    "OneShotResult",
    "ObjectiveConfig",
    "RetrainResult",
    "TrainingConfig",
    "TrialHook",
    "best_trial",
    "check_resume",
    "create_study",
    "enqueue_retry",
    "is_retry",
    "objective_settings",
    "oneshot_search",
    "record_retrain",
    "retrain",
    "retrained",
    "train_final",
    "resumed_seed",
    "trials_counted",
    "study_settings",
]
