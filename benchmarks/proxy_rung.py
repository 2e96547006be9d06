"""A zero-cost proxy as the lowest rung of the low-fidelity pruner, replayed on NB201 cells.

Every cell of the ground truth (``benchmarks/nb201_ground_truth.py``) is scored with each
rung candidate of ``--rungs`` (built and seeded as the ground truth built it). Then, for
each of ``--replays`` shuffled orders, a random search over the cells runs as an Optuna
study with :class:`optuna_nas.pruners.LowFidelityPruner` at its defaults (``eta=3``,
``min_correlation=0.6``, ``min_pairs=6``) on two rungs: the candidate's score at step 0
and the stand-alone validation accuracy at step 1. A trial the pruner stops at step 0
costs its score only; a trial that goes on costs one stand-alone training. ``none`` is the
same search without the estimate rung: every cell trains. In the same run, Optuna's
pruners at their defaults and on a small grid of their main knob see ``--peer-proxy`` at
step 0 and the validation accuracy at step 1, as a user who reports a proxy first would run
them.

Reported per rung candidate, as mean ± standard error over the replays:

- trainings saved: the share of cells never trained;
- the test accuracy of the cell the search returns (the best validation accuracy among
  the trained cells), and how often the search still finds the table's best validation
  accuracy (the pruner did not stop the cell a full search returns);
- when the rung became trusted (trials until it first pruned).

Tuning disclosure: nothing was tuned. The pruner runs at its defaults, the proxies as
published on one batch of 64, and the table is the one ``benchmarks/zero_cost.py``
measured the correlations on (there is no second ground truth).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/proxy_rung.py \\
        --truth benchmarks/results/nb201_ground_truth_mnist1d.csv \\
        --output benchmarks/results/proxy_rung.md
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.pruners import BasePruner

from optuna_nas import data, oneshot, spaces, training
from optuna_nas.pruners import LowFidelityPruner


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
    parser.add_argument(
        "--peer-proxy",
        default="synflow",
        help="the proxy Optuna's pruners see at step 0, in the same run",
    )
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument(
        "--rungs", nargs="+", default=["synflow", "zico", "naswot", "params", "flops"]
    )
    parser.add_argument("--replays", type=int, default=20)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    with args.truth.open() as handle:
        truth = list(csv.DictReader(handle))
    space = spaces.create("nb201", channels=args.channels, cells_per_stage=args.cells_per_stage)
    dataset = data.load(args.dataset, seed=0, **spaces.parse_space_args(args.data_arg))
    scores: dict[str, list[float]] = {name: [] for name in args.rungs}
    for row in truth:
        arch = space.from_nb201_string(row["arch"])
        training.seed_everything(args.train_seed)
        model = arch.build(dataset.input_shape, dataset.num_classes)
        for name in args.rungs:
            scores[name].append(oneshot.zero_cost_score(model, dataset.train, name))
    valid = [float(row["valid_accuracy"]) for row in truth]
    test = [float(row["test_accuracy"]) for row in truth]
    best_test = max(test)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, list[tuple[float, float, bool, int | None]]] = {}
    runs: list[tuple[str, list[float] | None, Callable[[], BasePruner]]] = [
        ("none", None, lambda: LowFidelityPruner(rung_steps=[0, 1]))
    ]
    runs += [
        (rung, scores[rung], lambda: LowFidelityPruner(rung_steps=[0, 1])) for rung in args.rungs
    ]
    peer = args.peer_proxy
    runs += [
        (f"Optuna {label}, {peer} at step 0", scores[peer], make)
        for label, make in _optuna_pruners().items()
    ]
    for label, score, make in runs:
        results[label] = []
        for replay in range(args.replays):
            order = np.random.default_rng(replay).permutation(len(truth))
            outcome = _replay(order, score, valid, test, make())
            results[label].append(outcome)
            print(label, replay, outcome, flush=True)
    args.output.write_text(_table(args, truth, results, best_test))
    return 0


def _optuna_pruners() -> dict[str, Callable[[], BasePruner]]:
    """Optuna's pruners at their defaults, and a small grid of each one's main knob that
    can act on two steps (a warm-up of one step would leave nothing to prune)."""
    from optuna.pruners import (
        HyperbandPruner,
        MedianPruner,
        PercentilePruner,
        SuccessiveHalvingPruner,
    )

    return {
        "Median (defaults)": MedianPruner,
        "Median n_startup_trials=10": lambda: MedianPruner(n_startup_trials=10),
        "Percentile(25)": lambda: PercentilePruner(25.0),
        "Percentile(75)": lambda: PercentilePruner(75.0),
        "SHA (defaults)": SuccessiveHalvingPruner,
        "SHA min_resource=1 eta=2": lambda: SuccessiveHalvingPruner(1, 2),
        "SHA min_resource=1 eta=3": lambda: SuccessiveHalvingPruner(1, 3),
        "SHA min_resource=1 eta=4": lambda: SuccessiveHalvingPruner(1, 4),
        "Hyperband min_resource=1": lambda: HyperbandPruner(min_resource=1, max_resource=2),
    }


def _replay(
    order: np.ndarray,
    score: list[float] | None,
    valid: list[float],
    test: list[float],
    pruner: BasePruner,
) -> tuple[float, float, bool, int | None]:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    first_pruned: list[int] = []

    def objective(trial: optuna.Trial) -> float:
        cell = int(order[trial.number])
        trial.set_user_attr("cell", cell)
        if score is not None:
            trial.report(score[cell], 0)
            if trial.should_prune():
                first_pruned.append(trial.number)
                raise optuna.TrialPruned()
        trial.report(valid[cell], 1)
        return valid[cell]

    study.optimize(objective, n_trials=len(order))
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    chosen = max(trained, key=lambda t: (t.value, -t.number))
    accuracy = test[chosen.user_attrs["cell"]]
    saved = 1.0 - len(trained) / len(order)
    return saved, accuracy, chosen.value == max(valid), min(first_pruned, default=None)


def _table(
    args: argparse.Namespace,
    truth: list[dict[str, str]],
    results: dict[str, list[tuple[float, float, bool, int | None]]],
    best_test: float,
) -> str:
    def mean_se(values: list[float]) -> str:
        se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
        return f"{statistics.mean(values):.3f} ± {se:.3f}"

    lines = [
        f"Command: `OMP_NUM_THREADS=1 python benchmarks/proxy_rung.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CPU, {torch.get_num_threads()} thread(s).",
        "",
        f"Ground truth: {len(truth)} cells, best test accuracy {best_test:.4f}; "
        f"{args.replays} shuffled replays; LowFidelityPruner at its defaults.",
        "",
        "| rung at step 0 | trainings saved | test accuracy of the returned cell | best "
        "validation accuracy kept | first pruned at trial |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rung, outcomes in results.items():
        saved = [o[0] for o in outcomes]
        accuracy = [100 * o[1] for o in outcomes]
        best = sum(o[2] for o in outcomes)
        firsts = [o[3] for o in outcomes if o[3] is not None]
        first = f"{statistics.median(firsts):.0f} (median)" if firsts else "never"
        label = f"{rung} (baseline)" if rung in ("params", "flops", "none") else rung
        label = label if rung.startswith("Optuna") else f"ours: {label}"
        lines.append(
            f"| {label} | {100 * statistics.mean(saved):.1f}% | {mean_se(accuracy)} | "
            f"{best}/{len(outcomes)} | {first} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
