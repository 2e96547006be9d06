"""What every subcommand shares: the error type, storage options, argument types."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from optuna_nas import _keys

DEFAULT_STORAGE = "sqlite:///optuna_nas.db"


class CLIError(Exception):
    """Bad input: printed as one line, exit status 2."""


def add_storage_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--storage", default=DEFAULT_STORAGE, help=f"storage URL (default: {DEFAULT_STORAGE})"
    )
    parser.add_argument(
        "--study-name", default=None, help="study name (search default: SPACE-DATASET)"
    )


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        name = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"must be {name}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return int(value)


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be zero or a positive integer, got {text}")
    return int(value)


def integer(text: str) -> int:
    return int(_number(text, int))


def port(text: str) -> int:
    value = _number(text, int)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return int(value)


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be zero or positive, got {text}")
    return float(value)


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return float(value)


def add_heartbeat_args(parser: argparse.ArgumentParser) -> None:
    """``--heartbeat-interval`` and ``--grace-period``, the same for search and worker."""
    parser.add_argument(
        "--heartbeat-interval",
        type=positive_int,
        default=10,
        metavar="SEC",
        help="seconds between heartbeats of a running trial, on SQLite, PostgreSQL and "
        "MySQL (default: 10)",
    )
    parser.add_argument(
        "--grace-period",
        type=positive_int,
        default=30,
        metavar="SEC",
        help="a trial without heartbeat for SEC s (its process was killed) is failed and "
        "retried once by the next search or worker (default: 30)",
    )


def resolve_artifact_dir(
    args: argparse.Namespace, storage: Any, study_name: str | None
) -> Path | None:
    """``--artifact-dir``, else the folder the study recorded, else ``None``.

    Raises:
        CLIError: If ``--artifact-dir`` names another folder than the study recorded.
    """
    from optuna_nas.dashboard import find_artifact_dir

    try:
        stored = find_artifact_dir(storage, study_name)
    except ValueError:  # a new study (unknown name) or several folders: nothing recorded
        stored = None
    if args.artifact_dir is None:
        return stored
    given = Path(args.artifact_dir).expanduser().resolve()
    if stored is not None and stored != given:
        raise CLIError(
            f"study {study_name!r} keeps its artifacts in {str(stored)!r}, not {str(given)!r}; "
            f"pass --artifact-dir {stored} or leave it out"
        )
    return given


def explain_no_best(study: Any) -> str:
    """Why a study has no best trial: none ran, or all N failed and the commonest reason."""
    from collections import Counter

    trials = study.get_trials(deepcopy=False)
    if not trials:
        return (
            f"study {study.study_name!r} holds no trial yet; run `optuna-nas search` or "
            "`optuna-nas worker` on it first"
        )
    failed = [t for t in trials if t.state.name == "FAIL"]
    if len(failed) == len(trials):
        reasons = Counter(
            str(_keys.read(t.user_attrs, _keys.FAIL_REASON) or "an exception in the objective")
            for t in failed
        )
        reason, count = reasons.most_common(1)[0]
        return (
            f"all {len(trials)} trials of study {study.study_name!r} failed; the most common "
            f"reason ({count} of {len(trials)}): {reason}. Run one trial with --n-trials 1 "
            "and read its error, or see the runbook"
        )
    states = Counter(t.state.name.lower() for t in trials)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    return f"study {study.study_name!r} has no completed trial yet ({summary})"


def print_best(study: Any, best: Any) -> None:
    from optuna_nas.spaces import Architecture

    arch = Architecture.from_trial(best)
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states)))
    test = _keys.read(best.user_attrs, _keys.TEST_ACCURACY)
    print(f"Trials: {len(states)} ({counts})")
    print(
        f"Best trial #{best.number}: valid accuracy {best.value:.4f}"
        + (f", test accuracy {test:.4f}" if test is not None else "")
        + f", {_keys.read(best.user_attrs, _keys.N_PARAMS, '?')} params"
    )
    print(f"Best architecture: {arch}")


def load_study(args: argparse.Namespace, *, write: bool = False) -> Any:
    """The study ``--storage`` and ``--study-name`` name; the storage must exist."""
    import optuna

    from optuna_nas._storage import StorageError, open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = open_storage(args.storage, create=False, write=write)
    except StorageError as err:
        raise CLIError(str(err)) from None
    names = [s.study_name for s in storage.get_all_studies()]
    name = args.study_name
    if name is None:
        if len(names) != 1:
            raise CLIError(
                f"the storage holds {len(names)} studies ({', '.join(names) or 'none'}); "
                "choose one with --study-name"
            )
        name = names[0]
    if name not in names:
        raise CLIError(
            f"no study named {name!r} in the storage; it holds: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=name, storage=storage)


def dataset_from_args(args: argparse.Namespace, *, seed: int) -> Any:
    """The :class:`~optuna_nas.DatasetConfig` that ``--dataset`` (a name or a path, made
    absolute so that workers elsewhere find it), ``--target``, ``--resolution`` and
    ``--data-root`` describe."""
    from optuna_nas import data
    from optuna_nas.study import DatasetConfig

    name = args.dataset
    if name not in data.available() and data.is_path(name):
        name = str(Path(name).expanduser().resolve())
    options: dict[str, Any] = {"seed": seed}
    for option in ("target", "resolution"):
        if getattr(args, option) is not None:
            options[option] = getattr(args, option)
    if args.data_root:
        options["root"] = str(Path(args.data_root).resolve())
    return DatasetConfig(name, options)
