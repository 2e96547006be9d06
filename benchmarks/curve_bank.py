"""Builds a bank of real epoch-wise learning curves for replaying pruners offline.

Architectures are drawn at random (seeded) from three of our spaces, ``chain``,
``multibranch`` and ``hierarchical`` (narrow settings that train fast on a CPU, listed in
:data:`SPACES`), and each is trained from scratch with :func:`optuna_nas.training.fit` on
MNIST-1D and on scikit-learn digits (``optuna_nas.data.load``, split seed 0) for
``--epochs`` epochs on the CPU with one thread. Every epoch's validation accuracy is
recorded, with the test accuracy after the last epoch, the parameter count and the wall
time. ``fit`` runs a cosine schedule over all epochs, so the curves are what a real
search with that budget produces.

One CSV row per (dataset, architecture):

========== ===================================================================
column     meaning
========== ===================================================================
dataset    ``mnist1d`` or ``digits``
space      search-space name
index      draw number within (dataset, space); also the seed of the draw
arch       :meth:`optuna_nas.Architecture.to_json` (space, its config, params)
n_params   trainable parameters
epochs     epochs trained
seconds    wall time of the whole fit (shared machine: compare ratios only)
test_acc   test accuracy after the last epoch
valid      validation accuracy per epoch, space-separated, 4 decimals
========== ===================================================================

The script appends and skips rows already in the file, so an interrupted run continues
where it stopped. Work is interleaved over datasets and spaces, so a partial bank is
balanced. Draws that repeat an architecture already in the bank are skipped (the
index still advances).

Usage::

    nohup nice -n 10 python benchmarks/curve_bank.py \\
        --output benchmarks/data/curve_bank.csv --per-space 45 --epochs 30 &
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from optuna_nas import data, spaces, training  # noqa: E402

DATASETS = ("mnist1d", "digits")

SPACES: dict[str, dict[str, Any]] = {
    "chain": {"max_layers": 5, "filters": [4, 8, 16, 32], "units": [16, 32, 64]},
    "multibranch": {"max_layers": 4, "filters": [4, 8, 16, 32], "units": [16, 32, 64]},
    "hierarchical": {
        "channels": 8,
        "cells": 1,
        "num_motifs": 3,
        "motif_nodes": 3,
        "cell_nodes": 4,
    },
}
"""Space name -> arguments for :func:`optuna_nas.spaces.create`."""

FIELDS = (
    "dataset",
    "space",
    "index",
    "arch",
    "n_params",
    "epochs",
    "seconds",
    "test_acc",
    "valid",
)


def _done(path: Path) -> tuple[set[tuple[str, str, int]], set[tuple[str, str]]]:
    keys: set[tuple[str, str, int]] = set()
    archs: set[tuple[str, str]] = set()
    if not path.exists():
        return keys, archs
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            keys.add((row["dataset"], row["space"], int(row["index"])))
            archs.add((row["dataset"], row["arch"]))
    return keys, archs


def _draw(space: spaces.SearchSpace, index: int) -> Any:
    rng = np.random.RandomState(1000 + index)
    return space.from_params(space.sample_params(rng))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/data/curve_bank.csv"))
    parser.add_argument("--per-space", type=int, default=40, help="draws per dataset and space")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    args = parser.parse_args(argv)
    if args.per_space < 1 or args.epochs < 2:
        parser.error("--per-space must be >= 1 and --epochs >= 2")

    torch.set_num_threads(1)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    keys, archs = _done(args.output)
    new_file = not args.output.exists() or args.output.stat().st_size == 0
    loaded = {name: data.load(name, seed=0) for name in args.datasets}
    built = {name: spaces.create(name, **kw) for name, kw in SPACES.items()}

    with args.output.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
            fh.flush()
        for index in range(args.per_space):
            for space_name, space in built.items():
                arch = _draw(space, index)
                arch_json = arch.to_json()
                for dataset_name, dataset in loaded.items():
                    if (dataset_name, space_name, index) in keys:
                        continue
                    if (dataset_name, arch_json) in archs:
                        print(f"skip duplicate {dataset_name} {space_name} #{index}", flush=True)
                        continue
                    training.seed_everything(index)
                    model = arch.build(dataset.input_shape, dataset.num_classes)
                    start = time.perf_counter()
                    result = training.fit(
                        model,
                        dataset,
                        epochs=args.epochs,
                        batch_size=args.batch_size,
                        device="cpu",
                        seed=index,
                        evaluate_test=True,
                    )
                    seconds = time.perf_counter() - start
                    curve = result.learning_curve
                    if result.fail_reason is not None or len(curve) != args.epochs:
                        print(f"failed {dataset_name} {space_name} #{index}", flush=True)
                        continue
                    writer.writerow(
                        {
                            "dataset": dataset_name,
                            "space": space_name,
                            "index": index,
                            "arch": arch_json,
                            "n_params": result.n_params,
                            "epochs": args.epochs,
                            "seconds": f"{seconds:.2f}",
                            "test_acc": f"{result.test_accuracy:.4f}",
                            "valid": " ".join(f"{v:.4f}" for v in curve),
                        }
                    )
                    fh.flush()
                    keys.add((dataset_name, space_name, index))
                    archs.add((dataset_name, arch_json))
                    print(
                        f"{dataset_name} {space_name} #{index}: valid {curve[-1]:.4f} "
                        f"test {result.test_accuracy:.4f} params {result.n_params} "
                        f"{seconds:.1f}s",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
