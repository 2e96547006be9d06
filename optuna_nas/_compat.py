"""The one module that touches Optuna's and BoTorch's private names.

Everything else in optuna-nas uses public APIs, and reaches what has no public API only
through the functions here. Each one is pinned by a contract test in
``tests/test_compat.py``, so that an Optuna or BoTorch release that changes one of them
fails there, with the name, rather than somewhere deep in a sampler.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Callable, Container, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna
    import torch
    from optuna.artifacts._protocol import ArtifactStore as ArtifactStore
    from optuna.trial import FrozenTrial, TrialState

ENQUEUED_PARAMS_KEY = "fixed_params"
"""System attribute in which ``study.enqueue_trial`` stores the enqueued parameters."""
ARTIFACT_META_PREFIX = "artifacts:"
"""System-attribute prefix under which ``optuna.artifacts.upload_artifact`` records an
artifact's metadata, which optuna-dashboard lists."""


def trial_id(trial: optuna.trial.BaseTrial | FrozenTrial) -> int:
    """The storage's id of a trial (``Trial._trial_id`` / ``FrozenTrial._trial_id``)."""
    return int(trial._trial_id)  # type: ignore[union-attr]


def study_storage(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage a study object reads and writes (``Study._storage``)."""
    return study._storage


def fresh_trial(trial: optuna.Trial) -> FrozenTrial:
    """The running trial as the storage holds it now, with attributes a sampler set after
    the ``Trial`` object cached them."""
    return trial.storage.get_trial(trial_id(trial))


def study_trials(
    study: optuna.Study,
    *,
    states: Container[TrialState] | None = None,
    use_cache: bool = False,
) -> list[FrozenTrial]:
    """The study's trials without a deep copy, optionally from the sampler-side cache.

    ``Study._get_trials(use_cache=True)`` is what Optuna's own samplers call inside
    ``sample_relative``: it avoids re-reading every finished trial from an RDB storage on
    every trial. The public ``get_trials`` has no such switch.
    """
    return study._get_trials(deepcopy=False, states=states, use_cache=use_cache)


def enqueued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters ``study.enqueue_trial`` fixed for ``trial``; empty if none."""
    return dict(trial.system_attrs.get(ENQUEUED_PARAMS_KEY) or {})


def process_constraints_after_trial(
    constraints_func: Callable[[FrozenTrial], Sequence[float]],
    study: optuna.Study,
    trial: FrozenTrial,
    state: TrialState,
) -> None:
    """Evaluates and stores ``constraints_func`` for a finished trial, as Optuna's samplers
    do in ``after_trial`` (``optuna.samplers._base._process_constraints_after_trial``)."""
    from optuna.samplers._base import _process_constraints_after_trial

    _process_constraints_after_trial(constraints_func, study, trial, state)


def heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats (``optuna.storages._heartbeat``)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return bool(is_heartbeat_enabled(storage))


def record_artifact(
    trial: optuna.Trial, artifact_id: str, *, filename: str, mimetype: str
) -> None:
    """Lists an artifact already written to a store on ``trial``, in the metadata format of
    ``optuna.artifacts.upload_artifact``, so that ``get_all_artifact_meta`` and
    optuna-dashboard list it."""
    meta = {
        "artifact_id": artifact_id,
        "filename": filename,
        "mimetype": mimetype,
        "encoding": None,
    }
    trial.storage.set_trial_system_attr(
        trial_id(trial), ARTIFACT_META_PREFIX + artifact_id, json.dumps(meta)
    )


def log_ei_from_z(u: torch.Tensor) -> torch.Tensor:
    """``log(phi(u) + u * Phi(u))``, stable for very negative ``u``: the log expected
    improvement of a unit-variance Gaussian (``botorch.acquisition.analytic._log_ei_helper``;
    Ament et al., "Unexpected Improvements to Expected Improvement", NeurIPS 2023)."""
    from botorch.acquisition.analytic import _log_ei_helper

    return _log_ei_helper(u)


@contextlib.contextmanager
def no_fused_hypervolume_kernel() -> Iterator[None]:
    """Keeps BoTorch from compiling its fused qLogNEHVI C++ kernel inside this block.

    The build takes minutes on a small machine, inside one trial, and needs a compiler;
    the pure PyTorch path is fast enough for our candidate counts. The module flag
    ``botorch.acquisition.multi_objective.logei._load_attempted`` is set only inside the
    block and restored after it, so other BoTorch users in the process are unaffected.
    """
    from botorch.acquisition.multi_objective import logei

    previous = getattr(logei, "_load_attempted", None)
    if not isinstance(previous, bool):
        yield
        return
    logei._load_attempted = True
    try:
        yield
    finally:
        logei._load_attempted = previous


def study_id(study: optuna.Study) -> int:
    """The storage's id of a study (``Study._study_id``)."""
    return int(study._study_id)


def storage_url(storage: optuna.storages.BaseStorage) -> str | None:
    """The database URL of an RDB storage, seen through Optuna's caching wrapper
    (``_CachedStorage._backend``); ``None`` for other storages."""
    backend = getattr(storage, "_backend", storage)
    url = getattr(backend, "url", None)
    return url if isinstance(url, str) else None


@contextlib.contextmanager
def _quiet_experimental() -> Iterator[None]:
    """Silences Optuna's ``ExperimentalWarning`` for a call the adapter makes on purpose."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _stale_retry_class() -> Any:
    """Optuna's callback that retries a trial whose heartbeat went stale (public since
    Optuna 4.9, hence the lower bound; its static methods are experimental)."""
    import optuna

    return optuna.storages.RetryHeartbeatStaleTrialCallback


def stale_trial_retry_callback(max_retry: int) -> Any:
    """The callback an RDB storage calls for a stale trial, retrying it ``max_retry`` times."""
    with _quiet_experimental():
        return _stale_retry_class()(max_retry=max_retry)


def retried_trial_number(trial: FrozenTrial) -> int | None:
    """The number of the stale trial that ``trial`` retries, or ``None``."""
    with _quiet_experimental():
        number = _stale_retry_class().retried_trial_number(trial)
    return None if number is None else int(number)


def retry_history(trial: FrozenTrial) -> list[int]:
    """The numbers of the stale trials that ``trial``'s retry chain repeats."""
    with _quiet_experimental():
        return [int(n) for n in _stale_retry_class().retry_history(trial)]


def save_trial_note(study: optuna.Study, trial: FrozenTrial, body: str) -> None:
    """Writes optuna-dashboard's Markdown note of a trial that has finished.

    ``optuna_dashboard.save_note`` takes a running :class:`optuna.Trial`, and building one
    for a finished trial runs the study's sampler; this writes the next version of the
    note the way ``save_note`` does.
    """
    from optuna_dashboard._note import note_ver_key, save_note_with_version

    storage = study_storage(study)
    owner = study_id(study)
    number = trial_id(trial)
    version = storage.get_study_system_attrs(owner).get(note_ver_key(number), 0) + 1
    save_note_with_version(storage, owner, number, version, body)
