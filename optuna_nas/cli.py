"""The ``optuna-nas`` command line: a thin shell over the library.

Subcommands:

* ``search``: run (or resume) an architecture search and print the best architecture;
* ``best``: print or export the best architecture of a stored study as JSON;
* ``train-best``: rebuild the best architecture from storage, retrain it on train+valid
  and report its test accuracy;
* ``benchmark``: compare samplers on a tabular benchmark (NAS-Bench-201) over many seeds
  and print a table of the reported test accuracies;
* ``worker``: start and supervise worker processes (one per GPU slot, or CPU workers)
  that run trials of a stored study, e.g. on several machines against one PostgreSQL;
* ``dashboard``: serve the studies with optuna-dashboard and the artifact folder their
  trials wrote to (architecture drawings, checkpoints).

Bad input exits with status 2 and a one-line error, before anything is written.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optuna_nas import _keys

DEFAULT_STORAGE = "sqlite:///optuna_nas.db"


class CLIError(Exception):
    """Bad input: printed as one line, exit status 2."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-nas`` command; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except CLIError as err:
        print(f"optuna-nas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optuna-nas: interrupted; finished trials are saved", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from optuna_nas import __version__

    parser = argparse.ArgumentParser(
        prog="optuna-nas", description="Neural architecture search on Optuna."
    )
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    search = sub.add_parser("search", help="run or resume an architecture search")
    search.add_argument("--space", default="chain", help="search space name (default: chain)")
    search.add_argument(
        "--space-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="space argument, VALUE as JSON (e.g. max_layers=4 or 'filters=[16,32]'); repeatable",
    )
    search.add_argument("--dataset", default="mnist1d", help="dataset name (default: mnist1d)")
    search.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    search.add_argument("--sampler", default="tpe", help="sampler name (default: tpe)")
    search.add_argument("--pruner", default="median", help="pruner name (default: median)")
    search.add_argument(
        "--n-trials", type=_positive_int, default=100, help="most trials to run (default: 100)"
    )
    search.add_argument(
        "--timeout",
        type=_positive_float,
        default=540.0,
        help="stop starting trials after SEC seconds (default: 540)",
    )
    search.add_argument("--epochs", type=_positive_int, default=20, help="epochs per trial")
    search.add_argument("--batch-size", type=_positive_int, default=128)
    search.add_argument("--lr", type=_positive_float, default=3e-3, help="peak AdamW rate")
    _add_storage_args(search)
    search.add_argument("--seed", type=int, default=0, help="seed of sampler, splits and init")
    search.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    search.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    search.add_argument(
        "--artifact-dir",
        default=None,
        help="folder for the trials' drawings and checkpoints (default: the study's, else "
        "optuna_nas_artifacts next to a SQLite file or in the working directory)",
    )
    search.add_argument(
        "--inherit-weights",
        action="store_true",
        help="start each child of a sampler that records parents (evolution) from its "
        "parent's checkpoint: tensors whose name and shape match are copied, and one "
        "whose shape a mutation changed (width, kernel) is transferred in part",
    )
    search.add_argument(
        "--inherit-lr-scale",
        type=_positive_float,
        default=None,
        metavar="SCALE",
        help="with --inherit-weights, the peak learning rate of an inherited child as a "
        "fraction of --lr (default: optuna_nas.training.INHERIT_LR_SCALE; 1.0 for the "
        "full rate)",
    )
    search.add_argument(
        "--no-partial-inherit",
        action="store_true",
        help="with --inherit-weights, copy only tensors whose name and shape match; "
        "start the ones a mutation reshaped fresh",
    )
    search.add_argument(
        "--no-checkpoints",
        action="store_true",
        help="do not save each trial's weights (saves disk; incompatible with --inherit-weights)",
    )
    search.set_defaults(handler=_search)

    best = sub.add_parser("best", help="print or export the best architecture as JSON")
    _add_storage_args(best)
    best.add_argument("--output", "-o", default=None, help="write the JSON to this file")
    best.set_defaults(handler=_best)

    train = sub.add_parser(
        "train-best", help="retrain the best architecture on train+valid, report test accuracy"
    )
    _add_storage_args(train)
    train.add_argument("--epochs", type=_positive_int, default=None, help="default: the study's")
    train.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--device", default=None, help="default: the study's")
    train.set_defaults(handler=_train_best)

    bench = sub.add_parser(
        "benchmark", help="compare samplers on NAS-Bench-201 over many seeds (no GPU needed)"
    )
    bench.add_argument("name", help="benchmark name: nb201")
    bench.add_argument(
        "--samplers",
        default="random,tpe",
        help="comma-separated sampler names, ours or optuna-random, optuna-gp "
        "(default: random,tpe)",
    )
    bench.add_argument(
        "--seeds", type=_positive_int, default=20, help="runs per sampler, seeds 0..N-1"
    )
    bench.add_argument(
        "--protocol",
        default="A",
        help="A: 12-epoch reward, simulated time budget (NB201 paper); B: 200-epoch reward, "
        "--n-queries queries (default: A)",
    )
    bench.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet16-120")
    bench.add_argument(
        "--budget-seconds",
        type=_positive_float,
        default=12000.0,
        help="protocol A: simulated seconds per run (default: 12000)",
    )
    bench.add_argument(
        "--n-queries", type=_positive_int, default=100, help="protocol B: queries per run"
    )
    bench.add_argument(
        "--nb201-dir", default=None, help="folder of the tables (default: $OPTUNA_NAS_NB201_DIR)"
    )
    bench.add_argument(
        "--workers", type=_positive_int, default=1, help="parallel processes (default: 1)"
    )
    bench.add_argument("--output", "-o", default=None, help="also write the table as Markdown")
    bench.add_argument("--json", default=None, help="also write every run's result as JSON")
    bench.set_defaults(handler=_benchmark)
    _add_worker_parser(sub)

    board = sub.add_parser(
        "dashboard",
        help="serve the studies with optuna-dashboard and their artifact store",
        description="Start optuna-dashboard on the storage, with the artifact folder the "
        "study recorded, so that the architecture drawings are previewed.",
    )
    _add_storage_args(board)
    board.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    board.add_argument("--port", type=_port, default=8080, help="TCP port (default: 8080)")
    board.add_argument(
        "--artifact-dir", default=None, help="artifact folder (default: the study's)"
    )
    board.set_defaults(handler=_dashboard)
    return parser


def _add_worker_parser(sub: Any) -> None:
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
    worker.add_argument("--jobs-per-gpu", type=_positive_int, default=1, help="workers per GPU")
    worker.add_argument("--jobs", type=_positive_int, default=None, help="number of CPU workers")
    worker.add_argument(
        "--n-trials",
        type=_positive_int,
        default=None,
        help="stop when the study holds N trials, counted over all workers (default: no limit)",
    )
    worker.add_argument(
        "--timeout",
        type=_positive_float,
        default=None,
        help="each worker starts no trial after SEC s",
    )
    worker.add_argument("--sampler", default=None, help="override the study's sampler")
    worker.add_argument("--pruner", default=None, help="override the study's pruner")
    worker.add_argument(
        "--seed",
        type=int,
        default=None,
        help="sampler seed of worker k is SEED+k (default: fresh)",
    )
    worker.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    worker.add_argument(
        "--artifact-dir",
        default=None,
        help="the study's artifact folder as this machine mounts it (default: as recorded)",
    )
    worker.add_argument(
        "--heartbeat-interval", type=_positive_int, default=10, help="seconds (default: 10)"
    )
    worker.add_argument(
        "--grace-period",
        type=_positive_int,
        default=30,
        help="a trial without heartbeat for SEC s is failed and retried once (default: 30)",
    )
    worker.add_argument(
        "--storage-retries",
        type=int,
        default=5,
        help="retries, with doubling backoff, of an unreachable storage (default: 5)",
    )
    worker.add_argument(
        "--max-restarts", type=int, default=2, help="restarts of a crashed worker (default: 2)"
    )
    worker.add_argument(
        "--stop-timeout",
        type=_positive_float,
        default=30.0,
        help="seconds workers get to stop after SIGINT/SIGTERM before they are killed",
    )
    worker.set_defaults(handler=_worker)


def _add_storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"storage URL (default: {DEFAULT_STORAGE})"
    )
    parser.add_argument(
        "--study-name", default=None, help="study name (search default: SPACE-DATASET)"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _search(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data, pruners, samplers, spaces
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir, open_artifact_store
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas._study import (
        ArchitectureObjective,
        DatasetConfig,
        TrainingConfig,
        best_trial,
        create_study,
    )
    from optuna_nas._worker import OOMRetryCallback
    from optuna_nas.training import select_device

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Everything is validated before the storage is touched, so bad input leaves no study.
    try:
        if args.inherit_weights and args.no_checkpoints:
            raise ValueError(
                "--inherit-weights reads the parents' checkpoints, which --no-checkpoints "
                "would not write; drop one of the two"
            )
        space = spaces.create(args.space, **spaces.parse_space_args(args.space_arg))
        if args.dataset not in data.available():
            raise ValueError(
                f"unknown dataset {args.dataset!r}; choose one of: {', '.join(data.available())}"
            )
        # Built here to refuse bad names before the storage is touched; create_study
        # builds them again from the names, which it stores for `optuna-nas worker`.
        samplers.create(args.sampler, seed=args.seed, space=space)
        pruners.create(args.pruner, max_step=args.epochs - 1)
        select_device(args.device)
        training = TrainingConfig(
            epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device
        )
        options: dict[str, Any] = {"seed": args.seed}
        if args.data_root:
            options["root"] = str(Path(args.data_root).resolve())
        dataset_config = DatasetConfig(args.dataset, options)
        dataset = dataset_config.load()
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    study_name = args.study_name or f"{args.space}-{args.dataset}"
    try:
        storage = open_storage(args.storage)
        artifact_dir = _artifact_dir(args, storage, study_name) or default_artifact_dir(
            args.storage
        )
        artifact_store = open_artifact_store(artifact_dir)
        study = create_study(
            storage=storage,
            study_name=study_name,
            space=space,
            dataset=dataset_config,
            training=training,
            sampler=args.sampler,
            pruner=args.pruner,
            seed=args.seed,
            artifact_dir=artifact_store.root,
        )
    except (StorageError, ArtifactError, ValueError) as err:
        raise CLIError(str(err)) from None

    print(
        f"Searching {space!r} on {args.dataset} ({len(dataset.train)} train / "
        f"{len(dataset.valid)} valid / {len(dataset.test)} test), sampler={args.sampler}, "
        f"pruner={args.pruner}, epochs={args.epochs}, storage={mask_url(args.storage)}, "
        f"study={study_name!r}"
    )
    objective = ArchitectureObjective(
        space,
        dataset,
        training,
        seed=args.seed,
        artifact_store=artifact_store,
        inherit_weights=args.inherit_weights,
        inherit_lr_scale=args.inherit_lr_scale,
        inherit_partial=not args.no_partial_inherit,
        save_checkpoints=not args.no_checkpoints,
    )
    study.optimize(
        objective,
        n_trials=args.n_trials,
        timeout=args.timeout,
        show_progress_bar=not args.no_progress,
        callbacks=[OOMRetryCallback()],
    )
    _save_plots(study)
    try:
        best = best_trial(study)
    except ValueError as err:
        raise CLIError(str(err)) from None
    _print_best(study, best)
    print(f"Artifacts (architecture drawings, checkpoints): {artifact_store.root}")
    print("Inspect the study with:")
    print(f"  optuna-nas dashboard --storage {mask_url(args.storage)} --study-name {study_name}")
    return 0


def _artifact_dir(args: argparse.Namespace, storage: Any, study_name: str | None) -> Path | None:
    """``--artifact-dir``, else the folder the study recorded, else ``None``.

    Raises:
        CLIError: If ``--artifact-dir`` names another folder than the study recorded.
    """
    from optuna_nas.dashboard import find_artifact_dir

    try:
        stored = find_artifact_dir(storage, study_name)
    except ValueError:  # a new study (unknown name) or several folders: nothing recorded
        stored = None
    if args.artifact_dir is None:
        return stored
    given = Path(args.artifact_dir).expanduser().resolve()
    if stored is not None and stored != given:
        raise CLIError(
            f"study {study_name!r} keeps its artifacts in {str(stored)!r}, not {str(given)!r}; "
            f"pass --artifact-dir {stored} or leave it out"
        )
    return given


def _save_plots(study: Any) -> None:
    """Saves the dashboard's custom plots, or says why it cannot."""
    from optuna_nas.dashboard import save_plots

    try:
        save_plots(study)
    except ImportError as err:
        print(f"Skipped the dashboard plots: {err}", file=sys.stderr)


def _dashboard(args: argparse.Namespace) -> int:
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas.dashboard import find_artifact_dir, run_dashboard

    artifact_dir: Path | None
    try:
        storage = open_storage(args.storage)
        names = [s.study_name for s in storage.get_all_studies()]
        if args.artifact_dir is not None:
            artifact_dir = Path(args.artifact_dir).expanduser().resolve()
            if not artifact_dir.is_dir():
                raise CLIError(
                    f"artifact folder {str(artifact_dir)!r} does not exist; pass the folder "
                    "`optuna-nas search` wrote to, or leave --artifact-dir out"
                )
        else:
            artifact_dir = find_artifact_dir(storage, args.study_name)
        if args.study_name is not None and args.study_name not in names:
            raise CLIError(
                f"no study named {args.study_name!r} in the storage; it holds: "
                f"{', '.join(names) or 'none'}"
            )
    except (StorageError, ValueError) as err:
        raise CLIError(str(err)) from None
    if artifact_dir is None and default_artifact_dir(args.storage).is_dir():
        artifact_dir = default_artifact_dir(args.storage)
    elif artifact_dir is not None and not artifact_dir.is_dir():
        print(
            f"optuna-nas dashboard: the study's artifact folder {str(artifact_dir)!r} does not "
            "exist on this machine, so drawings are not shown; pass --artifact-dir",
            file=sys.stderr,
        )
        artifact_dir = None
    url = f"http://{args.host}:{args.port}/dashboard"
    if args.study_name is not None:
        url += f"/studies/{storage.get_study_id_from_name(args.study_name)}"
    print(
        f"optuna-dashboard for {mask_url(args.storage)} at {url}\n"
        f"artifacts: {artifact_dir if artifact_dir is not None else 'none found'}; "
        "press Ctrl-C to stop",
        flush=True,
    )
    try:
        run_dashboard(storage, host=args.host, port=args.port, artifact_dir=artifact_dir)
    except (ImportError, ArtifactError) as err:
        raise CLIError(str(err)) from None
    except OSError as err:
        raise CLIError(
            f"cannot serve on {args.host}:{args.port}: {err.strerror or err}; choose another "
            "--port or --host"
        ) from None
    except KeyboardInterrupt:
        print("optuna-nas dashboard: stopped", file=sys.stderr)
    return 0


def _worker(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas._study import STUDY_DATASET_ATTR
    from optuna_nas._worker import (
        WorkerConfig,
        WorkerError,
        WorkerPool,
        _artifact_store,
        load_worker_study,
        plan_slots,
    )

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        config = WorkerConfig(
            storage=args.storage,
            study_name=args.study_name,
            n_trials=args.n_trials,
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
        study = load_worker_study(open_storage(args.storage), config, slots[0])
        dataset = study.user_attrs.get(STUDY_DATASET_ATTR, {}).get("name")
        if dataset is not None and dataset not in data.available():
            raise WorkerError(f"the study's dataset {dataset!r} is not available here")
        _artifact_store(study, config)
    except (StorageError, WorkerError) as err:
        raise CLIError(str(err)) from None
    print(
        f"optuna-nas worker: {len(slots)} worker(s) on study {args.study_name!r} in "
        f"{mask_url(args.storage)}"
        + (f", {args.n_trials} trials in all" if args.n_trials else ""),
        file=sys.stderr,
    )
    pool = WorkerPool(
        config, slots, max_restarts=args.max_restarts, stop_timeout=args.stop_timeout
    )
    return pool.run()


def _print_best(study: Any, best: Any) -> None:
    from optuna_nas.spaces import Architecture

    arch = Architecture.from_trial(best)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    test = _keys.read(best.user_attrs, _keys.TEST_ACCURACY)
    print(f"Trials: {len(states)} ({counts})")
    print(
        f"Best trial #{best.number}: valid accuracy {best.value:.4f}"
        + (f", test accuracy {test:.4f}" if test is not None else "")
        + f", {_keys.read(best.user_attrs, _keys.N_PARAMS, '?')} params"
    )
    print(f"Best architecture: {arch}")


def _load(args: argparse.Namespace) -> Any:
    import optuna

    from optuna_nas._storage import StorageError, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(args.storage)
    except StorageError as err:
        raise CLIError(str(err)) from None
    names = [s.study_name for s in storage.get_all_studies()]
    name = args.study_name
    if name is None:
        if len(names) != 1:
            raise CLIError(
                f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}); "
                "choose one with --study-name"
            )
        name = names[0]
    if name not in names:
        raise CLIError(
            f"no study named {name!r} in the storage; it holds: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def _best(args: argparse.Namespace) -> int:
    from optuna_nas._study import best_trial
    from optuna_nas.spaces import Architecture

    study = _load(args)
    try:
        best = best_trial(study)
        arch = Architecture.from_trial(best)
    except ValueError as err:
        raise CLIError(str(err)) from None
    payload = {
        "study": study.study_name,
        "trial": best.number,
        "valid_accuracy": best.value,
        "test_accuracy": _keys.read(best.user_attrs, _keys.TEST_ACCURACY),
        "n_params": _keys.read(best.user_attrs, _keys.N_PARAMS),
        "flops": _keys.read(best.user_attrs, _keys.FLOPS),
        "description": str(arch),
        "architecture": arch.to_dict(),
    }
    text = json.dumps(payload, indent=2, sort_keys=True)
    if args.output:
        Path(args.output).write_text(text + "\n")
        print(f"Wrote the best architecture (trial #{best.number}) to {args.output}")
    else:
        print(text)
    return 0


def _train_best(args: argparse.Namespace) -> int:
    from optuna_nas._study import best_trial, study_settings
    from optuna_nas.spaces import Architecture
    from optuna_nas.training import fit, seed_everything

    study = _load(args)
    try:
        space, dataset_config, training = study_settings(study)
        best = best_trial(study)
        arch = Architecture.from_trial(best, space)
        overrides = {"root": str(Path(args.data_root).resolve())} if args.data_root else {}
        dataset = dataset_config.load(**overrides)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    full = dataclasses.replace(dataset, train=dataset.merged_train())
    epochs = args.epochs or training.epochs
    print(f"Retraining trial #{best.number}: {arch}")
    print(f"on {len(full.train)} examples (train + valid) for {epochs} epochs")
    seed_everything(args.seed)
    model = arch.build(dataset.input_shape, dataset.num_classes)
    result = fit(
        model,
        full,
        epochs=epochs,
        batch_size=training.batch_size,
        lr=training.lr,
        weight_decay=training.weight_decay,
        device=args.device or training.device,
        seed=args.seed,
        evaluate_test=True,
    )
    print(
        f"Test accuracy: {result.test_accuracy:.4f} ({result.n_params} params, "
        f"{result.seconds_per_epoch:.2f} s/epoch on {result.device})"
    )
    return 0


def _benchmark(args: argparse.Namespace) -> int:
    from optuna_nas import benchmarks

    if args.name != "nb201":
        raise CLIError(f"unknown benchmark {args.name!r}; choose one of: nb201")
    names = list(dict.fromkeys(n.strip() for n in args.samplers.split(",") if n.strip()))
    known = ", ".join(benchmarks.available_samplers())
    unknown = [n for n in names if n not in benchmarks.available_samplers()]
    if unknown:
        raise CLIError(f"unknown sampler {', '.join(unknown)}; choose from: {known}")
    if not names:
        raise CLIError(f"--samplers is empty; give a comma-separated list from: {known}")
    protocol = args.protocol.upper()
    try:
        bench = benchmarks.NASBench201(args.dataset, root=args.nb201_dir, protocol=protocol)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    for path in (args.output, args.json):
        if path and not Path(path).resolve().parent.is_dir():
            raise CLIError(f"cannot write {path}: its folder does not exist; create it first")

    budget = (
        f"budget {args.budget_seconds:g} simulated s"
        if protocol == "A"
        else f"{args.n_queries} queries"
    )
    title = (
        f"NAS-Bench-201 {args.dataset}, protocol {protocol} (reward {bench.reward_column}, "
        f"{budget}), seeds 0..{args.seeds - 1}"
    )
    jobs = [(name, seed) for name in names for seed in range(args.seeds)]
    kwargs = {
        "protocol": protocol,
        "dataset": args.dataset,
        "budget_seconds": args.budget_seconds,
        "n_queries": args.n_queries,
        "root": args.nb201_dir,
    }
    print(f"{title}: {len(jobs)} runs on {args.workers} worker(s)", file=sys.stderr)
    results = {}
    for done, result in enumerate(_run_jobs(jobs, args.workers, kwargs), start=1):
        results[result.sampler, result.seed] = result
        print(
            f"[{done}/{len(jobs)}] {result.sampler} seed {result.seed}: test "
            f"{result.test_acc:.2f} after {result.n_queries} queries",
            file=sys.stderr,
        )
    runs = [results[job] for job in jobs]
    summaries = benchmarks.summarize(runs)
    table = benchmarks.format_table(summaries, bench.reward_column)
    reference = (
        f"Optimum test accuracy {bench.optimum_test():.2f}; test accuracy of the best-"
        f"{bench.reward_column} cell {bench.test_accuracy(bench.best_reward_arch()):.2f}."
    )
    print(f"{title}\n\n{table}\n\n{reference}")

    command = _benchmark_command(args, names, protocol)
    if args.output:
        Path(args.output).write_text(
            f"# {title}\n\n```\n{command}\n```\n\n{table}\n\n{reference}\n\n"
            "Test accuracy: 200-epoch `test_acc` of the best-reward cell of each run. "
            "Sampler ms/trial: wall time of `study.ask()`, the suggests and `study.tell()`, "
            "without the table lookup. Std: over seeds, ddof=1.\n"
        )
        print(f"Wrote the table to {args.output}")
    if args.json:
        payload = {
            "command": command,
            "title": title,
            "summaries": [s.to_dict() for s in summaries],
            "runs": [r.to_dict() for r in runs],
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"Wrote {len(runs)} runs to {args.json}")
    return 0


def _run_jobs(
    jobs: Sequence[tuple[str, int]], workers: int, kwargs: dict[str, Any]
) -> Iterator[Any]:
    """Runs ``run_nb201`` for each (sampler, seed), yielding results as they finish."""
    from optuna_nas.benchmarks import run_nb201

    if workers == 1:
        for name, seed in jobs:
            yield run_nb201(name, seed, **kwargs)
        return
    # One thread per worker: torch's default of one per core oversubscribes the CPU
    # when several workers run GP samplers at once.
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        futures = [pool.submit(run_nb201, name, seed, **kwargs) for name, seed in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def _benchmark_command(args: argparse.Namespace, names: Sequence[str], protocol: str) -> str:
    """The command line that reruns this benchmark, with every setting spelled out."""
    words = [
        "optuna-nas benchmark nb201",
        f"--samplers {','.join(names)}",
        f"--seeds {args.seeds}",
        f"--protocol {protocol}",
        f"--dataset {args.dataset}",
        f"--budget-seconds {args.budget_seconds:g}"
        if protocol == "A"
        else f"--n-queries {args.n_queries}",
        f"--workers {args.workers}",
    ]
    if args.nb201_dir:
        words.append(f"--nb201-dir {args.nb201_dir}")
    return " ".join(words)


if __name__ == "__main__":
    sys.exit(main())
