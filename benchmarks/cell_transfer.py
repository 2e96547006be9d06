"""Cell transfer: a cell searched on one dataset, retrained bigger on another.

1. Search: an ``nb201`` cell in a small network (``--search-channels``, one cell per
   stage) on ``--search-dataset`` (digits by default), with the CLI's defaults (``gp``
   sampler, ``median`` pruner), ``--trials`` trials of ``--search-epochs`` epochs. The
   best trial by validation accuracy is the searched cell.
2. Transfer: the searched cell and ``--random-cells`` cells drawn uniformly from the space
   are each retrained in a bigger network (``--cells`` per stage, ``--channels``) on
   ``--target-dataset`` (MNIST-1D by default), with one recipe: train + valid, cosine
   schedule, random crop (no flip), ``--epochs`` epochs, for every seed of ``--seeds``
   (:func:`optuna_nas.study.train_final`, the function ``optuna-nas train-best`` runs).
3. The searched cell's mean test accuracy is ranked among the random cells' means.

Nothing here was tuned on the target dataset: the recipe is the library's defaults, and the
search never sees the target.

Usage::

    python benchmarks/cell_transfer.py --output benchmarks/results/cell_transfer.md

Rows are printed as they finish and kept in ``<output>.jsonl``; a second run with the same
output skips the rows it holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch

import optuna_nas
from optuna_nas import data, spaces
from optuna_nas.study import ArchitectureObjective, DatasetConfig, TrainingConfig, train_final
from optuna_nas.training import Augment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-dataset", default="digits")
    parser.add_argument("--target-dataset", default="mnist1d")
    parser.add_argument("--search-channels", type=int, default=8)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--search-epochs", type=int, default=8)
    parser.add_argument("--cells", type=int, default=2)
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--random-cells", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seed", type=int, default=0, help="seed of the search")
    parser.add_argument("--output", type=Path, default=Path("cell_transfer.md"))
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows_path = args.output.with_suffix(".jsonl")
    rows = _read_rows(rows_path)
    started = time.time()

    search = rows.get("search")
    if search is None:
        search = _search(args)
        _append(rows_path, "search", search)
        rows["search"] = search
    print(
        f"search: trial {search['trial']} valid {search['valid']:.4f} test {search['test']:.4f} "
        f"({search['seconds']:.0f} s): {search['architecture']['params']}",
        flush=True,
    )

    target = data.load(args.target_dataset, seed=0)
    space = spaces.create("nb201", channels=args.search_channels, cells_per_stage=1)
    rng = np.random.RandomState(12345)
    cells = {"searched": search["architecture"]["params"]}
    for i in range(args.random_cells):
        cells[f"random-{i:02d}"] = space.sample_params(rng)
    for name, params in cells.items():
        arch = space.from_params(params).scaled(cells=args.cells, channels=args.channels)
        for seed in args.seeds:
            key = f"{name}/{seed}"
            if key in rows:
                continue
            result = train_final(
                arch,
                target,
                epochs=args.epochs,
                augment=Augment(flip=False),
                seed=seed,
                device="cpu",
            )
            row = {
                "cell": name,
                "seed": seed,
                "params": params,
                "test": result.test_accuracy,
                "n_params": result.n_params,
                "seconds": result.seconds,
            }
            _append(rows_path, key, row)
            rows[key] = row
            print(f"{key}: test {result.test_accuracy:.4f} ({result.seconds:.0f} s)", flush=True)

    text = _report(args, rows, space, time.time() - started)
    args.output.write_text(text)
    print(text)
    return 0


def _search(args: argparse.Namespace) -> dict[str, Any]:
    space = spaces.create("nb201", channels=args.search_channels, cells_per_stage=1)
    dataset_config = DatasetConfig(args.search_dataset, {"seed": args.seed})
    training = TrainingConfig(epochs=args.search_epochs, device="cpu")
    start = time.time()
    with tempfile.TemporaryDirectory() as folder:
        study = optuna_nas.create_study(
            storage=f"sqlite:///{folder}/search.db",
            study_name="transfer-search",
            space=space,
            dataset=dataset_config,
            training=training,
            sampler="gp",
            pruner="median",
            seed=args.seed,
            artifact_dir=folder,
        )
        objective = ArchitectureObjective(
            space, dataset_config.load(), training, seed=args.seed, save_checkpoints=False
        )
        study.optimize(objective, n_trials=args.trials)
        best = optuna_nas.best_trial(study)
        arch = optuna_nas.Architecture.from_trial(best, space)
        n_complete = sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        return {
            "trial": best.number,
            "valid": best.value,
            "test": best.user_attrs.get("optuna_nas:test_accuracy", float("nan")),
            "architecture": arch.to_dict(),
            "complete": n_complete,
            "seconds": time.time() - start,
        }


def _report(args: argparse.Namespace, rows: dict[str, Any], space: Any, seconds: float) -> str:
    by_cell: dict[str, list[float]] = {}
    for key, row in rows.items():
        if key != "search":
            by_cell.setdefault(row["cell"], []).append(row["test"])
    means = {cell: statistics.mean(v) for cell, v in by_cell.items()}
    searched = means["searched"]
    randoms = sorted((v for c, v in means.items() if c != "searched"), reverse=True)
    better = sum(v > searched for v in randoms)
    percentile = 100.0 * (len(randoms) - better) / len(randoms)
    top_decile = better <= int(0.1 * len(randoms))
    search = rows["search"]
    arch = space.from_params(search["architecture"]["params"])
    lines = [
        "# Cell transfer",
        "",
        f"Command: `python {shlex.join(sys.argv)}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CPU; {seconds / 60:.0f} min for this run (rows reused from earlier runs excluded).",
        "",
        "Tuning disclosure: nothing was tuned for this benchmark. The search uses the CLI's "
        "defaults (gp, median pruner); the final recipe is the library's defaults (AdamW "
        "3e-3, cosine, batch 128, random crop, no flip). The target dataset is never seen "
        "by the search.",
        "",
        "## Protocol",
        "",
        f"- Search: `nb201`, {args.search_channels} channels, 1 cell per stage, on "
        f"{args.search_dataset}, {args.trials} trials x {args.search_epochs} epochs. Best "
        f"trial #{search['trial']}: valid {100 * search['valid']:.2f}%, test "
        f"{100 * search['test']:.2f}%; cell `{space.to_nb201_string(arch)}`.",
        f"- Transfer: {args.cells} cells per stage, {args.channels} channels, on "
        f"{args.target_dataset}, {args.epochs} epochs on train + valid, seeds "
        f"{', '.join(map(str, args.seeds))}; {args.random_cells} cells drawn uniformly "
        "from the space (seed 12345) retrained the same way.",
        "",
        "## Result",
        "",
        f"- Searched cell: **{100 * searched:.2f}%** mean test accuracy on {args.target_dataset}.",
        f"- Random cells: best {100 * randoms[0]:.2f}%, median "
        f"{100 * statistics.median(randoms):.2f}%, worst {100 * randoms[-1]:.2f}%.",
        f"- {better} of {len(randoms)} random cells are better: the searched cell is at the "
        f"{percentile:.0f}th percentile. Target (top 10%): "
        f"**{'met' if top_decile else 'not met'}**.",
        "",
        "| cell | nb201 string | params | test accuracy per seed | mean |",
        "| --- | --- | --- | --- | --- |",
    ]
    order = sorted(means, key=lambda c: -means[c])
    for cell in order:
        seeds = [r for k, r in rows.items() if k != "search" and r["cell"] == cell]
        string = space.to_nb201_string(space.from_params(seeds[0]["params"])).replace("|", "\\|")
        accs = ", ".join(f"{100 * r['test']:.2f}" for r in seeds)
        name = f"**{cell}**" if cell == "searched" else cell
        lines.append(
            f"| {name} | `{string}` | {seeds[0]['n_params']:,} | {accs} | "
            f"{100 * means[cell]:.2f} |"
        )
    return "\n".join(lines) + "\n"


def _read_rows(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        rows[record["key"]] = record["row"]
    return rows


def _append(path: Path, key: str, row: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps({"key": key, "row": row}) + "\n")


if __name__ == "__main__":
    sys.exit(main())
