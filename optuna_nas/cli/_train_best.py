"""``optuna-nas train-best``: retrain the best architecture, report its test accuracy."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    integer,
    load_study,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    train = sub.add_parser(
        "train-best", help="retrain the best architecture on train+valid, report test accuracy"
    )
    add_storage_args(train)
    train.add_argument("--epochs", type=positive_int, default=None, help="default: the study's")
    train.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    train.add_argument("--seed", type=integer, default=0)
    train.add_argument("--device", default=None, help="default: the study's")
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas.spaces import Architecture
    from optuna_nas.study import best_trial, study_settings
    from optuna_nas.training import fit, seed_everything

    study = load_study(args)
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
