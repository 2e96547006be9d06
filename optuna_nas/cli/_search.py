"""``optuna-nas search``: run or resume an architecture search.

Resuming is continuing: the settings a study was created with come from the study when
they are not given, a given setting that would change a trial's value must equal the
stored one, and the sampler is seeded from the seed and the number of trials stored, so
the resumed run does not propose the first run's architectures again.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path
from typing import Any

from optuna_nas import _keys
from optuna_nas.cli._common import (
    CLIError,
    add_heartbeat_args,
    add_storage_args,
    explain_no_best,
    integer,
    non_negative_float,
    positive_float,
    positive_int,
    print_best,
    resolve_artifact_dir,
)
from optuna_nas.cli._interrupt import DeferredInterrupt, InterruptingPruner, fail_interrupted
from optuna_nas.cli._settings import (
    DEFAULTS,
    check_combinations,
    existing_attrs,
    resolve_settings,
)

_STORED = "when resuming, the study's"


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    search = sub.add_parser(
        "search",
        help="run or resume an architecture search",
        description="Run an architecture search, or resume the study of that name: settings "
        "not given come from the study, and a given setting that changes a trial's value "
        "(space, dataset, epochs, batch size, lr, seed, weight inheritance) must match it.",
    )
    search.add_argument(
        "--space", default=None, help=f"search space name (default: chain; {_STORED})"
    )
    search.add_argument(
        "--space-arg",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="space argument, VALUE as JSON (e.g. max_layers=4 or 'filters=[16,32]'); "
        f"repeatable (default: none; {_STORED})",
    )
    search.add_argument(
        "--dataset",
        default=None,
        help="dataset name, or the path of your own data: an image folder (one subfolder per "
        f"class), a .npz with x and y, or a .csv with --target (default: mnist1d; {_STORED})",
    )
    search.add_argument(
        "--target", default=None, help=f"label column of a .csv dataset ({_STORED})"
    )
    search.add_argument(
        "--resolution",
        type=positive_int,
        default=None,
        help=f"resize images to N x N (needed for folders of mixed sizes; {_STORED})",
    )
    search.add_argument(
        "--data-root", default=None, help="local root of torchvision datasets (default: none)"
    )
    search.add_argument(
        "--sampler",
        default=None,
        help=f"sampler name (default: gp, the best average rank on the sampler suite; {_STORED})",
    )
    search.add_argument(
        "--sampler-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="sampler argument, VALUE as JSON (e.g. population_size=20); repeatable; "
        "stored with the study for its workers (default: none)",
    )
    search.add_argument("--pruner", default=None, help=f"pruner name (default: rank; {_STORED})")
    search.add_argument(
        "--pruner-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="pruner argument, VALUE as JSON (e.g. n_startup_trials=10); repeatable; "
        "stored with the study for its workers (default: none)",
    )
    search.add_argument(
        "--n-trials",
        type=positive_int,
        default=100,
        help="run N more trials in this process, whatever the study holds already "
        "(default: 100; `worker --total-trials` counts the study's trials instead)",
    )
    search.add_argument(
        "--timeout",
        type=positive_float,
        default=540.0,
        help="stop starting trials after SEC seconds (default: 540)",
    )
    search.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help=f"epochs per trial (default: 20; {_STORED})",
    )
    search.add_argument(
        "--batch-size", type=positive_int, default=None, help=f"default: 128; {_STORED}"
    )
    search.add_argument(
        "--lr",
        type=positive_float,
        default=None,
        help=f"peak AdamW rate (default: 0.003; {_STORED})",
    )
    add_storage_args(search)
    search.add_argument(
        "--seed",
        type=integer,
        default=None,
        help=f"seed of the sampler, the splits and the initialization (default: 0; {_STORED})",
    )
    search.add_argument(
        "--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default: auto)"
    )
    search.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    search.add_argument(
        "--artifact-dir",
        default=None,
        help="folder for the trials' drawings and checkpoints (default: the study's, else "
        "optuna_nas_artifacts next to a SQLite file or in the working directory)",
    )
    search.add_argument(
        "--inherit-weights",
        action="store_const",
        const=True,
        default=None,
        help="start each child of a sampler that records parents (evolution) from its "
        "parent's checkpoint: tensors whose name and shape match are copied, and one "
        f"whose shape a mutation changed (width, kernel) is transferred in part (default: "
        f"off; {_STORED})",
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
        action="store_const",
        const=True,
        default=None,
        help="with --inherit-weights, copy only tensors whose name and shape match; "
        f"start the ones a mutation reshaped fresh (default: off; {_STORED})",
    )
    search.add_argument(
        "--estimate-rung",
        default=None,
        metavar="PROXY",
        help="score each architecture with a zero-cost proxy (synflow, naswot, ...) before "
        "it trains, as the lowest rung of --pruner fidelity, which prunes there only once "
        f"the proxy's rank correlation is measured and trusted ({_STORED})",
    )
    search.add_argument(
        "--no-checkpoints",
        action="store_const",
        const=True,
        default=None,
        help="do not save each trial's weights (saves disk; incompatible with "
        f"--inherit-weights) (default: off; {_STORED})",
    )
    add_heartbeat_args(search)
    search.add_argument(
        "--plots-every",
        type=non_negative_float,
        default=60.0,
        metavar="SEC",
        help="refresh the dashboard's plots after a trial when SEC seconds passed since "
        "the last refresh, and when the search stops (default: 60; 0: after every trial)",
    )
    search.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import optuna

    from optuna_nas import data, pruners, samplers, spaces
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir, open_artifact_store
    from optuna_nas._compat import stale_trial_retry_callback
    from optuna_nas._storage import (
        StorageError,
        StorageMissingError,
        mask_url,
        open_storage,
    )
    from optuna_nas.dashboard import PlotRefresher
    from optuna_nas.study import (
        ArchitectureObjective,
        DatasetConfig,
        ObjectiveConfig,
        OOMRetryCallback,
        TrainingConfig,
        best_trial,
        check_resume,
        create_study,
    )
    from optuna_nas.training import select_device

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space_name = args.space or DEFAULTS["space"]
    if args.dataset and args.dataset not in data.available() and data.is_path(args.dataset):
        args.dataset = str(Path(args.dataset).expanduser().resolve())  # workers elsewhere too
    dataset_label = Path(args.dataset).stem if args.dataset else DEFAULTS["dataset"]
    study_name = args.study_name or f"{space_name}-{dataset_label}"
    # Everything is validated before the storage is written, so bad input leaves no study.
    try:

        def open_it(create: bool) -> Any:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return open_storage(
                    args.storage,
                    heartbeat_interval=args.heartbeat_interval,
                    grace_period=args.grace_period,
                    heartbeat_stale_trial_callback=stale_trial_retry_callback(max_retry=1),
                    create=create,
                )

        try:
            storage = open_it(create=False)
        except StorageMissingError:
            storage = None  # created once everything else is checked
        attrs = None if storage is None else existing_attrs(storage, study_name)
        settings = resolve_settings(args, attrs)
        check_combinations(settings)
        if settings["space_config"] is not None:
            space = spaces.create(settings["space"], **settings["space_config"])
        else:
            space_kwargs = spaces.parse_space_args(settings["space_args"] or [])
            space = spaces.create(settings["space"], **space_kwargs)
        if settings["dataset"] not in data.available() and not data.is_path(settings["dataset"]):
            raise ValueError(
                f"unknown dataset {settings['dataset']!r}; choose one of: "
                f"{', '.join(data.available())}, or pass the path of an image folder, a .npz "
                "or a .csv"
            )
        sampler_kwargs = settings.get("sampler_kwargs") or spaces.parse_space_args(
            settings.get("sampler_args", []), option="--sampler-arg"
        )
        pruner_kwargs = settings.get("pruner_kwargs") or spaces.parse_space_args(
            settings.get("pruner_args", []), option="--pruner-arg"
        )
        if settings["estimate_rung"] is not None:
            pruner_kwargs = {**pruner_kwargs, "estimate_rung": True}
        # Built here to refuse bad names and arguments before the storage is written;
        # create_study builds them again from the names, which it stores for workers.
        for kind, build in (
            (
                "sampler",
                lambda: samplers.create(
                    settings["sampler"], seed=settings["seed"], space=space, **sampler_kwargs
                ),
            ),
            (
                "pruner",
                lambda: pruners.create(
                    settings["pruner"], max_step=settings["epochs"] - 1, **pruner_kwargs
                ),
            ),
        ):
            try:
                build()
            except TypeError as err:  # a value of the wrong type reached the constructor
                raise ValueError(
                    f"--{kind}-arg: a value has the wrong type for {kind} "
                    f"{settings[kind]!r} ({err}); values are read as JSON, so write numbers "
                    "bare (n=5, rate=0.1), booleans as true/false and text in quotes"
                ) from None
        select_device(args.device)
        training = TrainingConfig(
            epochs=settings["epochs"],
            batch_size=settings["batch_size"],
            lr=settings["lr"],
            device=args.device,
        )
        objective_config = ObjectiveConfig(
            seed=settings["seed"],
            inherit_weights=settings["inherit_weights"],
            inherit_lr_scale=settings["inherit_lr_scale"],
            inherit_partial=not settings["no_partial_inherit"],
            save_checkpoints=not settings["no_checkpoints"],
            estimate_rung=settings["estimate_rung"],
        )
        options: dict[str, Any] = {"seed": settings["seed"]}
        if args.data_root:
            options["root"] = str(Path(args.data_root).resolve())
        for option in ("target", "resolution"):
            value = getattr(args, option)
            if value is None and attrs is not None and args.dataset is None:
                value = (attrs.get(_keys.STUDY_DATASET) or {}).get("options", {}).get(option)
            if value is not None:
                options[option] = value
        dataset_config = DatasetConfig(settings["dataset"], options)
        if attrs is not None:
            check_resume(
                optuna.load_study(study_name=study_name, storage=storage),
                dataset_config,
                training,
                objective_config,
            )
        dataset = dataset_config.load()
        if storage is None:
            storage = open_it(create=True)
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
            sampler=settings["sampler"],
            pruner=settings["pruner"],
            seed=settings["seed"],
            artifact_dir=artifact_store.root,
            objective=objective_config,
            sampler_kwargs=sampler_kwargs,
            pruner_kwargs=pruner_kwargs,
        )
    except (StorageError, ArtifactError, ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None

    n_before = len(study.get_trials(deepcopy=False))
    print(
        f"{'Resuming' if n_before else 'Searching'} {space!r} on {settings['dataset']} "
        f"({len(dataset.train)} train / {len(dataset.valid)} valid / {len(dataset.test)} "
        f"test), sampler={settings['sampler']}, pruner={settings['pruner']}, "
        f"epochs={settings['epochs']}, storage={mask_url(args.storage)}, "
        f"study={study_name!r}" + (f", {n_before} trials stored" if n_before else "")
    )
    objective = ArchitectureObjective(
        space,
        dataset,
        training,
        seed=objective_config.seed,
        artifact_store=artifact_store,
        inherit_weights=objective_config.inherit_weights,
        inherit_lr_scale=objective_config.inherit_lr_scale,
        inherit_partial=objective_config.inherit_partial,
        save_checkpoints=objective_config.save_checkpoints,
        estimate_rung=objective_config.estimate_rung,
    )
    plots = PlotRefresher(every_seconds=args.plots_every)
    current: list[int] = []

    interrupt = DeferredInterrupt()
    study.pruner = InterruptingPruner(study.pruner, interrupt)  # type: ignore[assignment]

    def tracked(trial: optuna.Trial) -> float:
        current.append(trial.number)
        interrupt.in_trial = True
        try:
            return objective(trial)
        except KeyboardInterrupt:
            # Recorded while the trial still runs; Optuna then fails it. Its log of the
            # failure (with a traceback) would only repeat what the exit line says.
            trial.set_user_attr(_keys.FAIL_REASON, "interrupted")
            optuna.logging.set_verbosity(optuna.logging.ERROR)
            raise
        finally:
            interrupt.in_trial = False

    try:
        interrupt.install()
        study.optimize(
            tracked,
            n_trials=args.n_trials,
            timeout=args.timeout,
            show_progress_bar=not args.no_progress,
            callbacks=[OOMRetryCallback(), plots],
        )
    except KeyboardInterrupt:
        fail_interrupted(study, current[-1] if current else None)
        print(
            "optuna-nas: interrupted; finished trials are saved and the interrupted trial "
            "will run again at the next search or worker",
            file=sys.stderr,
        )
        return 130
    finally:
        interrupt.uninstall()
        plots.refresh(study)  # however the search stopped
    try:
        best = best_trial(study)
    except ValueError:
        raise CLIError(explain_no_best(study)) from None
    print_best(study, best)
    print(f"Artifacts (architecture drawings, checkpoints): {artifact_store.root}")
    print("Inspect the study with:")
    print(f"  optuna-nas dashboard --storage {mask_url(args.storage)} --study-name {study_name}")
    return 0
