"""``optuna-nas train-best``: retrain a searched architecture as the final network.

It takes the best trial (or ``--trial N``), optionally on another dataset and in a deeper
or wider network, trains it on train + valid with the final recipe, records the test
accuracy on the study and can export the model as a bundle.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    dataset_from_args,
    integer,
    load_study,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    train = sub.add_parser(
        "train-best",
        help="retrain the best (or any) architecture as the final network, record its test "
        "accuracy, export it",
        description="Retrain a searched architecture on train + valid and report its test "
        "accuracy on the study. The cell can move to another dataset and into a deeper or "
        "wider network (--cells, --channels, --width-multiplier). An interrupted run resumes "
        "from its last epoch when the same command runs again.",
    )
    add_storage_args(train)
    train.add_argument("--trial", type=non_negative_int, default=None, help="default: the best")
    train.add_argument(
        "--dataset",
        default=None,
        help="dataset name or path (image folder, .npz, .csv); default: the study's",
    )
    train.add_argument("--target", default=None, help="label column of a .csv dataset")
    train.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help="resize images to N x N (default: as stored with the study, else none)",
    )
    train.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    train.add_argument(
        "--cells",
        "--layers",
        type=positive_int,
        default=None,
        help="cells of the final network (cells_per_stage of nb201, layers of darts; "
        "default: as searched)",
    )
    train.add_argument(
        "--channels",
        type=positive_int,
        default=None,
        help="channels of the final network (default: as searched)",
    )
    train.add_argument(
        "--width-multiplier",
        type=positive_float,
        default=1.0,
        help="factor on every layer's width (any space; default: 1)",
    )
    train.add_argument("--epochs", type=positive_int, default=None, help="default: the study's")
    train.add_argument(
        "--batch-size", type=positive_int, default=None, help="default: the study's"
    )
    train.add_argument("--lr", type=positive_float, default=None, help="default: the study's")
    train.add_argument(
        "--no-augment",
        action="store_true",
        help="train without random crop, flip and cutout (default: crop for images and "
        "sequences, flip for images)",
    )
    train.add_argument("--no-flip", action="store_true", help="no random mirroring of images")
    train.add_argument(
        "--cutout", type=non_negative_int, default=0, help="side of the erased square (default: 0)"
    )
    train.add_argument(
        "--label-smoothing", type=non_negative_float, default=0.0, help="default: 0"
    )
    train.add_argument(
        "--seed", type=integer, default=0, help="seeds initialisation, batch order, augmentation"
    )
    train.add_argument("--device", default=None, help="default: the study's")
    train.add_argument(
        "--checkpoint",
        default=None,
        help="epoch checkpoint file (default: in the study's artifact folder, named after the "
        "trial and recipe); removed when the run finishes",
    )
    train.add_argument(
        "--export", default=None, metavar="PATH", help="write the model bundle to folder PATH"
    )
    train.add_argument(
        "--export-program",
        action="store_true",
        help="also write model.pt2 (torch.export) in the bundle, checked against the model",
    )
    train.add_argument(
        "--onnx",
        action="store_true",
        help="also write model.onnx in the bundle, checked with ONNX Runtime",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas import _keys
    from optuna_nas.export import BundleError
    from optuna_nas.study import record_retrain, retrain, study_settings
    from optuna_nas.training import Augment

    if (args.export_program or args.onnx) and not args.export:
        raise CLIError("--export-program and --onnx write into the bundle; add --export PATH")
    if args.onnx:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise CLIError(
                "--onnx needs onnx, onnxscript and onnxruntime; pip install 'optuna-nas[export]'"
            ) from None
    study = load_study(args, write=True)
    try:
        _, dataset_config, _ = study_settings(study)
        dataset = _load_dataset(args, dataset_config)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    augment = None
    if not args.no_augment and len(dataset.input_shape) in (2, 3):
        augment = Augment(
            flip=len(dataset.input_shape) == 3 and not args.no_flip, cutout=args.cutout
        )
    command = _command(args.argv)
    checkpoint = (
        Path(args.checkpoint) if args.checkpoint else _default_checkpoint(args, study, _keys)
    )
    resuming = checkpoint.exists()
    try:
        result = retrain(
            study,
            trial=args.trial,
            dataset=dataset,
            cells=args.cells,
            channels=args.channels,
            width_multiplier=args.width_multiplier,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            augment=augment,
            label_smoothing=args.label_smoothing,
            seed=args.seed,
            device=args.device,
            checkpoint=checkpoint,
            progress=not args.no_progress,
            command=command,
            on_start=lambda number, arch, epochs: _announce(
                number, arch, epochs, dataset, checkpoint, resuming
            ),
        )
    except KeyboardInterrupt:
        print(
            f"optuna-nas: interrupted; run the same command to resume from {checkpoint}",
            file=sys.stderr,
        )
        return 130
    except ValueError as err:
        raise CLIError(str(err)) from None
    record_retrain(study, result)
    checkpoint.unlink(missing_ok=True)
    print(
        f"Test accuracy: {result.test_accuracy:.4f} ({result.n_params:,} params, "
        f"{result.flops:,} FLOPs, {result.seconds:.1f} s on {result.settings['device']}); "
        f"recorded on study {study.study_name!r}"
    )
    if args.export:
        from optuna_nas.export import Bundle, export_model

        assert result.model is not None
        bundle = Bundle(
            architecture=result.architecture.to_dict(),
            input_shape=tuple(dataset.input_shape),
            num_classes=dataset.num_classes,
            width_multiplier=args.width_multiplier,
            input_mean=dataset.input_mean,
            input_std=dataset.input_std,
            classes=dataset.classes,
            metadata={"study": study.study_name, **result.record()},
        )
        try:
            folder = export_model(
                result.model, args.export, bundle, program=args.export_program, onnx=args.onnx
            )
        except BundleError as err:
            raise CLIError(str(err)) from None
        print(f"Exported to {folder}/ (load with optuna_nas.load_model({str(folder)!r}))")
    return 0


def _command(argv: list[str]) -> str:
    """The command line as typed, with any password in a storage URL masked."""
    from optuna_nas._storage import mask_url

    shown = []
    for i, word in enumerate(argv):
        if i and argv[i - 1] == "--storage":
            word = mask_url(word)
        elif word.startswith("--storage="):
            word = "--storage=" + mask_url(word.split("=", 1)[1])
        shown.append(word)
    return "optuna-nas " + shlex.join(shown)


def _load_dataset(args: argparse.Namespace, dataset_config: Any) -> Any:
    if args.dataset is None:
        if args.target is not None:
            raise ValueError("--target goes with --dataset PATH.csv")
        overrides: dict[str, Any] = {}
        if args.data_root:
            overrides["root"] = str(Path(args.data_root).resolve())
        if args.resolution:
            overrides["resolution"] = args.resolution
        return dataset_config.load(**overrides)
    return dataset_from_args(args, seed=dataset_config.options.get("seed", 0)).load()


def _default_checkpoint(args: argparse.Namespace, study: Any, keys: Any) -> Path:
    """A file named after the trial and every setting that changes the run."""
    recipe = {
        key: getattr(args, key)
        for key in (
            "trial",
            "dataset",
            "target",
            "resolution",
            "cells",
            "channels",
            "width_multiplier",
            "epochs",
            "batch_size",
            "lr",
            "no_augment",
            "no_flip",
            "cutout",
            "label_smoothing",
            "seed",
        )
    }
    digest = hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    folder = study.user_attrs.get(keys.STUDY_ARTIFACT_DIR) or ".optuna-nas"
    trial = "best" if args.trial is None else f"trial{args.trial}"
    return Path(folder) / "retrain" / f"{study.study_name}-{trial}-{digest}.pt"


def _announce(
    number: int, arch: Any, epochs: int, dataset: Any, checkpoint: Path, resuming: bool
) -> None:
    checkpoint.parent.mkdir(parents=True, exist_ok=True)  # only once everything is checked
    print(f"Retraining trial #{number}: {arch}")
    print(
        f"on {dataset.name}: {len(dataset.train) + len(dataset.valid)} examples (train + valid), "
        f"{len(dataset.test)} test, {epochs} epochs"
        + (f"; resuming from {checkpoint}" if resuming else f"; checkpoint {checkpoint}")
    )
