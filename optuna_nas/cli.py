"""The ``optuna-nas`` command line: a thin shell over the library.

Subcommands:

* ``search``: run (or resume) an architecture search and print the best architecture;
* ``best``: print or export the best architecture of a stored study as JSON;
* ``train-best``: rebuild the best architecture from storage, retrain it on train+valid
  and report its test accuracy;
* ``benchmark``: compare samplers on a tabular benchmark (NAS-Bench-201) over many seeds
  and print a table of the reported test accuracies.

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
    return parser


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


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _search(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data, pruners, samplers, spaces
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas._study import (
        ArchitectureObjective,
        DatasetConfig,
        TrainingConfig,
        best_trial,
        create_study,
    )
    from optuna_nas.training import select_device

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Everything is validated before the storage is touched, so bad input leaves no study.
    try:
        space = spaces.create(args.space, **spaces.parse_space_args(args.space_arg))
        if args.dataset not in data.available():
            raise ValueError(
                f"unknown dataset {args.dataset!r}; choose one of: {', '.join(data.available())}"
            )
        sampler = samplers.create(args.sampler, seed=args.seed, space=space)
        pruner = pruners.create(args.pruner, max_step=args.epochs - 1)
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
        study = create_study(
            storage=storage,
            study_name=study_name,
            space=space,
            dataset=dataset_config,
            training=training,
            sampler=sampler,
            pruner=pruner,
        )
    except (StorageError, ValueError) as err:
        raise CLIError(str(err)) from None

    print(
        f"Searching {space!r} on {args.dataset} ({len(dataset.train)} train / "
        f"{len(dataset.valid)} valid / {len(dataset.test)} test), sampler={args.sampler}, "
        f"pruner={args.pruner}, epochs={args.epochs}, storage={mask_url(args.storage)}, "
        f"study={study_name!r}"
    )
    objective = ArchitectureObjective(space, dataset, training, seed=args.seed)
    study.optimize(
        objective,
        n_trials=args.n_trials,
        timeout=args.timeout,
        show_progress_bar=not args.no_progress,
    )
    try:
        best = best_trial(study)
    except ValueError as err:
        raise CLIError(str(err)) from None
    _print_best(study, best)
    print("Inspect the study with:")
    print(f"  optuna-dashboard {mask_url(args.storage)}")
    return 0


def _print_best(study: Any, best: Any) -> None:
    from optuna_nas.spaces import Architecture

    arch = Architecture.from_trial(best)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    test = best.user_attrs.get("test_accuracy")
    print(f"Trials: {len(states)} ({counts})")
    print(
        f"Best trial #{best.number}: valid accuracy {best.value:.4f}"
        + (f", test accuracy {test:.4f}" if test is not None else "")
        + f", {best.user_attrs.get('n_params', '?')} params"
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
        "test_accuracy": best.user_attrs.get("test_accuracy"),
        "n_params": best.user_attrs.get("n_params"),
        "flops": best.user_attrs.get("flops"),
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
