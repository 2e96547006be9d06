"""The ``optuna-nas`` command line: a thin shell over the library.

Subcommands, one module each (``add_parser(sub)`` and ``run(args)``):

* ``search``: run (or resume) an architecture search and print the best architecture;
* ``best``: print or export the best architecture of a stored study as JSON;
* ``train-best``: retrain the best (or any) architecture on train+valid, possibly on
  another dataset and scaled up, record its test accuracy on the study and export it;
* ``report``: write a study report (Markdown, plots, the top architectures drawn);
* ``oneshot``: train a supernet, search it with shared weights, and train the architecture
  it finds as a trial of the study;
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
from typing import NoReturn

from optuna_nas.cli import (
    _benchmark,
    _best,
    _dashboard,
    _oneshot,
    _report,
    _search,
    _train_best,
    _worker,
)
from optuna_nas.cli._common import DEFAULT_STORAGE, CLIError

SUBCOMMANDS = (
    _search,
    _best,
    _train_best,
    _report,
    _oneshot,
    _benchmark,
    _worker,
    _dashboard,
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``optuna-nas`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.handler(args))
    except CLIError as err:
        print(f"optuna-nas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("optuna-nas: interrupted; finished trials are saved", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``| head``): nothing left to say
        sys.stderr.close()
        return 0
    except Exception as err:
        reason = _storage_refusal(err, getattr(args, "storage", None))
        if reason is None:
            raise
        print(f"optuna-nas: error: {reason}", file=sys.stderr)
        return 2


def _storage_refusal(err: Exception, url: str | None) -> str | None:
    """One line for a database that refused the command (read-only, locked, gone), or
    ``None`` when ``err`` is not such a refusal."""
    cause: BaseException | None = err
    while cause is not None and not type(cause).__module__.startswith("sqlalchemy"):
        cause = cause.__cause__
    if cause is None:
        return None
    from optuna_nas._storage import mask_url, redact

    first = str(getattr(cause, "orig", None) or cause).splitlines()[0]
    where = f" {mask_url(url)!r}" if url else ""
    hint = "check that this user can write the database file and its folder"
    if "readonly" not in first and "read-only" not in first:
        hint = "check that the database server is running and the URL is right"
    return f"the storage{where} refused the command: {redact(first, url or '')}; {hint}"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``optuna-nas`` with every subcommand."""
    from optuna_nas import __version__

    parser = _Parser(prog="optuna-nas", description="Neural architecture search on Optuna.")
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    for command_parser in sub.choices.values():
        _say_defaults(command_parser)
    return parser


class _Parser(argparse.ArgumentParser):
    """Bad arguments give one line (what is wrong, which option), not the usage too;
    ``--help`` still shows the usage. Subcommand parsers are of this class as well."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def _say_defaults(parser: argparse.ArgumentParser) -> None:
    """Appends its default to the help of every option that takes a value and whose help
    does not give it already, so that ``--help`` shows every default."""
    for action in parser._actions:
        if not action.option_strings or action.nargs == 0 or action.required:
            continue
        if action.help in (None, argparse.SUPPRESS) or "default" in action.help:
            continue
        default = "none" if action.default in (None, []) else "%(default)s"
        action.help = f"{action.help} (default: {default})"


__all__ = ["DEFAULT_STORAGE", "CLIError", "build_parser", "main"]
