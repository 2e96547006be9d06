"""Ground truth for one-shot and zero-cost estimates: NB201 cells trained stand-alone.

There is no CIFAR-10 on these machines, so the reference that one-shot scores, zero-cost
proxies and gradient methods are ranked against is built here: ``--count`` distinct cells
of the ``nb201`` space, drawn uniformly with ``--seed``, each trained from scratch with one
fixed recipe on an embedded dataset (MNIST-1D by default), and written to a CSV, one row
per cell as it finishes:

``arch`` (NAS-Bench-201 string), ``n_params``, ``flops``, ``valid_accuracy`` (after the
last epoch, on the dataset's validation split), ``test_accuracy``, ``seconds``.

The recipe is the library's default ``fit`` (AdamW 3e-3, cosine, batch 128) for
``--epochs`` epochs, the network ``nb201`` with ``--channels`` and ``--cells-per-stage``,
initialisation and batch order seeded with ``--train-seed``. Nothing is tuned.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/nb201_ground_truth.py \\
        --output benchmarks/results/nb201_ground_truth_mnist1d.csv

A second run with the same output skips the cells it holds, so the table can be grown in
several sittings; a process with ``--reverse`` works from the other end at the same time.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from optuna_nas import data, spaces, training

FIELDS = ("arch", "n_params", "flops", "valid_accuracy", "test_accuracy", "seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of data.load, VALUE as JSON (e.g. data_seed=7 for MNIST-1D); repeatable",
    )
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--seed", type=int, default=2026, help="seed of the cell sample")
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="work from the end of the sample: a second process fills the table from there",
    )
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    space = spaces.create("nb201", channels=args.channels, cells_per_stage=args.cells_per_stage)
    dataset = data.load(args.dataset, seed=0, **spaces.parse_space_args(args.data_arg))
    rng = np.random.RandomState(args.seed)
    cells: list[str] = []
    while len(cells) < args.count:
        arch = space.from_params(space.sample_params(rng))
        string = space.to_nb201_string(arch)
        if string not in cells:
            cells.append(string)
    if not args.output.exists():
        args.output.parent.mkdir(parents=True, exist_ok=True)
        with args.output.open("w", newline="") as handle:
            csv.writer(handle).writerow(FIELDS)
    order = list(enumerate(cells))
    for i, string in reversed(order) if args.reverse else order:
        with args.output.open() as handle:  # read again: another process may have done it
            if string in {row["arch"] for row in csv.DictReader(handle)}:
                continue
        arch = space.from_nb201_string(string)
        training.seed_everything(args.train_seed)
        model = arch.build(dataset.input_shape, dataset.num_classes)
        start = time.perf_counter()
        result = training.fit(
            model,
            dataset,
            epochs=args.epochs,
            seed=args.train_seed,
            device="cpu",
            evaluate_test=True,
        )
        seconds = time.perf_counter() - start
        row = [
            string,
            result.n_params,
            result.flops,
            f"{result.valid_accuracy:.4f}",
            f"{result.test_accuracy:.4f}",
            f"{seconds:.1f}",
        ]
        with args.output.open("a", newline="") as handle:
            csv.writer(handle).writerow(row)
        print(f"{i + 1}/{len(cells)} {string} valid {result.valid_accuracy:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
