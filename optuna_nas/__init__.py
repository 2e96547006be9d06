"""optuna-nas: neural architecture search as a drop-in Optuna plugin.

The pieces follow one data flow: a space from :mod:`optuna_nas.spaces` turns a trial's
``suggest_*`` calls into an :class:`Architecture`, which builds a ``torch.nn.Module`` that
:func:`optuna_nas.training.fit` trains on a dataset from :mod:`optuna_nas.data`, reporting
its learning curve to the trial. :mod:`optuna_nas.samplers` and :mod:`optuna_nas.pruners`
create samplers and pruners by name, and :mod:`optuna_nas.dashboard` shows a search in
optuna-dashboard.
"""

from __future__ import annotations

from optuna_nas import dashboard, data, nn, pruners, samplers, spaces, training
from optuna_nas._artifacts import (
    ArtifactError,
    SafeFileSystemArtifactStore,
    default_artifact_dir,
    open_artifact_store,
    write_trial_artifact,
)
from optuna_nas._storage import StorageError, mask_url, open_storage
from optuna_nas._study import (
    ArchitectureObjective,
    DatasetConfig,
    TrainingConfig,
    best_trial,
    create_study,
    study_settings,
)
from optuna_nas._worker import (
    OOMRetryCallback,
    WorkerConfig,
    WorkerError,
    WorkerPool,
    WorkerSlot,
    plan_slots,
    run_worker,
)
from optuna_nas.spaces import Architecture
from optuna_nas.training import Fidelity

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureObjective",
    "ArtifactError",
    "DatasetConfig",
    "Fidelity",
    "SafeFileSystemArtifactStore",
    "OOMRetryCallback",
    "StorageError",
    "TrainingConfig",
    "WorkerConfig",
    "WorkerError",
    "WorkerPool",
    "WorkerSlot",
    "__version__",
    "best_trial",
    "create_study",
    "dashboard",
    "data",
    "default_artifact_dir",
    "mask_url",
    "nn",
    "open_artifact_store",
    "open_storage",
    "pruners",
    "samplers",
    "spaces",
    "plan_slots",
    "run_worker",
    "study_settings",
    "training",
    "write_trial_artifact",
]
