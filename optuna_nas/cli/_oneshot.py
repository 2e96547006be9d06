"""``optuna-nas oneshot``: train a supernet, search it, add the architecture to a study."""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    dataset_from_args,
    integer,
    positive_float,
    positive_int,
    resolve_artifact_dir,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    oneshot = sub.add_parser(
        "oneshot",
        help="one-shot search: train a supernet, search it with shared weights, train the "
        "architecture it finds as a trial of the study",
        description="Train a supernet of the space (or load --checkpoint), score --candidates "
        "architectures with its shared weights by regularized evolution, and train the best "
        "stand-alone as a completed trial of the study, beside the samplers' trials. With a "
        "gradient method as --strategy (darts, gdas, drnas, beta-darts), search by gradient "
        "descent on architecture weights for --epochs instead; their history is saved as a "
        "dashboard plot.",
    )
    oneshot.add_argument("--space", default="nb201", help="a space with a supernet: nb201")
    oneshot.add_argument(
        "--space-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="space argument, VALUE as JSON (e.g. channels=8); repeatable",
    )
    oneshot.add_argument("--dataset", default="mnist1d", help="dataset name or path")
    oneshot.add_argument("--target", default=None, help="label column of a .csv dataset")
    oneshot.add_argument("--resolution", type=positive_int, default=None, help="resize images")
    oneshot.add_argument("--data-root", default=None, help="local root of torchvision datasets")
    oneshot.add_argument(
        "--strategy",
        default="fair",
        help="supernet training (spos, fair) or gradient method (darts, gdas, drnas, beta-darts)",
    )
    oneshot.add_argument(
        "--epochs", type=positive_int, default=10, help="supernet or gradient-search epochs"
    )
    oneshot.add_argument(
        "--candidates", type=positive_int, default=100, help="architectures scored by the search"
    )
    oneshot.add_argument(
        "--score",
        default="loss",
        choices=("accuracy", "loss"),
        help="weight-sharing score of spos and fair: validation accuracy or negative loss",
    )
    oneshot.add_argument(
        "--proxy",
        default=None,
        help="a zero-cost proxy averaged with the weight-sharing score, each on a robust "
        "scale; spos and fair only (default zico there; 'none' scores by shared weights alone)",
    )
    oneshot.add_argument(
        "--final-epochs",
        type=positive_int,
        default=20,
        help="epochs of the derived architecture's stand-alone trial (the study's, if stored)",
    )
    oneshot.add_argument("--batch-size", type=positive_int, default=128)
    oneshot.add_argument("--lr", type=positive_float, default=3e-3, help="peak AdamW rate")
    oneshot.add_argument(
        "--checkpoint",
        default=None,
        help="a supernet checkpoint (supernet.pt from a study's artifacts) instead of training",
    )
    add_storage_args(oneshot)
    oneshot.add_argument("--seed", type=integer, default=0, help="seeds supernet and search")
    oneshot.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    oneshot.add_argument("--artifact-dir", default=None, help="folder for checkpoints")
    oneshot.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    oneshot.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import oneshot, spaces
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir, open_artifact_store
    from optuna_nas._storage import StorageError, StorageMissingError, mask_url, open_storage
    from optuna_nas.study import TrainingConfig, create_study, oneshot_search
    from optuna_nas.training import select_device

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Everything is checked before the storage is written, so bad input leaves no study.
    try:
        if args.space in spaces.available() and args.space not in oneshot.SUPERNET_SPACES:
            raise ValueError(
                f"--space {args.space}: this space has no supernet; one-shot search supports "
                f"{', '.join(oneshot.SUPERNET_SPACES)} (search {args.space} with "
                "`optuna-nas search`)"
            )
        space = spaces.create(args.space, **spaces.parse_space_args(args.space_arg))
        strategies = (*oneshot.STRATEGIES, *oneshot.GRADIENT_METHODS)
        if args.strategy not in strategies:
            raise ValueError(
                f"--strategy {args.strategy!r} does not fit the {space.name} supernet; choose "
                f"one of: {', '.join(strategies)}"
            )
        gradient = args.strategy in oneshot.GRADIENT_METHODS
        if args.proxy is not None and args.proxy not in (*oneshot.PROXIES, "none"):
            raise ValueError(
                f"--proxy {args.proxy!r} is no zero-cost proxy; choose one of: "
                f"{', '.join(oneshot.PROXIES)}, or none"
            )
        if gradient and args.proxy not in (None, "none"):
            raise ValueError(
                f"--proxy serves spos and fair; --strategy {args.strategy} derives its "
                "architecture from its own weights, so leave --proxy out"
            )
        # Shared weights are averaged with ZiCo unless --proxy says otherwise.
        proxy = None if gradient or args.proxy == "none" else (args.proxy or "zico")
        if gradient and args.checkpoint is not None:
            raise ValueError(
                f"--checkpoint serves spos and fair; --strategy {args.strategy} trains its own "
                "supernet, so leave --checkpoint out"
            )
        select_device(args.device)
        dataset_config = dataset_from_args(args, seed=args.seed)
        name = dataset_config.name
        dataset = dataset_config.load()
        checkpoint = None
        if args.checkpoint is not None:
            try:
                checkpoint = Path(args.checkpoint).read_bytes()
            except OSError as err:
                raise ValueError(f"--checkpoint {args.checkpoint}: {err.strerror}") from None
            oneshot.load_supernet(checkpoint, space, dataset.input_shape, dataset.num_classes)
        training = TrainingConfig(
            epochs=args.final_epochs, batch_size=args.batch_size, lr=args.lr, device=args.device
        )
        study_name = args.study_name or f"{space.name}-{Path(name).stem}-oneshot"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                storage = open_storage(args.storage, create=False)
            except StorageMissingError:
                storage = open_storage(args.storage, create=True)
        artifact_dir = resolve_artifact_dir(args, storage, study_name) or default_artifact_dir(
            args.storage
        )
        store = open_artifact_store(artifact_dir)
        study = create_study(
            storage=storage,
            study_name=study_name,
            space=space,
            dataset=dataset_config,
            training=training,
            sampler="random",
            pruner="none",
            seed=args.seed,
            artifact_dir=store.root,
        )
    except (StorageError, ArtifactError, ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None

    how = (
        f"{args.strategy}, {args.epochs} epochs"
        if gradient
        else f"{args.strategy} supernet, "
        + ("from the checkpoint" if checkpoint else f"{args.epochs} epochs")
        + f", {args.candidates} candidates"
        + f", {args.score} score"
        + (f" with {proxy}" if proxy else "")
    )
    print(
        f"One-shot search of {space!r} on {dataset.name}: {how}; study={study_name!r}, "
        f"storage={mask_url(args.storage)}"
    )
    result = oneshot_search(
        study,
        space,
        dataset,
        training,
        strategy=args.strategy,
        epochs=args.epochs,
        candidates=args.candidates,
        metric=args.score,
        proxy=proxy,
        seed=args.seed,
        checkpoint=checkpoint,
        artifact_store=store,
        progress=not args.no_progress,
    )
    arch = space.from_params(result.params)
    if result.oneshot_score is None:
        print(f"Gradient search: {result.supernet_seconds:.0f} s")
        if result.plot:
            print(f"Architecture weights by epoch: the dashboard plot {result.plot}")
    else:
        print(
            f"Supernet: {result.supernet_seconds:.0f} s; search: {result.search_seconds:.0f} s;"
            + (
                f" combined score {result.oneshot_score:.4f} ({args.score} with {proxy})"
                if proxy
                else f" one-shot score {result.oneshot_score:.4f}"
            )
        )
    value = "failed" if result.value is None else f"valid accuracy {result.value:.4f}"
    print(f"Derived architecture, trial #{result.trial} ({value}): {arch}", file=sys.stdout)
    return 0
