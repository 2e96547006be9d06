"""Checks that today's code reproduces stored NAS-Bench-201 runs seed for seed.

Usage:
    python benchmarks/nb201_reproduce.py NEW.json STORED.json [NEW.json STORED.json ...]

``NEW.json`` is the ``--json`` output of an ``optuna-nas benchmark nb201`` run with the
same settings as the command in ``STORED.json`` (fewer seeds is fine). Every (sampler,
seed) run present in both must end on the same cell after the same number of queries
(the same cell has the same table values, which the files do not copy). Exits with
status 1 and lists the differences otherwise.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _runs(path: str) -> dict[tuple[str, int], dict[str, Any]]:
    return {(r["sampler"], r["seed"]): r for r in json.loads(Path(path).read_text())["runs"]}


def main(paths: list[str]) -> int:
    if not paths or len(paths) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    failed = False
    for new_path, stored_path in zip(paths[::2], paths[1::2], strict=True):
        new, stored = _runs(new_path), _runs(stored_path)
        shared = sorted(set(new) & set(stored))
        different = [
            key
            for key in shared
            if (new[key]["best_arch"], new[key]["n_queries"])
            != (stored[key]["best_arch"], stored[key]["n_queries"])
        ]
        print(
            f"{new_path} against {stored_path}: {len(shared) - len(different)} of "
            f"{len(shared)} runs identical"
        )
        for key in different:
            print(f"  differs: {key}: {new[key]['best_arch']} vs {stored[key]['best_arch']}")
        failed |= bool(different) or not shared
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
