"""Gradient-based and one-shot search against stand-alone training: where their finds rank.

For every method of ``--methods`` and seed of ``--seeds``, a fresh ``nb201`` supernet (the
ground truth's network settings) is searched on the ground truth's dataset: with
:func:`optuna_nas.oneshot.gradient_search` (``darts``, ``gdas``, ``drnas``, ``beta-darts``) for
``--epochs``, or, for ``spos`` and ``fair``, trained with
:func:`~optuna_nas.oneshot.train_supernet` for ``--epochs`` and then searched by
regularized evolution over ``--candidates`` weight-sharing scores
(:func:`~optuna_nas.oneshot.derive_architecture`), as ``optuna-nas oneshot`` does. The
found cell is then trained stand-alone with the ground truth's recipe (``fit`` defaults,
its epochs, each of ``--train-seeds``, averaged) unless the ground truth already holds it,
and its test accuracy is placed among the ground truth's cells: the percentile is the share
of ground-truth cells whose test accuracy is strictly lower. The cost is the search's wall
time (supernet training included) in units of one stand-alone training: the ground truth's
mean seconds, or with ``--time-unit N`` the mean of N trainings timed in the same run.

One row per run, printed as it finishes; the table goes to ``--output`` with the mean and
range per method.

Nothing is tuned on this table: every method runs with its published settings, the
supernets with ``fit``'s recipe, except the architecture learning rate, which
:func:`~optuna_nas.oneshot.gradient_search` scales by rule so that the architecture steps
add up to the published runs' (see its docstring).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/gradient_search.py \\
        --truth benchmarks/results/nb201_ground_truth_mnist1d.csv \\
        --output benchmarks/results/gradient_search.md
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import optuna
import torch

from optuna_nas import data, oneshot, spaces, training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of data.load, VALUE as JSON (e.g. data_seed=7 for MNIST-1D); repeatable",
    )
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--truth-epochs", type=int, default=10, help="the ground truth's epochs")
    parser.add_argument("--epochs", type=int, default=20, help="search epochs")
    parser.add_argument(
        "--methods", nargs="+", default=[*oneshot.GRADIENT_METHODS, *oneshot.STRATEGIES]
    )
    parser.add_argument(
        "--candidates", type=int, default=100, help="architectures a spos or fair search scores"
    )
    parser.add_argument(
        "--metric",
        default="accuracy",
        choices=oneshot.SCORE_METRICS,
        help="the weight-sharing score of a spos or fair search",
    )
    parser.add_argument(
        "--proxy",
        default=None,
        help="a zero-cost proxy combined with the weight-sharing score (oneshot.CombinedScore)",
    )
    parser.add_argument(
        "--train-seeds",
        type=int,
        nargs="+",
        default=[0],
        help="train seeds of a found cell the ground truth lacks, averaged (0 1 2 for a "
        "ground truth averaged over those seeds)",
    )
    parser.add_argument(
        "--time-unit",
        type=int,
        default=0,
        metavar="N",
        help="time N stand-alone trainings of ground-truth cells in this run and use their "
        "mean as the cost unit (default 0: the ground truth's recorded mean seconds)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the searches' in-memory studies
    with args.truth.open() as handle:
        truth = {row["arch"]: row for row in csv.DictReader(handle)}
    test = [float(row["test_accuracy"]) for row in truth.values()]
    unit = statistics.mean(float(row["seconds"]) for row in truth.values())
    space = spaces.create("nb201", channels=args.channels, cells_per_stage=args.cells_per_stage)
    dataset = data.load(args.dataset, seed=0, **spaces.parse_space_args(args.data_arg))
    if args.time_unit:
        timed = []
        for string in list(truth)[: args.time_unit]:
            start = time.perf_counter()
            _stand_alone(space.from_nb201_string(string), dataset, args.truth_epochs, 0)
            timed.append(time.perf_counter() - start)
        unit = statistics.mean(timed)
        print(f"one stand-alone training here: {unit:.1f} s", flush=True)
    rows = []
    for method in args.methods:
        for seed in args.seeds:
            training.seed_everything(seed)  # the supernet's initial weights
            supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
            start = time.perf_counter()
            if method in oneshot.GRADIENT_METHODS:
                params = oneshot.gradient_search(
                    supernet, dataset, method=method, epochs=args.epochs, seed=seed, device="cpu"
                ).params
            else:  # a one-shot search: train the supernet, then evolution on shared weights
                oneshot.train_supernet(
                    supernet, dataset, epochs=args.epochs, strategy=method, seed=seed, device="cpu"
                )
                params, _ = oneshot.derive_architecture(
                    space,
                    supernet,
                    dataset,
                    candidates=args.candidates,
                    seed=seed,
                    device="cpu",
                    metric=args.metric,
                    proxy=args.proxy,
                )
            cost = (time.perf_counter() - start) / unit
            arch = space.from_params(params)
            string = space.to_nb201_string(arch)
            if string in truth:
                accuracy = float(truth[string]["test_accuracy"])
            else:
                accuracy = statistics.mean(
                    _stand_alone(arch, dataset, args.truth_epochs, train_seed)
                    for train_seed in args.train_seeds
                )
            percentile = 100.0 * sum(t < accuracy for t in test) / len(test)
            parameter_free = sum(
                op in ("none", "skip_connect", "avg_pool_3x3") for op in params.values()
            )
            row = (method, seed, string, accuracy, percentile, parameter_free, cost)
            rows.append(row)
            print(
                f"{method} seed {seed}: {string} test {accuracy:.4f} percentile "
                f"{percentile:.1f} parameter-free edges {parameter_free}/6 cost {cost:.1f}",
                flush=True,
            )
    args.output.write_text(_table(args, rows, test, unit))
    return 0


def _stand_alone(
    arch: spaces.Architecture, dataset: data.Dataset, epochs: int, seed: int
) -> float:
    """Test accuracy of ``arch`` trained stand-alone with the ground truth's recipe."""
    training.seed_everything(seed)
    model = arch.build(dataset.input_shape, dataset.num_classes)
    fitted = training.fit(
        model, dataset, epochs=epochs, seed=seed, device="cpu", evaluate_test=True
    )
    return float(fitted.test_accuracy or 0.0)


def _table(args: argparse.Namespace, rows: list[tuple], test: list[float], unit: float) -> str:
    command = "OMP_NUM_THREADS=1 python benchmarks/gradient_search.py " + shlex.join(sys.argv[1:])
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CPU, {torch.get_num_threads()} thread(s).",
        "",
        f"Ground truth: {len(test)} cells; best test accuracy {max(test):.4f}, 95th "
        f"percentile {statistics.quantiles(test, n=20)[-1]:.4f}, median "
        f"{statistics.median(test):.4f}. One stand-alone training: {unit:.1f} s"
        + (
            f" (mean of {args.time_unit} timed in this run)."
            if args.time_unit
            else " (the ground truth's record)."
        ),
        "",
        "| method | seed | derived cell | test accuracy | percentile | parameter-free edges "
        "| cost (stand-alone trainings) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method, seed, string, accuracy, percentile, free, cost in rows:
        lines.append(
            f"| {method} | {seed} | `{string.replace('|', '¦')}` | {accuracy:.4f} | "
            f"{percentile:.1f} | {free}/6 "
            f"| {cost:.1f} |"
        )
    lines += ["", "| method | mean percentile | worst percentile | mean cost |"]
    lines += ["| --- | --- | --- | --- |"]
    for method in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == method]
        lines.append(
            f"| {method} | {statistics.mean(r[4] for r in mine):.1f} | "
            f"{min(r[4] for r in mine):.1f} | {statistics.mean(r[6] for r in mine):.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
