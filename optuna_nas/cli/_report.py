"""``optuna-nas report``: a study as Markdown with plots and architecture drawings."""

from __future__ import annotations

import argparse
from typing import Any

from optuna_nas.cli._common import CLIError, add_storage_args, positive_int


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    report = sub.add_parser(
        "report",
        help="write a study report: Markdown, plots and the top architectures drawn",
        description="Write report.md with the best value over trials and over time, accuracy "
        "against parameters with the Pareto front, the top architectures drawn, the pruner's "
        "savings and the recorded retrainings.",
    )
    add_storage_args(report)
    report.add_argument(
        "--output", default=None, help="folder to write (default: report-STUDY_NAME)"
    )
    report.add_argument("--top", type=positive_int, default=5, help="architectures to draw")
    report.add_argument("--format", choices=("png", "svg"), default="png", help="plot format")
    report.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise CLIError("report needs matplotlib; pip install 'optuna-nas[report]'") from None
    from optuna_nas.cli._common import load_study
    from optuna_nas.export import write_report

    study = load_study(args)
    folder = args.output or f"report-{study.study_name}"
    try:
        path = write_report(study, folder, top=args.top, image_format=args.format)
    except ValueError as err:
        raise CLIError(str(err)) from None
    print(f"Report written to {path}")
    return 0
