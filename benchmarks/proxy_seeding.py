"""How good a first population a zero-cost proxy picks, on the stand-alone ground truth.

``enqueue_best_by_proxy`` scores candidate architectures with a proxy and enqueues the
best as a study's first trials. This replays that choice on the ground truth of
``benchmarks/nb201_ground_truth.py``: for each of ``--repeats`` draws, ``--candidates``
cells are taken at random from the table, the ``--population`` best by each proxy are
kept, and their stand-alone test accuracy (mean and best) is compared with the same
number of cells taken at random from the same candidates. Nothing is trained here; the
proxies score each cell once, at the ground truth's initialisation seed.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/proxy_seeding.py \\
        --truth benchmarks/results/nb201_ground_truth_mnist1d.csv \\
        --output benchmarks/results/proxy_seeding.md
"""

from __future__ import annotations

import argparse
import csv
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np

from optuna_nas import data, oneshot, spaces, training


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--proxies", nargs="+", default=["synflow", "zico", "naswot", "params"])
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    with args.truth.open() as handle:
        truth = list(csv.DictReader(handle))
    space = spaces.create("nb201", channels=args.channels, cells_per_stage=1)
    dataset = data.load(args.dataset, seed=0)
    test = np.array([float(row["test_accuracy"]) for row in truth])
    scores = {}
    for proxy in args.proxies:
        values = []
        for row in truth:
            training.seed_everything(0)
            model = space.from_nb201_string(row["arch"]).build(
                dataset.input_shape, dataset.num_classes
            )
            values.append(oneshot.zero_cost_score(model, dataset.train, proxy))
        scores[proxy] = np.nan_to_num(np.array(values), nan=-np.inf)
    rng = np.random.default_rng(0)
    results: dict[str, tuple[list[float], list[float]]] = {
        name: ([], []) for name in ["random", *args.proxies]
    }
    for _ in range(args.repeats):
        pool = rng.choice(len(truth), size=args.candidates, replace=False)
        picks = {"random": rng.choice(pool, size=args.population, replace=False)}
        for proxy in args.proxies:
            order = pool[np.argsort(-scores[proxy][pool], kind="stable")]
            picks[proxy] = order[: args.population]
        for name, chosen in picks.items():
            results[name][0].append(float(test[chosen].mean()))
            results[name][1].append(float(test[chosen].max()))
    lines = [
        "# First populations chosen by zero-cost proxies",
        "",
        f"Command: `python {shlex.join(sys.argv)}`",
        "",
        f"{args.repeats} draws of {args.candidates} candidates from the {len(truth)}-cell "
        f"ground truth (`{args.truth}`); the {args.population} best by each proxy against "
        f"{args.population} at random from the same candidates. Stand-alone test accuracy, "
        "mean ± standard error over the draws. Nothing tuned.",
        "",
        "| chosen by | mean test accuracy of the population | best test accuracy in it |",
        "| --- | --- | --- |",
    ]
    for name, (means, bests) in results.items():
        lines.append(f"| {name} | {_pct(means)} | {_pct(bests)} |")
    text = "\n".join(lines) + "\n"
    args.output.write_text(text)
    print(text)
    return 0


def _pct(values: list[float]) -> str:
    mean = 100 * statistics.mean(values)
    se = 100 * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.2f} ± {se:.2f}%"


if __name__ == "__main__":
    sys.exit(main())
