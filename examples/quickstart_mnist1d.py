"""Quick start: search a chain-structured space on MNIST-1D with plain Optuna.

This is the library as a user writes it: a search space turns a trial's ``suggest_*``
calls into an architecture, the architecture builds a ``torch.nn.Module``, and
:func:`optuna_nas.training.fit` trains it, reporting the validation curve to the trial so
that Optuna's ``MedianPruner`` can stop poor architectures early. The objective is an
ordinary Optuna objective; nothing else about the study is special.

After the search, the best architecture is rebuilt from the stored trial alone
(:meth:`optuna_nas.Architecture.from_trial`), retrained on train+valid and scored once on
the held-out test split.

MNIST-1D is generated locally and ``digits`` ships with scikit-learn, so nothing is
downloaded. Run it with::

    python examples/quickstart_mnist1d.py                      # 20 trials, in memory
    python examples/quickstart_mnist1d.py --n-trials 50 --storage sqlite:///quickstart.db
    python examples/quickstart_mnist1d.py --dataset digits --n-trials 5 --epochs 2

With ``--storage`` the study survives the process: run the command again to add trials,
or look at it with ``optuna-dashboard sqlite:///quickstart.db``.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence

import optuna

from optuna_nas import Architecture, data, spaces, training


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the search and the final retraining; returns the exit status."""
    args = _parser().parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    dataset = data.load(args.dataset, seed=args.seed)
    space = spaces.create("chain", max_layers=args.max_layers, filters=args.filters)
    print(
        f"Searching {space!r} on {dataset.name} {dataset.input_shape}: "
        f"{len(dataset.train)} train / {len(dataset.valid)} valid / {len(dataset.test)} test"
    )

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        # Seeding the initialisation per trial makes every trial repeatable on its own.
        training.seed_everything(args.seed + trial.number)
        model = arch.build(dataset.input_shape, dataset.num_classes)
        result = training.fit(
            model, dataset, trial=trial, epochs=args.epochs, seed=args.seed + trial.number
        )
        return result.valid_accuracy

    study = optuna.create_study(
        direction="maximize",
        storage=args.storage,
        study_name=args.study_name,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=args.seed),
        # fit() reports one step per epoch; judge a trial only after a quarter of its epochs.
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=max(1, args.epochs // 4)
        ),
    )
    study.optimize(objective, n_trials=args.n_trials)

    states = [trial.state for trial in study.trials]
    print(
        f"Trials: {len(states)} ({states.count(optuna.trial.TrialState.COMPLETE)} complete, "
        f"{states.count(optuna.trial.TrialState.PRUNED)} pruned)"
    )
    best = study.best_trial
    arch = Architecture.from_trial(best)
    print(
        f"Best trial #{best.number}: valid accuracy {best.value:.4f}, "
        f"{best.user_attrs['optuna_nas:n_params']} params"
    )
    print(f"Best architecture: {arch}")

    # The validation split has done its job of choosing; the final model learns from it too.
    full = dataclasses.replace(dataset, train=dataset.merged_train())
    retrain_epochs = args.retrain_epochs or args.epochs
    training.seed_everything(args.seed)
    model = arch.build(dataset.input_shape, dataset.num_classes)
    result = training.fit(model, full, epochs=retrain_epochs, seed=args.seed, evaluate_test=True)
    print(
        f"Test accuracy: {result.test_accuracy:.4f} (retrained on {len(full.train)} "
        f"train+valid examples, epochs: {retrain_epochs}, device: {result.device})"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Architecture search on MNIST-1D with plain Optuna and optuna-nas.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--n-trials", type=int, default=20, help="trials to run")
    parser.add_argument("--epochs", type=int, default=5, help="training epochs per trial")
    parser.add_argument(
        "--retrain-epochs",
        type=int,
        default=None,
        help="epochs of the final retraining (default: --epochs)",
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL, e.g. sqlite:///quickstart.db (default: in memory)",
    )
    parser.add_argument("--study-name", default="quickstart", help="study name in the storage")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampler, split and init")
    parser.add_argument(
        "--dataset", choices=["mnist1d", "digits"], default="mnist1d", help="dataset"
    )
    parser.add_argument("--max-layers", type=int, default=4, help="most layers of the chain")
    parser.add_argument(
        "--filters",
        type=int,
        nargs="+",
        default=[16, 32, 64],
        help="channel choices of the convolutions",
    )
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
