"""``optuna-nas best``: print or export the best architecture as JSON."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from optuna_nas import _keys
from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    load_study,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    best = sub.add_parser("best", help="print or export the best architecture as JSON")
    add_storage_args(best)
    best.add_argument("--output", "-o", default=None, help="write the JSON to this file")
    best.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas.spaces import Architecture
    from optuna_nas.study import best_trial

    study = load_study(args)
    try:
        best = best_trial(study)
        arch = Architecture.from_trial(best)
    except ValueError as err:
        raise CLIError(str(err)) from None
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
        Path(args.output).write_text(text + "\n")
        print(f"Wrote the best architecture (trial #{best.number}) to {args.output}")
    else:
        print(text)
    return 0
