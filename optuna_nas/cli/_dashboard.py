"""``optuna-nas dashboard``: serve the studies with optuna-dashboard and their artifacts."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    add_storage_args,
    port,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    board = sub.add_parser(
        "dashboard",
        help="serve the studies with optuna-dashboard and their artifact store",
        description="Start optuna-dashboard on the storage, with the artifact folder the "
        "study recorded, so that the architecture drawings are previewed.",
    )
    add_storage_args(board)
    board.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    board.add_argument("--port", type=port, default=8080, help="TCP port (default: 8080)")
    board.add_argument(
        "--artifact-dir", default=None, help="artifact folder (default: the study's)"
    )
    board.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas._artifacts import ArtifactError, default_artifact_dir
    from optuna_nas._storage import StorageError, mask_url, open_storage
    from optuna_nas.dashboard import find_artifact_dir, run_dashboard

    artifact_dir: Path | None
    try:
        storage = open_storage(args.storage, create=False, write=False)
        names = [s.study_name for s in storage.get_all_studies()]
        if args.artifact_dir is not None:
            artifact_dir = Path(args.artifact_dir).expanduser().resolve()
            if not artifact_dir.is_dir():
                raise CLIError(
                    f"artifact folder {str(artifact_dir)!r} does not exist; pass the folder "
                    "`optuna-nas search` wrote to, or leave --artifact-dir out"
                )
        else:
            artifact_dir = find_artifact_dir(storage, args.study_name)
        if args.study_name is not None and args.study_name not in names:
            raise CLIError(
                f"no study named {args.study_name!r} in the storage; it holds: "
                f"{', '.join(names) or 'none'}"
            )
    except (StorageError, ValueError) as err:
        raise CLIError(str(err)) from None
    if artifact_dir is None and default_artifact_dir(args.storage).is_dir():
        artifact_dir = default_artifact_dir(args.storage)
    elif artifact_dir is not None and not artifact_dir.is_dir():
        print(
            f"optuna-nas dashboard: the study's artifact folder {str(artifact_dir)!r} does not "
            "exist on this machine, so drawings are not shown; pass --artifact-dir",
            file=sys.stderr,
        )
        artifact_dir = None
    url = f"http://{args.host}:{args.port}/dashboard"
    if args.study_name is not None:
        url += f"/studies/{storage.get_study_id_from_name(args.study_name)}"
    print(
        f"optuna-dashboard for {mask_url(args.storage)} at {url}\n"
        f"artifacts: {artifact_dir if artifact_dir is not None else 'none found'}; "
        "press Ctrl-C to stop",
        flush=True,
    )
    try:
        run_dashboard(storage, host=args.host, port=args.port, artifact_dir=artifact_dir)
    except (ImportError, ArtifactError) as err:
        raise CLIError(str(err)) from None
    except OSError as err:
        raise CLIError(
            f"cannot serve on {args.host}:{args.port}: {err.strerror or err}; choose another "
            "--port or --host"
        ) from None
    except KeyboardInterrupt:
        print("optuna-nas dashboard: stopped", file=sys.stderr)
    return 0
