"""How long ``optuna-nas --help`` takes to import, in this checkout and in others.

Usage:
    python benchmarks/import_time.py [--tree PATH ...] [--repeats 7] [--output FILE]

Each tree is put first on ``sys.path`` of a fresh interpreter that builds the CLI's
argument parser, as ``optuna-nas --help`` does, and reports whether PyTorch was imported.
The median wall time of ``--repeats`` runs is printed per tree.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

_CODE = (
    "import sys; sys.path.insert(0, {tree!r}); "
    "import optuna_nas.cli as cli; "
    "build = getattr(cli, 'build_parser', None) or getattr(cli, '_parser'); build(); "
    "print('torch' in sys.modules)"
)


def measure(tree: Path, repeats: int) -> tuple[float, bool]:
    """Median seconds to build the parser from ``tree``, and whether torch was imported."""
    times = []
    imported = False
    for _ in range(repeats):
        start = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CODE.format(tree=str(tree))],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        imported = out.stdout.strip() == "True"
    return statistics.median(times), imported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", default=[], help="another checkout")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    trees = [Path(__file__).resolve().parents[1], *map(Path, args.tree)]
    lines = [
        f"python {platform.python_version()}, {platform.machine()}, {args.repeats} runs each",
        "",
        "| tree | median s | imports torch |",
        "| --- | ---: | --- |",
    ]
    for tree in trees:
        seconds, torch_imported = measure(tree.resolve(), args.repeats)
        lines.append(f"| `{tree}` | {seconds:.3f} | {torch_imported} |")
        print(lines[-1], flush=True)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
