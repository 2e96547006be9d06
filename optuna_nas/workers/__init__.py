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

from optuna_nas.workers._config import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SAMPLER_FAILING,
    EXIT_STORAGE_LOST,
    EXIT_USAGE,
    WorkerConfig,
    WorkerError,
    WorkerSlot,
    plan_slots,
)
from optuna_nas.workers._loop import load_worker_study, run_worker
from optuna_nas.workers._pool import WorkerPool, worker_environment
from optuna_nas.workers._signals import WorkerInterrupted

__all__ = [
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_SAMPLER_FAILING",
    "EXIT_STORAGE_LOST",
    "EXIT_USAGE",
    "WorkerConfig",
    "WorkerError",
    "WorkerInterrupted",
    "WorkerPool",
    "WorkerSlot",
    "load_worker_study",
    "plan_slots",
    "run_worker",
    "worker_environment",
]
