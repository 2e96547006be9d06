"""``optuna-nas best``: the top trials as a table, or the best architecture as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from optuna_nas import _keys
from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    explain_no_best,
    load_study,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    best = sub.add_parser(
        "best", help="show the top trials, or export the best architecture as JSON"
    )
    add_storage_args(best)
    best.add_argument(
        "--top",
        type=positive_int,
        default=5,
        metavar="K",
        help="rows of the table: the K best completed trials (default: 5)",
    )
    best.add_argument(
        "--json", action="store_true", help="print the best architecture as JSON instead"
    )
    best.add_argument(
        "--output",
        "-o",
        default=None,
        help="write the best architecture's JSON to this file; missing folders are created "
        "(default: print)",
    )
    best.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas.spaces import Architecture
    from optuna_nas.study import best_trial

    study = load_study(args)
    try:
        best = best_trial(study)
    except ValueError:
        raise CLIError(explain_no_best(study)) from None
    try:
        arch = Architecture.from_trial(best)
    except ValueError as err:
        raise CLIError(str(err)) from None
    if not args.json and not args.output:
        print(top_table(study, args.top))
        return 0
    payload = {
        "study": study.study_name,
        "trial": best.number,
        "valid_accuracy": best.value,
        "test_accuracy": _keys.read(best.user_attrs, _keys.TEST_ACCURACY),
        "n_params": _keys.read(best.user_attrs, _keys.N_PARAMS),
        "flops": _keys.read(best.user_attrs, _keys.FLOPS),
        "description": str(arch),
        "architecture": arch.to_dict(),
    }
    text = json.dumps(payload, indent=2, sort_keys=True)
    if args.output:
        path = Path(args.output).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
        except OSError as err:
            raise CLIError(
                f"cannot write {str(path)!r}: {err.strerror or err}; choose another --output"
            ) from None
        print(f"Wrote the best architecture (trial #{best.number}) to {path}")
    else:
        print(text)
    return 0


def top_table(study: Any, k: int) -> str:
    """The ``k`` best completed trials: number, value, state, duration, architecture."""
    import math

    from optuna.trial import TrialState

    from optuna_nas.spaces import Architecture

    done = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    done.sort(key=lambda t: (-t.value, t.number))
    rows = [("trial", "valid acc", "state", "duration", "architecture")]
    for t in done[:k]:
        seconds = t.duration.total_seconds() if t.duration is not None else None
        try:
            arch = str(Architecture.from_trial(t))
        except ValueError:
            arch = " ".join(f"{n}={v}" for n, v in t.params.items())
        rows.append(
            (
                f"#{t.number}",
                f"{t.value:.4f}",
                t.state.name.lower(),
                "?" if seconds is None else f"{seconds:.1f} s",
                arch if len(arch) <= 80 else arch[:77] + "...",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    n_all = len(study.get_trials(deepcopy=False))
    lines.append(f"{len(done)} completed of {n_all} trials in study {study.study_name!r}")
    return "\n".join(lines)
