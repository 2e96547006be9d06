"""optuna-nas: neural architecture search as a drop-in Optuna plugin.

The pieces follow one data flow: a space from :mod:`optuna_nas.spaces` turns a trial's
``suggest_*`` calls into an :class:`Architecture`, which builds a ``torch.nn.Module`` that
:func:`optuna_nas.training.fit` trains on a dataset from :mod:`optuna_nas.data`, reporting
its learning curve to the trial. :mod:`optuna_nas.samplers` and :mod:`optuna_nas.pruners`
create samplers and pruners by name, :mod:`optuna_nas.study` creates studies that
remember their settings, :mod:`optuna_nas.workers` runs them on many GPUs, and
:mod:`optuna_nas.dashboard` shows a search in optuna-dashboard. :mod:`optuna_nas.export`
writes the chosen network as a bundle that :func:`load_model` restores.

Importing the package is cheap: the subpackages and names below load on first use, so
``optuna-nas --help`` does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SUBPACKAGES = (
    "benchmarks",
    "dashboard",
    "data",
    "export",
    "nn",
    "oneshot",
    "pruners",
    "samplers",
    "spaces",
    "study",
    "training",
    "workers",
)

_NAMES = {
    "ArtifactError": "optuna_nas._artifacts",
    "SafeFileSystemArtifactStore": "optuna_nas._artifacts",
    "default_artifact_dir": "optuna_nas._artifacts",
    "open_artifact_store": "optuna_nas._artifacts",
    "write_trial_artifact": "optuna_nas._artifacts",
    "StorageError": "optuna_nas._storage",
    "mask_url": "optuna_nas._storage",
    "open_storage": "optuna_nas._storage",
    "ArchitectureObjective": "optuna_nas.study",
    "DatasetConfig": "optuna_nas.study",
    "OOMRetryCallback": "optuna_nas.study",
    "TrainingConfig": "optuna_nas.study",
    "ObjectiveConfig": "optuna_nas.study",
    "best_trial": "optuna_nas.study",
    "create_study": "optuna_nas.study",
    "study_settings": "optuna_nas.study",
    "WorkerConfig": "optuna_nas.workers",
    "WorkerError": "optuna_nas.workers",
    "WorkerPool": "optuna_nas.workers",
    "WorkerSlot": "optuna_nas.workers",
    "plan_slots": "optuna_nas.workers",
    "run_worker": "optuna_nas.workers",
    "Architecture": "optuna_nas.spaces",
    "Fidelity": "optuna_nas.training",
    "load_model": "optuna_nas.export",
}

if TYPE_CHECKING:
    from optuna_nas import (
        benchmarks,
        dashboard,
        data,
        export,
        nn,
        oneshot,
        pruners,
        samplers,
        spaces,
        study,
        training,
        workers,
    )
    from optuna_nas._artifacts import (
        ArtifactError,
        SafeFileSystemArtifactStore,
        default_artifact_dir,
        open_artifact_store,
        write_trial_artifact,
    )
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas.export import load_model
    from optuna_nas.spaces import Architecture
    from optuna_nas.study import (
        ArchitectureObjective,
        DatasetConfig,
        ObjectiveConfig,
        OOMRetryCallback,
        TrainingConfig,
        best_trial,
        create_study,
        study_settings,
    )
    from optuna_nas.training import Fidelity
    from optuna_nas.workers import (
        WorkerConfig,
        WorkerError,
        WorkerPool,
        WorkerSlot,
        plan_slots,
        run_worker,
    )


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return importlib.import_module(f"optuna_nas.{name}")
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'optuna_nas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBPACKAGES, *_NAMES])


__all__ = [
    "Architecture",
    "ArchitectureObjective",
    "ArtifactError",
    "DatasetConfig",
    "Fidelity",
    "OOMRetryCallback",
    "SafeFileSystemArtifactStore",
    "StorageError",
    "ObjectiveConfig",
    "TrainingConfig",
    "WorkerConfig",
    "WorkerError",
    "WorkerPool",
    "WorkerSlot",
    "__version__",
    "benchmarks",
    "best_trial",
    "create_study",
    "dashboard",
    "data",
    "default_artifact_dir",
    "export",
    "load_model",
    "mask_url",
    "nn",
    "oneshot",
    "open_artifact_store",
    "open_storage",
    "plan_slots",
    "pruners",
    "run_worker",
    "samplers",
    "spaces",
    "study",
    "study_settings",
    "training",
    "workers",
    "write_trial_artifact",
]
