"""The ``optuna-nas`` command line: a thin shell over the library.

Subcommands, one module each (``add_parser(sub)`` and ``run(args)``):

* ``search``: run (or resume) an architecture search and print the best architecture;
* ``best``: print or export the best architecture of a stored study as JSON;
* ``train-best``: rebuild the best architecture from storage, retrain it on train+valid
  and report its test accuracy;
* ``benchmark``: compare samplers on a tabular benchmark (NAS-Bench-201) over many seeds
  and print a table of the reported test accuracies;
* ``worker``: start and supervise worker processes (one per GPU slot, or CPU workers)
  that run trials of a stored study, e.g. on several machines against one PostgreSQL;
* ``dashboard``: serve the studies with optuna-dashboard and the artifact folder their
  trials wrote to (architecture drawings, checkpoints).

Bad input exits with status 2 and a one-line error, before anything is written. This
module imports neither torch nor Optuna: ``optuna-nas --help`` answers at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from optuna_nas.cli import (
    _benchmark,
    _best,
    _dashboard,
    _search,
    _train_best,
    _worker,
)
from optuna_nas.cli._common import DEFAULT_STORAGE, CLIError

SUBCOMMANDS = (_search, _best, _train_best, _benchmark, _worker, _dashboard)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-nas`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except CLIError as err:
        print(f"optuna-nas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optuna-nas: interrupted; finished trials are saved", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``optuna-nas`` with every subcommand."""
    from optuna_nas import __version__

    parser = argparse.ArgumentParser(
        prog="optuna-nas", description="Neural architecture search on Optuna."
    )
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


__all__ = ["DEFAULT_STORAGE", "CLIError", "build_parser", "main"]
