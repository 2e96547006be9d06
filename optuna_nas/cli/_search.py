"""``optuna-nas search``: run or resume an architecture search."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    positive_float,
    positive_int,
    print_best,
    resolve_artifact_dir,
    save_dashboard_plots,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
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
        "--n-trials", type=positive_int, default=100, help="most trials to run (default: 100)"
    )
    search.add_argument(
        "--timeout",
        type=positive_float,
        default=540.0,
        help="stop starting trials after SEC seconds (default: 540)",
    )
    search.add_argument("--epochs", type=positive_int, default=20, help="epochs per trial")
    search.add_argument("--batch-size", type=positive_int, default=128)
    search.add_argument("--lr", type=positive_float, default=3e-3, help="peak AdamW rate")
    add_storage_args(search)
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
        type=positive_float,
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
    search.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data, pruners, samplers, spaces
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir, open_artifact_store
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas.study import (
        ArchitectureObjective,
        DatasetConfig,
        OOMRetryCallback,
        TrainingConfig,
        best_trial,
        create_study,
    )
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
        artifact_dir = resolve_artifact_dir(args, storage, study_name) or default_artifact_dir(
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
    save_dashboard_plots(study)
    try:
        best = best_trial(study)
    except ValueError as err:
        raise CLIError(str(err)) from None
    print_best(study, best)
    print(f"Artifacts (architecture drawings, checkpoints): {artifact_store.root}")
    print("Inspect the study with:")
    print(f"  optuna-nas dashboard --storage {mask_url(args.storage)} --study-name {study_name}")
    return 0
