"""One architecture search shared by several worker processes through one storage.

Optuna studies live in their storage, so parallel search needs no coordinator: every
worker loads the same study and asks it for trials. This script shows the pattern on
one machine:

1. The parent creates the study with :func:`optuna_nas.create_study`, which stores the
   search space, the dataset and the training settings with the study.
2. It starts ``--workers`` processes (``multiprocessing``, spawn context). Each one calls
   ``optuna.load_study`` on the same storage, rebuilds the objective from what the study
   stored (:func:`optuna_nas.study_settings`), and runs ``--trials-per-worker`` trials.
   A worker needs nothing but the storage URL and the study name, so the same worker
   function could run on other machines against a PostgreSQL or MySQL URL.
3. The parent waits, prints how many trials each worker ran, and checks that every
   trial has its own number and has finished.

SQLite is fine for a few workers on one machine: a busy-timeout makes a writer wait for
the lock instead of failing. For many workers or several machines use a database server.

Run it with::

    python examples/shared_study.py                                  # 4 workers, SQLite
    python examples/shared_study.py --workers 8 --trials-per-worker 10
    python examples/shared_study.py --storage postgresql://user@db-host/optuna

Start it again with the same storage and study name to add trials to the study.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import optuna
import torch

import optuna_nas

WORKER_ATTR = "worker"
"""Trial user attribute: index of the worker process that ran the trial."""
PID_ATTR = "worker_pid"
"""Trial user attribute: operating-system id of the worker process that ran the trial."""

DEFAULT_STORAGE = "sqlite:///shared_study.db"


def main(argv: Sequence[str] | None = None) -> int:
    """Creates the study, runs the workers and checks the result; returns the exit status."""
    args = _parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = optuna_nas.spaces.create("chain", max_layers=args.max_layers, filters=args.filters)
    options: dict[str, object] = {"seed": args.seed}
    if args.data_root:
        options["root"] = str(Path(args.data_root).resolve())
    study = optuna_nas.create_study(
        storage=_storage(args.storage),
        study_name=args.study_name,
        space=space,
        dataset=optuna_nas.DatasetConfig(args.dataset, options),
        training=optuna_nas.TrainingConfig(epochs=args.epochs, device=args.device),
    )
    before = len(study.trials)
    print(
        f"Study {args.study_name!r} in {optuna_nas.mask_url(args.storage)}: {before} trials "
        f"so far; starting {args.workers} workers x {args.trials_per_worker} trials"
    )

    threads = args.threads_per_worker or max(1, (os.cpu_count() or 1) // args.workers)
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=run_worker,
            args=(args.storage, args.study_name, index, args.trials_per_worker, args.seed),
            kwargs={"threads": threads},
            name=f"worker-{index}",
        )
        for index in range(args.workers)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    crashed = [worker.name for worker in workers if worker.exitcode != 0]
    if crashed:
        print(f"error: {', '.join(crashed)} exited abnormally", file=sys.stderr)
        return 1

    trials = study.get_trials(deepcopy=False)
    new = [t for t in trials if t.number >= before]
    per_worker = collections.Counter(
        (t.user_attrs[WORKER_ATTR], t.user_attrs[PID_ATTR]) for t in new
    )
    for (index, pid), count in sorted(per_worker.items()):
        print(f"Worker {index} (pid {pid}): {count} trials")
    states = collections.Counter(t.state.name.lower() for t in new)
    print(
        f"Trials this run: {len(new)} ({', '.join(f'{n} {s}' for s, n in sorted(states.items()))})"
    )

    problems = []
    if len({t.number for t in trials}) != len(trials):
        problems.append("trial numbers repeat")
    if len(new) != args.workers * args.trials_per_worker:
        problems.append(f"expected {args.workers * args.trials_per_worker} new trials")
    unfinished = [t.number for t in trials if not t.state.is_finished()]
    if unfinished:
        problems.append(f"trials {unfinished} did not finish")
    if problems:
        print(f"error: {'; '.join(problems)}", file=sys.stderr)
        return 1
    print(f"Checks passed: {len(trials)} trials, numbers unique, all finished")

    if states["complete"]:
        best = optuna_nas.best_trial(study)
        print(
            f"Best trial #{best.number} (worker {best.user_attrs[WORKER_ATTR]}): "
            f"valid accuracy {best.value:.4f}"
        )
        print(f"Best architecture: {optuna_nas.Architecture.from_trial(best)}")
    return 0


def run_worker(
    storage_url: str, study_name: str, index: int, n_trials: int, seed: int, *, threads: int
) -> None:
    """Body of one worker process: loads the shared study and runs ``n_trials`` trials.

    Everything the objective needs is read back from the study, so the arguments are only
    what locates the study plus this worker's identity.
    """
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Workers share the cores; one pool of threads per worker avoids oversubscription.
    torch.set_num_threads(threads)
    # The sampler is not stored with the study; each worker brings its own. A distinct seed
    # per worker keeps them from proposing the same architectures in lockstep.
    sampler = optuna.samplers.TPESampler(seed=seed + index)
    study = optuna.load_study(
        study_name=study_name,
        storage=_storage(storage_url),
        sampler=sampler,
        # fit() reports one step per epoch; judge a trial only after its first epochs.
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=2),
    )
    space, dataset_config, settings = optuna_nas.study_settings(study)
    objective = optuna_nas.ArchitectureObjective(space, dataset_config.load(), settings, seed=seed)

    def tagged(trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, index)
        trial.set_user_attr(PID_ATTR, os.getpid())
        return objective(trial)

    study.optimize(tagged, n_trials=n_trials)


def _storage(url: str) -> optuna.storages.BaseStorage:
    """The study's storage, opened by :func:`optuna_nas.open_storage`.

    SQLite gets a busy-timeout so concurrent writers wait, PostgreSQL and MySQL URLs get a
    driver, and with heartbeats a trial whose worker was killed is marked failed by the next
    worker instead of staying ``RUNNING`` for ever.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna_nas.open_storage(url, heartbeat_interval=60, grace_period=180)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Run one optuna-nas study from several worker processes.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=4, help="worker processes to start")
    parser.add_argument("--trials-per-worker", type=int, default=5, help="trials each worker runs")
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help="SQLite or other RDB storage URL"
    )
    parser.add_argument("--study-name", default="shared-study", help="study name in the storage")
    parser.add_argument(
        "--dataset",
        choices=optuna_nas.data.available(),
        default="mnist1d",
        help="dataset to search on",
    )
    parser.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per trial")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--max-layers", type=int, default=4, help="most layers of the chain")
    parser.add_argument(
        "--filters",
        type=int,
        nargs="+",
        default=[16, 32, 64],
        help="channel choices of the convolutions",
    )
    parser.add_argument(
        "--threads-per-worker",
        type=int,
        default=None,
        help="torch threads in each worker (default: CPU cores / workers)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of samplers, split and init")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
