"""The loop each worker process runs: one trial at a time, from the study's own settings."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna
from optuna.trial import TrialState

from optuna_nas import _keys
from optuna_nas._compat import heartbeat_enabled, stale_trial_retry_callback, study_storage
from optuna_nas._storage import StorageError, mask_url, open_storage
from optuna_nas.study import (
    ArchitectureObjective,
    OOMRetryCallback,
    objective_settings,
    study_settings,
)
from optuna_nas.study._retry import enqueue_retry, trials_counted
from optuna_nas.workers._config import (
    EXIT_OK,
    EXIT_SAMPLER_FAILING,
    EXIT_STORAGE_LOST,
    EXIT_USAGE,
    WorkerConfig,
    WorkerError,
    WorkerSlot,
)
from optuna_nas.workers._signals import STOP_SIGNALS, StopSignals, WorkerInterrupted

if TYPE_CHECKING:
    from optuna_nas._compat import ArtifactStore

_logger = logging.getLogger(__name__)

CONFIG_ENV = "OPTUNA_NAS_WORKER_CONFIG"
SLOT_ENV = "OPTUNA_NAS_WORKER_SLOT"
GPU_ENV = "OPTUNA_NAS_WORKER_GPU"
PARENT_ENV = "OPTUNA_NAS_WORKER_PARENT"
SAME_FAILURE_LIMIT = 5
"""Trials in a row that may fail with the same error outside the objective (the sampler,
say) before a worker gives up with the reason, instead of failing forever."""


def run_worker(config: WorkerConfig, slot: WorkerSlot | None = None) -> int:
    """Runs trials of ``config.study_name`` in this process until the study is done.

    The loop ends when the study holds ``config.n_trials`` trials, after
    ``config.timeout`` seconds, on SIGINT or SIGTERM (when called from the main thread), or
    when the storage stays unreachable. Sampler and pruner are rebuilt from the names
    stored with the study, unless the config overrides them.

    Args:
        config: What to run.
        slot: This worker's slot in a pool; default: slot 0 on the CPU or the default
            device.

    Returns:
        An exit status: :data:`EXIT_OK`, ``128 + signal`` when stopped by a signal, or
        :data:`EXIT_STORAGE_LOST`.

    Raises:
        StorageError: If the storage cannot be opened.
        WorkerError: If the study does not exist or lacks the settings a worker needs.
    """
    slot = slot or WorkerSlot(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = open_storage(
            config.storage,
            heartbeat_interval=config.heartbeat_interval,
            grace_period=config.grace_period,
            heartbeat_stale_trial_callback=stale_trial_retry_callback(max_retry=1),
            create=False,
        )
    study = load_worker_study(storage, config, slot)
    space, dataset_config, training = study_settings(study)
    if slot.gpu is not None:
        training = dataclasses.replace(training, device="cuda")
    elif os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        training = dataclasses.replace(training, device="cpu")
    overrides = {"root": config.data_root} if config.data_root else {}
    dataset = dataset_config.load(**overrides)
    settings = objective_settings(study)
    objective = ArchitectureObjective(
        space,
        dataset,
        training,
        seed=settings.seed,
        artifact_store=artifact_store_for(study, config),
        inherit_weights=settings.inherit_weights,
        inherit_lr_scale=settings.inherit_lr_scale,
        inherit_partial=settings.inherit_partial,
        save_checkpoints=settings.save_checkpoints,
        estimate_rung=settings.estimate_rung,
    )
    stop = StopSignals()
    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if on_main else {}
    try:
        if on_main:
            stop.install()
        return _WorkerLoop(study, objective, config, slot, stop).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def load_worker_study(
    storage: optuna.storages.BaseStorage, config: WorkerConfig, slot: WorkerSlot
) -> optuna.Study:
    """Loads the study with the sampler and pruner a worker uses.

    Raises:
        WorkerError: If the study is missing, was not created by optuna-nas, records no
            sampler or pruner and the config names none, or a name is unknown.
    """
    from optuna_nas import pruners, samplers

    names = [s.study_name for s in storage.get_all_studies()]
    if config.study_name not in names:
        raise WorkerError(
            f"no study named {config.study_name!r} in {mask_url(config.storage)}; it holds: "
            f"{', '.join(names) or 'none'}; create it with `optuna-nas search` (same "
            "--storage and --study-name) or optuna_nas.create_study"
        )
    study = optuna.load_study(study_name=config.study_name, storage=storage)
    attrs = study.user_attrs
    if _keys.STUDY_SPACE not in attrs:
        raise WorkerError(
            f"study {config.study_name!r} was not created by optuna-nas; workers rebuild the "
            "objective from the settings `optuna-nas search` stores with a study"
        )
    space, _, training = study_settings(study)
    stored_sampler = attrs.get(_keys.STUDY_SAMPLER, {})
    sampler_name = config.sampler or stored_sampler.get("name")
    pruner_name = config.pruner or attrs.get(_keys.STUDY_PRUNER, {}).get("name")
    for kind, name, flag in (
        ("sampler", sampler_name, "--sampler"),
        ("pruner", pruner_name, "--pruner"),
    ):
        if name is None:
            raise WorkerError(
                f"study {config.study_name!r} does not record its {kind} (it was created "
                f"with a {kind} object); name one with {flag}"
            )
    assert sampler_name is not None and pruner_name is not None
    seed = None if config.seed is None else config.seed + slot.index
    # Stored arguments (--sampler-arg, --pruner-arg) go with the stored name only.
    sampler_kwargs = stored_sampler.get("kwargs", {}) if config.sampler is None else {}
    stored_pruner = attrs.get(_keys.STUDY_PRUNER, {})
    pruner_kwargs = stored_pruner.get("kwargs", {}) if config.pruner is None else {}
    try:
        sampler = samplers.create(sampler_name, seed=seed, space=space, **sampler_kwargs)
        pruner = pruners.create(pruner_name, max_step=training.epochs - 1, **pruner_kwargs)
    except ValueError as err:
        raise WorkerError(str(err)) from None
    return optuna.load_study(
        study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
    )


def artifact_store_for(study: optuna.Study, config: WorkerConfig) -> ArtifactStore | None:
    """The study's artifact store as this machine mounts it; ``None`` when it has none."""
    from optuna_nas._artifacts import STUDY_ARTIFACTS_ATTR, open_artifact_store

    folder = config.artifact_dir or study.user_attrs.get(STUDY_ARTIFACTS_ATTR)
    if folder is None:
        return None
    if not os.path.isdir(folder):
        # Creating it would scatter one study's artifacts over the machines' local disks.
        raise WorkerError(
            f"artifact folder {folder!r} of study {study.study_name!r} does not exist on "
            f"{socket.gethostname()}; mount the shared folder there (every worker needs the "
            "same one) or pass --artifact-dir with its path on this machine"
        )
    return open_artifact_store(folder)


class _WorkerLoop:
    """One trial at a time, with the budget, signal and storage-loss checks between."""

    def __init__(
        self,
        study: optuna.Study,
        objective: Callable[[optuna.Trial], float],
        config: WorkerConfig,
        slot: WorkerSlot,
        stop: StopSignals,
    ) -> None:
        self.study = study
        self.objective = objective
        self.config = config
        self.slot = slot
        self.stop = stop
        self.current: int | None = None
        self.identity = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "slot": slot.index,
            "gpu": slot.gpu,
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
        parent = os.environ.get(PARENT_ENV)
        self.parent = int(parent) if parent else None

    def run(self) -> int:
        from optuna_nas.dashboard import PlotRefresher

        self.plots = PlotRefresher(self.config.plots_every)
        try:
            return self._run()
        finally:
            self.plots.refresh(self.study)  # whatever stopped the worker

    def _run(self) -> int:
        start = time.monotonic()
        failures = 0
        same, last_error = 0, ""
        unchecked: int | None = None  # a trial cut short by a storage error
        n_done = 0
        while self.stop.signum is None:
            if self.config.timeout is not None and time.monotonic() - start >= self.config.timeout:
                _logger.info("%s: timeout reached after %d trials", self.slot.label, n_done)
                break
            if self.parent is not None and os.getppid() != self.parent:
                _logger.warning("%s: the supervisor is gone; stopping", self.slot.label)
                break
            try:
                if unchecked is not None:
                    self._retry_if_failed(unchecked, "storage")
                    unchecked = None
                budget = self._budget()
                if budget == "done":
                    break
                if budget == "wait":
                    self.stop.wake.wait(self.config.heartbeat_interval)
                    continue
                self.current = None
                self.study.optimize(
                    self._run_objective,
                    n_trials=1,
                    callbacks=[OOMRetryCallback(), self.plots],
                    gc_after_trial=True,
                )
                n_done += 1
                failures = 0
                same = 0
            except WorkerInterrupted:
                self._retry_if_failed(self.current, "interrupted")
                break
            except Exception as err:
                reason = _storage_failure(err)
                if reason is None and self.current is None:
                    # Raised before the objective ran: the sampler or the pruner. The same
                    # error again and again would fail trials forever; stop with it.
                    same = same + 1 if repr(err) == last_error else 1
                    last_error = repr(err)
                    _logger.warning("%s: no trial could start: %r", self.slot.label, err)
                    if same >= SAME_FAILURE_LIMIT:
                        _logger.error(
                            "%s: the sampler or pruner failed %d times in a row with %r; "
                            "stopping. Fix its settings (--sampler, --pruner) and restart",
                            self.slot.label,
                            same,
                            err,
                        )
                        return EXIT_SAMPLER_FAILING
                    continue
                if reason is None:
                    # The objective failed; Optuna has recorded the trial as FAIL. One bad
                    # architecture must not stop the worker.
                    _logger.warning("%s: trial %s failed: %r", self.slot.label, self.current, err)
                    continue
                failures += 1
                unchecked = self.current if self.current is not None else unchecked
                if failures > self.config.storage_retries:
                    _logger.error(
                        "%s: storage %s unreachable %d times in a row (%s); giving up. A "
                        "trial left running is failed and retried by the next worker once "
                        "its heartbeat is %d s old",
                        self.slot.label,
                        mask_url(self.config.storage),
                        failures,
                        reason,
                        self.config.grace_period,
                    )
                    return EXIT_STORAGE_LOST
                delay = min(60.0, self.config.retry_delay * 2 ** (failures - 1))
                _logger.warning(
                    "%s: storage error (%s); retry %d of %d in %.1f s",
                    self.slot.label,
                    reason,
                    failures,
                    self.config.storage_retries,
                    delay,
                )
                study_storage(self.study).remove_session()  # drop a connection that broke
                self.stop.wake.wait(delay)
        if self.stop.signum is not None:
            return 128 + self.stop.signum
        return EXIT_OK

    def _run_objective(self, trial: optuna.Trial) -> float:
        self.current = trial.number
        self.stop.raised = False
        self.stop.in_objective = True
        try:
            if self.stop.signum is not None:
                self.stop.raised = True
                raise WorkerInterrupted(self.stop.signum)
            trial.set_user_attr(_keys.WORKER, self.identity)
            return self.objective(trial)
        except WorkerInterrupted:
            self.stop.in_objective = False
            trial.set_user_attr(_keys.FAIL_REASON, "interrupted")
            raise
        finally:
            self.stop.in_objective = False

    def _budget(self) -> str:
        """``run`` another trial, ``wait`` for other workers' trials, or ``done``."""
        if self.config.n_trials is None:
            return "run"
        heartbeat = heartbeat_enabled(study_storage(self.study))
        if heartbeat:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                optuna.storages.fail_stale_trials(self.study)
        trials = self.study.get_trials(deepcopy=False)
        if any(t.state == TrialState.WAITING for t in trials):
            return "run"  # queued retries run even when the budget is spent
        if trials_counted(trials) < self.config.n_trials:
            return "run"
        # A trial still running may belong to a worker that died: stay until it finishes
        # or its heartbeat runs out, so that its retry has a worker to run it.
        if heartbeat and any(t.state == TrialState.RUNNING for t in trials):
            return "wait"
        return "done"

    def _retry_if_failed(self, number: int | None, reason: str) -> None:
        if number is None:
            return
        trials = self.study.get_trials(deepcopy=False)
        trial = next((t for t in trials if t.number == number), None)
        if trial is None or trial.state != TrialState.FAIL:
            return  # still RUNNING: the heartbeat mechanism takes over
        if any(_keys.read(t.user_attrs, _keys.RETRY_OF) == number for t in trials):
            return
        if enqueue_retry(self.study, trial, reason):
            _logger.warning(
                "%s: trial %d (%s) queued for one retry", self.slot.label, number, reason
            )


def _storage_failure(err: BaseException) -> str | None:
    """Why the storage failed, when it caused ``err``; ``None`` for any other error.

    Optuna wraps a database error in :class:`~optuna.exceptions.StorageInternalError`,
    and a failure while it records a failed trial can surface as another exception
    entirely, so the whole chain of causes is searched.
    """
    from sqlalchemy.exc import SQLAlchemyError

    seen: set[int] = set()
    found: BaseException | None = None
    link: BaseException | None = err
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, SQLAlchemyError):
            found = link  # the database's own message is the most useful one
            break
        if isinstance(link, optuna.exceptions.StorageInternalError) and found is None:
            found = link
        link = link.__cause__ or link.__context__
    if found is None:
        return None
    orig = getattr(found, "orig", None) or found
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def child_main() -> int:
    """Entry point of a pool's worker process: the config comes in the environment."""
    slot_index = int(os.environ.get(SLOT_ENV, "0"))
    slot = WorkerSlot(slot_index, os.environ.get(GPU_ENV))
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s [{slot.label}] %(levelname)s %(name)s: %(message)s",
    )
    # Optuna's "Trial N finished" lines go through the root handler, with the slot.
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    try:
        config = WorkerConfig.from_json(os.environ[CONFIG_ENV])
        return run_worker(config, slot)
    except (StorageError, WorkerError) as err:
        print(f"optuna-nas worker [{slot.label}]: error: {err}", file=sys.stderr)
        return EXIT_USAGE
