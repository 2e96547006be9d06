"""What a worker pool runs, and on which slots (GPUs or CPU workers)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_STORAGE_LOST = 3
"""Exit status of a worker that gave up on an unreachable storage."""
EXIT_SAMPLER_FAILING = 4
"""Exit status of a worker whose sampler failed the same way several times in a row."""


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
        plots_every: Least seconds between two refreshes of the dashboard's plots after
            a trial (:class:`~optuna_nas.dashboard.PlotRefresher`); they are refreshed
            when the worker stops, too.
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
    plots_every: float = 60.0

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
