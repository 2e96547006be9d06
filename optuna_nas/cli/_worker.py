"""``optuna-nas worker``: run trials of a stored study in supervised processes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from optuna_nas import _keys
from optuna_nas.cli._common import (
    DEFAULT_STORAGE,
    CLIError,
    add_heartbeat_args,
    integer,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    worker = sub.add_parser(
        "worker",
        help="run trials of a stored study in supervised worker processes (GPUs or CPU)",
        description="Start one worker process per slot (each GPU times --jobs-per-gpu, or "
        "--jobs CPU workers) on the study that `optuna-nas search` created. Run the same "
        "command on every machine that shares the storage.",
    )
    worker.add_argument("--storage", default=DEFAULT_STORAGE, help="storage URL")
    worker.add_argument("--study-name", required=True, help="the study to work on")
    worker.add_argument(
        "--gpus",
        default="auto",
        help="auto (every visible GPU, else CPU), none, or GPU ids such as 0,1 (default: auto)",
    )
    worker.add_argument("--jobs-per-gpu", type=positive_int, default=1, help="workers per GPU")
    worker.add_argument("--jobs", type=positive_int, default=None, help="number of CPU workers")
    worker.add_argument(
        "--total-trials",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop when the study holds N trials in all, counted over every worker and "
        "earlier run (default: no limit; `search --n-trials` runs N more instead)",
    )
    worker.add_argument(
        "--n-trials", type=positive_int, default=None, help=argparse.SUPPRESS
    )  # the old name of --total-trials, refused with a pointer to it
    worker.add_argument(
        "--timeout",
        type=positive_float,
        default=None,
        help="each worker starts no trial after SEC s",
    )
    worker.add_argument("--sampler", default=None, help="override the study's sampler")
    worker.add_argument("--pruner", default=None, help="override the study's pruner")
    worker.add_argument(
        "--seed",
        type=integer,
        default=None,
        help="sampler seed of worker k is SEED+k (default: fresh)",
    )
    worker.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    worker.add_argument(
        "--artifact-dir",
        default=None,
        help="the study's artifact folder as this machine mounts it (default: as recorded)",
    )
    add_heartbeat_args(worker)
    worker.add_argument(
        "--plots-every",
        type=non_negative_float,
        default=60.0,
        metavar="SEC",
        help="refresh the dashboard's plots after a trial when SEC seconds passed since "
        "the last refresh, and when the worker stops (default: 60)",
    )
    worker.add_argument(
        "--storage-retries",
        type=non_negative_int,
        default=5,
        help="retries, with doubling backoff, of an unreachable storage (default: 5)",
    )
    worker.add_argument(
        "--max-restarts",
        type=non_negative_int,
        default=2,
        help="restarts of a crashed worker (default: 2)",
    )
    worker.add_argument(
        "--stop-timeout",
        type=positive_float,
        default=30.0,
        help="seconds workers get to stop after SIGINT/SIGTERM before they are killed",
    )
    worker.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas.workers import (
        WorkerConfig,
        WorkerError,
        WorkerPool,
        load_worker_study,
        plan_slots,
    )
    from optuna_nas.workers._loop import artifact_store_for

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.n_trials is not None:
        raise CLIError(
            "worker --n-trials is now --total-trials (the study's trials in all, over every "
            f"worker); pass --total-trials {args.n_trials}"
        )
    try:
        config = WorkerConfig(
            storage=args.storage,
            study_name=args.study_name,
            n_trials=args.total_trials,
            plots_every=args.plots_every,
            timeout=args.timeout,
            sampler=args.sampler,
            pruner=args.pruner,
            seed=args.seed,
            data_root=str(Path(args.data_root).resolve()) if args.data_root else None,
            artifact_dir=str(Path(args.artifact_dir).resolve()) if args.artifact_dir else None,
            heartbeat_interval=args.heartbeat_interval,
            grace_period=args.grace_period,
            storage_retries=args.storage_retries,
        )
        slots = plan_slots(args.gpus, args.jobs_per_gpu, args.jobs)
        # Checked here, once, so that bad input gives one error instead of one per worker.
        study = load_worker_study(open_storage(args.storage, create=False), config, slots[0])
        dataset = study.user_attrs.get(_keys.STUDY_DATASET, {}).get("name")
        if dataset is not None and dataset not in data.available():
            raise WorkerError(f"the study's dataset {dataset!r} is not available here")
        artifact_store_for(study, config)
    except (StorageError, WorkerError) as err:
        raise CLIError(str(err)) from None
    print(
        f"optuna-nas worker: {len(slots)} worker(s) on study {args.study_name!r} in "
        f"{mask_url(args.storage)}"
        + (f", {args.total_trials} trials in all" if args.total_trials else ""),
        file=sys.stderr,
    )
    _log_pool_to_stderr()
    pool = WorkerPool(
        config, slots, max_restarts=args.max_restarts, stop_timeout=args.stop_timeout
    )
    return pool.run()


def _log_pool_to_stderr() -> None:
    """Shows the supervisor's log (workers started, exited, restarted) on stderr."""
    import logging

    logger = logging.getLogger("optuna_nas.workers._pool")
    # One handler, on the current stderr, however often the CLI runs in this process.
    for earlier in logger.handlers[:]:
        logger.removeHandler(earlier)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("optuna-nas worker: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
