"""optuna-nas: neural architecture search as a drop-in Optuna plugin.

The pieces follow one data flow: a space from :mod:`optuna_nas.spaces` turns a trial's
``suggest_*`` calls into an :class:`Architecture`, which builds a ``torch.nn.Module`` that
:func:`optuna_nas.training.fit` trains on a dataset from :mod:`optuna_nas.data`, reporting
its learning curve to the trial. :mod:`optuna_nas.samplers` and :mod:`optuna_nas.pruners`
create samplers and pruners by name.
"""

from __future__ import annotations

from optuna_nas import data, nn, pruners, samplers, spaces, training
from optuna_nas._artifacts import (
    ArtifactError,
    SafeFileSystemArtifactStore,
    default_artifact_dir,
    open_artifact_store,
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
from optuna_nas.spaces import Architecture

__version__ = "0.1.0"

__all__ = [
    "Architecture",
    "ArchitectureObjective",
    "ArtifactError",
    "DatasetConfig",
    "SafeFileSystemArtifactStore",
    "StorageError",
    "TrainingConfig",
    "__version__",
    "best_trial",
    "create_study",
    "data",
    "default_artifact_dir",
    "mask_url",
    "nn",
    "open_artifact_store",
    "open_storage",
    "pruners",
    "samplers",
    "spaces",
    "study_settings",
    "training",
]
