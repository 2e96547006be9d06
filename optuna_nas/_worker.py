"""Worker processes that share one study: the engine of ``optuna-nas worker``.

A study created by :func:`optuna_nas.create_study` (or ``optuna-nas search``) stores its
space, dataset, training settings, sampler and pruner, so a worker needs only the storage
URL and the study name. :class:`WorkerPool` starts one worker process per slot (one per
GPU and job, with ``CUDA_VISIBLE_DEVICES`` set, or CPU workers) and supervises them;
:func:`run_worker` is the loop each process runs. The scheduling itself is Optuna's: every
worker asks the shared storage for its next trial.

Failure handling, in one place:

* a worker killed mid-trial (``kill -9``, a lost machine) stops sending heartbeats; once
  its trial's grace period has passed, the next trial start in any worker marks it
  ``FAIL`` and enqueues one retry with the same parameters
  (:class:`optuna.storages.RetryHeartbeatStaleTrialCallback`);
* CUDA running out of memory fails the trial with ``fail_reason=oom``;
  :class:`OOMRetryCallback` enqueues one retry with half the batch size;
* SIGINT or SIGTERM abandons the running trial: it ends ``FAIL`` with
  ``fail_reason=interrupted`` and one retry is enqueued for whichever worker comes next;
* a database that becomes unreachable is retried with exponential backoff; when it stays
  away the worker exits with :data:`EXIT_STORAGE_LOST`, and its unfinished trial is left
  to the heartbeat mechanism above.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import _keys
from optuna_nas._compat import heartbeat_enabled, study_storage
from optuna_nas._storage import StorageError, mask_url, open_storage
from optuna_nas._study import (
    BATCH_SIZE_ATTR,
    STUDY_PRUNER_ATTR,
    STUDY_SAMPLER_ATTR,
    STUDY_SPACE_ATTR,
    ArchitectureObjective,
    study_settings,
)
from optuna_nas.training._fit import FAIL_REASON_ATTR

if TYPE_CHECKING:
    from optuna_nas._compat import ArtifactStore

_logger = logging.getLogger(__name__)

WORKER_ATTR = _keys.WORKER
"""Trial user attribute: ``host``, ``pid``, ``slot``, ``gpu`` and ``cuda_visible_devices``
of the process that ran the trial."""
RETRY_OF_ATTR = _keys.RETRY_OF
"""Trial user attribute of a retry: the number of the failed trial it repeats."""
RETRY_REASON_ATTR = _keys.RETRY_REASON
"""Trial user attribute of a retry: why the trial it repeats failed (``oom``, ...)."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STORAGE_LOST = 3
"""Exit status of a worker that gave up on an unreachable storage."""

_CONFIG_ENV = "OPTUNA_NAS_WORKER_CONFIG"
_SLOT_ENV = "OPTUNA_NAS_WORKER_SLOT"
_GPU_ENV = "OPTUNA_NAS_WORKER_GPU"
_PARENT_ENV = "OPTUNA_NAS_WORKER_PARENT"
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CHILD_COMMAND = "import sys; from optuna_nas._worker import _child_main; sys.exit(_child_main())"


class WorkerError(ValueError):
    """A worker cannot start: unknown study, missing settings, bad option."""


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a pool runs; plain data, passed to the worker processes.

    Attributes:
        storage: Storage URL (see :func:`optuna_nas.open_storage`).
        study_name: The study to work on; it must have been created by optuna-nas.
        n_trials: Trials in the whole study, counted over all workers, after which the
            workers stop (a failed trial that was retried counts once); ``None``: no limit.
            Concurrent workers may overshoot it by at most one trial each.
        timeout: Each worker starts no trial after this many seconds; ``None``: no limit.
        sampler: Sampler name overriding the one stored with the study.
        pruner: Pruner name overriding the one stored with the study.
        seed: Sampler seed; worker ``k`` of the pool uses ``seed + k``. ``None`` (the
            default) seeds each worker afresh, so that workers do not repeat each other.
        data_root: Local root of torchvision datasets, overriding the stored one.
        artifact_dir: Artifact folder (checkpoints, drawings) as this machine mounts it;
            default: the folder recorded with the study, if any.
        heartbeat_interval: Seconds between heartbeats of a running trial (RDB storages).
        grace_period: Seconds without heartbeat after which a trial counts as lost.
        storage_retries: How many times in a row an unreachable storage is retried.
        retry_delay: First backoff delay in seconds; it doubles on each retry, up to 60 s.
    """

    storage: str
    study_name: str
    n_trials: int | None = None
    timeout: float | None = None
    sampler: str | None = None
    pruner: str | None = None
    seed: int | None = None
    data_root: str | None = None
    artifact_dir: str | None = None
    heartbeat_interval: int = 10
    grace_period: int = 30
    storage_retries: int = 5
    retry_delay: float = 1.0

    def __post_init__(self) -> None:
        if self.n_trials is not None and self.n_trials < 1:
            raise WorkerError(f"n_trials must be positive, got {self.n_trials}")
        if self.timeout is not None and not self.timeout > 0:
            raise WorkerError(f"timeout must be positive, got {self.timeout}")
        if self.heartbeat_interval < 1 or self.grace_period <= self.heartbeat_interval:
            raise WorkerError(
                f"heartbeat interval {self.heartbeat_interval} s and grace period "
                f"{self.grace_period} s: the interval must be at least 1 s and the grace "
                "period longer than the interval"
            )
        if self.storage_retries < 0 or not self.retry_delay > 0:
            raise WorkerError(
                f"storage_retries must be >= 0 and retry_delay > 0, got "
                f"{self.storage_retries} and {self.retry_delay}"
            )

    def to_json(self) -> str:
        """The config as JSON, as the pool hands it to its worker processes."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        """The config that :meth:`to_json` wrote."""
        return cls(**json.loads(text))


@dataclass(frozen=True)
class WorkerSlot:
    """One worker process of a pool.

    Attributes:
        index: Slot number, ``0 .. n-1``; shown in logs and in each trial's ``worker``
            user attribute.
        gpu: The GPU the slot sees as its only device (its ``CUDA_VISIBLE_DEVICES``), or
            ``None`` for a CPU worker.
    """

    index: int
    gpu: str | None = None

    @property
    def label(self) -> str:
        """``slot K (GPU G)`` or ``slot K (CPU)``, as logs show it."""
        return f"slot {self.index} ({'GPU ' + self.gpu if self.gpu is not None else 'CPU'})"


def plan_slots(
    gpus: str = "auto", jobs_per_gpu: int = 1, jobs: int | None = None
) -> list[WorkerSlot]:
    """The worker slots for a ``--gpus`` / ``--jobs-per-gpu`` / ``--jobs`` choice.

    Args:
        gpus: ``"auto"`` (every GPU PyTorch sees, as listed in ``CUDA_VISIBLE_DEVICES`` when
            that is set; CPU workers when there is none), ``"none"`` (CPU workers only) or
            a comma-separated list of GPU ids or UUIDs, e.g. ``"0,1"``.
        jobs_per_gpu: Worker processes sharing each GPU.
        jobs: Number of CPU workers when no GPU is used (default 1). Giving it with
            ``gpus="auto"`` asks for CPU workers.

    Raises:
        WorkerError: For a malformed or repeated GPU list, GPUs that PyTorch does not see,
            or non-positive counts.
    """
    if jobs_per_gpu < 1 or (jobs is not None and jobs < 1):
        raise WorkerError(
            f"--jobs-per-gpu and --jobs must be positive, got {jobs_per_gpu}, {jobs}"
        )
    if gpus == "none" or (gpus == "auto" and jobs is not None):
        return [WorkerSlot(i) for i in range(jobs or 1)]
    if jobs is not None:
        raise WorkerError("give either --gpus or --jobs: --jobs sets the number of CPU workers")
    visible = _visible_gpus()
    if gpus == "auto":
        if not visible:
            return [WorkerSlot(0)]
        ids = visible
    else:
        ids = [g.strip() for g in gpus.split(",")]
        if any(not g for g in ids) or len(set(ids)) != len(ids):
            raise WorkerError(f"--gpus {gpus!r} is not a list of distinct GPU ids, e.g. 0,1")
        if not visible:
            raise WorkerError(
                f"--gpus {gpus} asks for GPUs but PyTorch sees none on this machine; use "
                "--gpus none (or --jobs N) for CPU workers"
            )
        unknown = [g for g in ids if g not in visible]
        if unknown:
            raise WorkerError(
                f"GPU {', '.join(unknown)} not found; this machine has: {', '.join(visible)}"
            )
    return [
        WorkerSlot(k * jobs_per_gpu + j, gpu)
        for k, gpu in enumerate(ids)
        for j in range(jobs_per_gpu)
    ]


def _visible_gpus() -> list[str]:
    """GPU ids as ``CUDA_VISIBLE_DEVICES`` spells them for this process's children."""
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip()][:count]
    return [str(i) for i in range(count)]


class OOMRetryCallback:
    """Re-queues a trial that ran out of GPU memory, once, with a smaller batch size.

    :func:`optuna_nas.training.fit` fails such a trial with the user attribute
    ``fail_reason="oom"``. This study callback then enqueues the same parameters with the
    batch size scaled by ``factor`` in the ``batch_size`` user attribute, which
    :class:`optuna_nas.ArchitectureObjective` honours. The retry carries ``retry_of`` (the
    failed trial's number) and ``retry_reason="oom"``; a retry is never retried again.

    Args:
        factor: Batch-size multiplier for the retry, in ``(0, 1)``.

    Example:
        .. code-block:: python

            study.optimize(objective, n_trials=20, callbacks=[OOMRetryCallback()])
    """

    def __init__(self, factor: float = 0.5) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.factor = factor

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if (
            trial.state != TrialState.FAIL
            or _keys.read(trial.user_attrs, FAIL_REASON_ATTR) != "oom"
        ):
            return
        batch_size = _keys.read(trial.user_attrs, BATCH_SIZE_ATTR)
        if not isinstance(batch_size, int) or batch_size <= 1 or _is_retry(trial):
            return
        smaller = max(1, int(batch_size * self.factor))
        enqueue_retry(study, trial, "oom", batch_size=smaller)
        _logger.warning(
            "trial %d ran out of GPU memory at batch size %d; queued once more at %d",
            trial.number,
            batch_size,
            smaller,
        )


def enqueue_retry(
    study: optuna.Study, trial: FrozenTrial, reason: str, *, batch_size: int | None = None
) -> bool:
    """Enqueues one retry of a failed trial with the same parameters.

    Args:
        study: The trial's study.
        trial: The failed trial.
        reason: Stored in the retry's ``retry_reason`` user attribute.
        batch_size: Batch size for the retry; default: the trial's own.

    Returns:
        ``False`` without enqueuing when ``trial`` is itself a retry.
    """
    if _is_retry(trial):
        return False
    attrs: dict[str, Any] = {RETRY_OF_ATTR: trial.number, RETRY_REASON_ATTR: reason}
    size = batch_size if batch_size is not None else _keys.read(trial.user_attrs, BATCH_SIZE_ATTR)
    if size is not None:
        attrs[BATCH_SIZE_ATTR] = size
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return True


def _is_retry(trial: FrozenTrial) -> bool:
    if _keys.has(trial.user_attrs, RETRY_OF_ATTR):
        return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RetryHeartbeatStaleTrialCallback.retried_trial_number(trial) is not None


def trials_counted(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count against a study-wide ``n_trials``.

    Every trial counts, whatever its state, except a failed trial that has a retry: the
    retry counts in its place.
    """
    replaced: set[int] = set()
    for t in trials:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            replaced.update(RetryHeartbeatStaleTrialCallback.retry_history(t))
        origin = _keys.read(t.user_attrs, RETRY_OF_ATTR)
        if isinstance(origin, int):
            replaced.add(origin)
    return sum(1 for t in trials if t.number not in replaced)


class WorkerInterrupted(KeyboardInterrupt):
    """Raised inside the objective when the worker receives SIGINT or SIGTERM.

    A ``KeyboardInterrupt`` so that Optuna records the trial as failed and re-raises it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _StopSignals:
    """SIGINT/SIGTERM handling of one worker process.

    A signal that arrives while the objective runs interrupts it at once (the trial ends
    ``FAIL``); one that arrives while the worker talks to the storage (ask, tell) only
    stops the loop after that, so a storage write is never cut in half.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_objective = False
        self.raised = False
        self.wake = threading.Event()

    def install(self) -> None:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        self.wake.set()
        if first:
            _logger.warning(
                "%s received: abandoning the running trial and stopping",
                signal.Signals(signum).name,
            )
        self._interrupt(frame)

    def _interrupt(self, frame: FrameType | None) -> None:
        if not self.in_objective or self.raised or self.signum is None:
            return
        if _in_storage_call(frame):
            # Raising inside a storage write (the objective's trial.report) could leave a
            # transaction, and on SQLite the file lock, held while this worker then records
            # the failure: try again in 50 ms, once the write is through.
            signal.signal(signal.SIGALRM, lambda _signum, later: self._interrupt(later))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        self.raised = True
        raise WorkerInterrupted(self.signum)


_STORAGE_MODULES = ("sqlalchemy", "optuna.storages", "sqlite3", "psycopg", "pymysql", "MySQLdb")


def _in_storage_call(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it runs storage or database-driver code."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_STORAGE_MODULES):
            return True
        frame = frame.f_back
    return False


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
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )
    study = load_worker_study(storage, config, slot)
    space, dataset_config, training = study_settings(study)
    if slot.gpu is not None:
        training = dataclasses.replace(training, device="cuda")
    elif os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        training = dataclasses.replace(training, device="cpu")
    overrides = {"root": config.data_root} if config.data_root else {}
    dataset = dataset_config.load(**overrides)
    stored_seed = study.user_attrs.get(STUDY_SAMPLER_ATTR, {}).get("seed") or 0
    objective = ArchitectureObjective(
        space,
        dataset,
        training,
        seed=int(stored_seed),
        artifact_store=_artifact_store(study, config),
    )
    stop = _StopSignals()
    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS} if on_main else {}
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
    if STUDY_SPACE_ATTR not in attrs:
        raise WorkerError(
            f"study {config.study_name!r} was not created by optuna-nas; workers rebuild the "
            "objective from the settings `optuna-nas search` stores with a study"
        )
    space, _, training = study_settings(study)
    stored_sampler = attrs.get(STUDY_SAMPLER_ATTR, {})
    sampler_name = config.sampler or stored_sampler.get("name")
    pruner_name = config.pruner or attrs.get(STUDY_PRUNER_ATTR, {}).get("name")
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
    try:
        sampler = samplers.create(sampler_name, seed=seed, space=space)
        pruner = pruners.create(pruner_name, max_step=training.epochs - 1)
    except ValueError as err:
        raise WorkerError(str(err)) from None
    return optuna.load_study(
        study_name=config.study_name, storage=storage, sampler=sampler, pruner=pruner
    )


def _artifact_store(study: optuna.Study, config: WorkerConfig) -> ArtifactStore | None:
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
        stop: _StopSignals,
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
        parent = os.environ.get(_PARENT_ENV)
        self.parent = int(parent) if parent else None

    def run(self) -> int:
        start = time.monotonic()
        failures = 0
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
                    callbacks=[OOMRetryCallback()],
                    gc_after_trial=True,
                )
                n_done += 1
                failures = 0
            except WorkerInterrupted:
                self._retry_if_failed(self.current, "interrupted")
                break
            except Exception as err:
                reason = _storage_failure(err)
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
            trial.set_user_attr(WORKER_ATTR, self.identity)
            return self.objective(trial)
        except WorkerInterrupted:
            self.stop.in_objective = False
            trial.set_user_attr(FAIL_REASON_ATTR, "interrupted")
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
        if any(_keys.read(t.user_attrs, RETRY_OF_ATTR) == number for t in trials):
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


class WorkerPool:
    """Starts one worker process per slot and supervises them.

    Each child runs :func:`run_worker` with ``CUDA_VISIBLE_DEVICES`` set to its slot's GPU
    (empty for CPU workers), ``OMP_NUM_THREADS`` set to its share of the CPU cores unless
    already set, and its slot in ``OPTUNA_NAS_WORKER_SLOT``. The supervisor reports every
    exit, restarts a child that was killed by a signal it did not send (at most
    ``max_restarts`` times per slot), and forwards SIGINT and SIGTERM to the children; a
    child still running ``stop_timeout`` seconds later, or at a second signal, is killed.

    Args:
        config: What every worker runs.
        slots: The slots, e.g. from :func:`plan_slots`.
        max_restarts: Restarts per slot after a crash.
        stop_timeout: Seconds the children get to stop after a signal.

    Example:
        .. code-block:: python

            from optuna_nas import WorkerConfig, WorkerPool, plan_slots

            config = WorkerConfig("postgresql://nas@db/nas", "chain-mnist1d", n_trials=200)
            exit_status = WorkerPool(config, plan_slots("0,1", jobs_per_gpu=2)).run()
    """

    def __init__(
        self,
        config: WorkerConfig,
        slots: Sequence[WorkerSlot],
        *,
        max_restarts: int = 2,
        stop_timeout: float = 30.0,
    ) -> None:
        if not slots:
            raise WorkerError("a worker pool needs at least one slot")
        self.config = config
        self.slots = list(slots)
        self.max_restarts = max_restarts
        self.stop_timeout = stop_timeout
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[int, int] = {}
        self._signum: int | None = None
        self._kill_at: float | None = None

    def run(self) -> int:
        """Runs the pool until every worker has exited; returns the exit status.

        ``0`` when every worker finished, ``128 + signal`` after SIGINT or SIGTERM, and
        otherwise the first failing worker's status.
        """
        restarts = dict.fromkeys(range(len(self.slots)), 0)
        on_main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS} if on_main else {}
        if on_main:
            for sig in _STOP_SIGNALS:
                signal.signal(sig, self._forward)
        try:
            for i in range(len(self.slots)):
                self._start(i)
            while self.processes:
                time.sleep(0.2)
                if self._kill_at is not None and time.monotonic() >= self._kill_at:
                    self._kill_all()
                for i, process in list(self.processes.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del self.processes[i]
                    self._report(i, process.pid, code)
                    crashed = code < 0 and self._signum is None
                    if crashed and restarts[i] < self.max_restarts:
                        restarts[i] += 1
                        _logger.warning(
                            "restarting %s (restart %d of %d)",
                            self.slots[i].label,
                            restarts[i],
                            self.max_restarts,
                        )
                        self._start(i)
                    else:
                        self.exit_codes[i] = code
        finally:
            self._kill_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._signum is not None:
            return 128 + self._signum
        failed = [c for c in self.exit_codes.values() if c != 0]
        if not failed:
            return EXIT_OK
        return failed[0] if failed[0] > 0 else EXIT_ERROR

    def _start(self, i: int) -> None:
        slot = self.slots[i]
        env = worker_environment(self.config, slot, len(self.slots), os.environ)
        # A session of its own: a Ctrl-C in the terminal reaches the supervisor only, which
        # forwards it once, instead of every child receiving it twice.
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_COMMAND], env=env, start_new_session=True
        )
        self.processes[i] = process
        print(f"optuna-nas worker: started {slot.label} as pid {process.pid}", file=sys.stderr)

    def _report(self, i: int, pid: int, code: int) -> None:
        if code < 0:
            how = f"was killed by {_signal_name(-code)}"
        elif code == EXIT_STORAGE_LOST:
            how = "gave up on the unreachable storage"
        elif code - 128 in (int(sig) for sig in _STOP_SIGNALS):
            how = f"stopped after {signal.Signals(code - 128).name}"
        else:
            how = f"exited with status {code}"
        print(f"optuna-nas worker: {self.slots[i].label}, pid {pid}, {how}", file=sys.stderr)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if self._signum is not None:
            self._kill_all()
            return
        self._signum = signum
        self._kill_at = time.monotonic() + self.stop_timeout
        print(
            f"optuna-nas worker: {signal.Signals(signum).name}; stopping {len(self.processes)} "
            f"worker(s), running trials end as failed (again to kill at once)",
            file=sys.stderr,
        )
        for process in self.processes.values():
            _send(process, signum)

    def _kill_all(self) -> None:
        for process in self.processes.values():
            _send(process, signal.SIGKILL)


def worker_environment(
    config: WorkerConfig, slot: WorkerSlot, n_slots: int, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment a pool starts the worker of ``slot`` with.

    ``CUDA_VISIBLE_DEVICES`` is the slot's GPU (empty for a CPU worker, so that it cannot
    touch a GPU), ``OMP_NUM_THREADS`` the slot's share of the cores unless ``base`` sets
    it, and the config travels as JSON in the environment rather than on the command line,
    where other users of the machine could read a database password.
    """
    env = dict(base)
    env[_CONFIG_ENV] = config.to_json()
    env[_SLOT_ENV] = str(slot.index)
    env[_PARENT_ENV] = str(os.getpid())
    env["CUDA_VISIBLE_DEVICES"] = slot.gpu if slot.gpu is not None else ""
    if slot.gpu is not None:
        env[_GPU_ENV] = slot.gpu
    else:
        env.pop(_GPU_ENV, None)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_slots)))
    return env


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass


def _child_main() -> int:
    """Entry point of a pool's worker process: the config comes in the environment."""
    slot_index = int(os.environ.get(_SLOT_ENV, "0"))
    slot = WorkerSlot(slot_index, os.environ.get(_GPU_ENV))
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s [{slot.label}] %(levelname)s %(name)s: %(message)s",
    )
    # Optuna's "Trial N finished" lines go through the root handler, with the slot.
    optuna.logging.set_verbosity(optuna.logging.INFO)
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    try:
        config = WorkerConfig.from_json(os.environ[_CONFIG_ENV])
        return run_worker(config, slot)
    except (StorageError, WorkerError) as err:
        print(f"optuna-nas worker [{slot.label}]: error: {err}", file=sys.stderr)
        return EXIT_USAGE
