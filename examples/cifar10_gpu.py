"""Architecture search on CIFAR-10 on a GPU, with low-fidelity evaluation.

The NAS-Bench-201 cell space is searched on CIFAR-10 read from a local torchvision root
(nothing is downloaded). Each trial trains on a cheaper view of the data, fewer training
images (``--data-fraction``) at a lower resolution (``--resolution``), because a ranking
of architectures needs far less compute than their final accuracy. On CUDA,
:func:`optuna_nas.training.fit` keeps the data on the GPU, uses bfloat16 autocast and
``channels_last``, and with ``--compile`` wraps the model in ``torch.compile``.

Every trial prints its training throughput (samples/s) and peak GPU memory, the numbers
to watch when choosing the batch size and the network width.

Put CIFAR-10 in place once (on a machine with network access)::

    mkdir -p ~/data && cd ~/data
    curl -O https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz
    tar xzf cifar-10-python.tar.gz           # creates ~/data/cifar-10-batches-py/

then run::

    export OPTUNA_NAS_DATA_DIR=~/data
    python examples/cifar10_gpu.py --n-trials 30 --epochs 12 --resolution 16
    python examples/cifar10_gpu.py --channels 16 --cells-per-stage 5 --compile
    python examples/cifar10_gpu.py --space darts --space-arg channels=16 --space-arg layers=8

Any dataset of :func:`optuna_nas.data.available` works, e.g. ``--dataset digits
--device cpu`` for a smoke test without CIFAR-10. If the files are missing, the script
prints where torchvision expects them and exits with status 2.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import optuna
import torch

from optuna_nas import Architecture, data, spaces, training

# User attributes that training.fit() sets on each trial.
THROUGHPUT_ATTR = "optuna_nas:samples_per_second"
PEAK_ATTR = "optuna_nas:peak_gpu_memory_mb"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the search; returns the exit status (2 for bad input or missing data)."""
    args = _parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        device = training.select_device(args.device)
        space = spaces.create(args.space, **_space_kwargs(args))
        dataset = data.load(
            args.dataset,
            root=args.data_root,
            seed=args.seed,
            data_fraction=args.data_fraction,
            resolution=args.resolution,
        )
    except (ValueError, FileNotFoundError) as err:
        print(f"cifar10_gpu.py: error: {err}", file=sys.stderr)
        return 2
    if device.type == "cuda":
        # Fixed input shapes: let cuDNN pick the fastest convolution algorithms once.
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        print(f"Device: {torch.cuda.get_device_name(device)}")
    else:
        note = "" if torch.cuda.is_available() else " (CUDA is not available here)"
        print(f"Device: {device}{note}")
    print(
        f"Searching {space!r} on {dataset.name} {dataset.input_shape}: "
        f"{len(dataset.train)} train / {len(dataset.valid)} valid images, "
        f"epochs per trial: {args.epochs}"
    )

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        training.seed_everything(args.seed + trial.number)
        model = arch.build(dataset.input_shape, dataset.num_classes)
        result = training.fit(
            model,
            dataset,
            trial=trial,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            device=device,
            seed=args.seed + trial.number,
            compile=args.compile,
        )
        return result.valid_accuracy

    study = optuna.create_study(
        direction="maximize",
        storage=args.storage,
        study_name=args.study_name,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(1, args.epochs // 4)
        ),
    )
    study.optimize(objective, n_trials=args.n_trials, callbacks=[_print_trial])

    measured = [t for t in study.trials if THROUGHPUT_ATTR in t.user_attrs]
    throughput = [t.user_attrs[THROUGHPUT_ATTR] for t in measured]
    # fit() resets CUDA's peak statistics per model, so the run's peak is the trials' max.
    peaks = [t.user_attrs[PEAK_ATTR] for t in measured if PEAK_ATTR in t.user_attrs]
    if throughput:
        print(
            f"Throughput: median {statistics.median(throughput):.0f} samples/s over "
            f"{len(throughput)} trials (min {min(throughput):.0f}, max {max(throughput):.0f})"
        )
    print(
        f"Peak GPU memory: {max(peaks):.1f} MiB"
        if peaks
        else "Peak GPU memory: n/a (not trained on CUDA)"
    )
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        print("No trial completed; see the warnings above.", file=sys.stderr)
        return 1
    best = study.best_trial
    print(f"Best trial #{best.number}: valid accuracy {best.value:.4f}")
    print(f"Best architecture: {Architecture.from_trial(best)}")
    return 0


def _print_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    attrs = trial.user_attrs
    value = f"valid accuracy {trial.value:.4f}" if trial.value is not None else "no value"
    memory = attrs.get(PEAK_ATTR)
    print(
        f"Trial #{trial.number} {trial.state.name.lower()}: {value}, "
        f"{attrs.get(THROUGHPUT_ATTR, math.nan):.0f} samples/s, "
        f"{attrs.get('n_params', '?')} params"
        + (f", peak GPU memory {memory:.1f} MiB" if memory is not None else ""),
        flush=True,
    )


def _space_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``--channels``/``--cells-per-stage`` shape nb201; ``--space-arg`` any space."""
    kwargs: dict[str, Any] = {}
    if args.space == "nb201":
        kwargs = {"channels": args.channels, "cells_per_stage": args.cells_per_stage}
    kwargs.update(spaces.parse_space_args(args.space_arg))
    return kwargs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Architecture search on CIFAR-10 on a GPU with optuna-nas.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--data-root",
        default=os.environ.get(data.DATA_DIR_ENV),
        help=f"directory holding cifar-10-batches-py/ (default: ${data.DATA_DIR_ENV}, "
        f"else {data.DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--dataset", choices=data.available(), default="cifar10", help="dataset to search on"
    )
    parser.add_argument(
        "--space", choices=spaces.available(), default="nb201", help="search space"
    )
    parser.add_argument("--channels", type=int, default=16, help="nb201: first-stage channels")
    parser.add_argument(
        "--cells-per-stage", type=int, default=2, help="nb201: cells in each of the 3 stages"
    )
    parser.add_argument(
        "--space-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="space argument, VALUE as JSON, overriding the flags above; repeatable",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cuda, cpu")
    parser.add_argument("--epochs", type=int, default=10, help="training epochs per trial")
    parser.add_argument("--n-trials", type=int, default=20, help="trials to run")
    parser.add_argument("--batch-size", type=int, default=256, help="examples per step")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak AdamW learning rate")
    parser.add_argument(
        "--resolution",
        type=int,
        default=None,
        help="train and score at this image side length, e.g. 16 (default: full size)",
    )
    parser.add_argument(
        "--data-fraction",
        type=float,
        default=0.5,
        help="share of the training images each trial trains on, in (0, 1]",
    )
    parser.add_argument("--compile", action="store_true", help="wrap models in torch.compile")
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL, e.g. sqlite:///cifar10.db (default: in memory)",
    )
    parser.add_argument("--study-name", default="cifar10-gpu", help="study name in the storage")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampler, split and init")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
