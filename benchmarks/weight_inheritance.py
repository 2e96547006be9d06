"""Weight inheritance against training from scratch, on the children of an evolution.

One regularized-evolution study runs the chain space on MNIST-1D with every trial trained
from scratch for ``--epochs`` epochs; :class:`optuna_nas.ArchitectureObjective` saves each
trial's weights to a real artifact folder. Every child of the evolution (a trial with a
``parent_trial``) is then trained a second time with the same recipe, seed, batch order
and epoch budget, but starting from its parent's checkpoint
(:func:`optuna_nas.training.load_checkpoint` and ``fit(init_state_dict=...)``). The
from-scratch curve is the child's own trial in the study, so both sides of each pair
differ only in the starting weights.

Per child, the target is the accuracy the from-scratch run ends with. The epochs each run
needs to first reach it are compared; the saving is ``1 - inherited / scratch``. A child
whose inherited run never reaches the target counts as needing all ``--epochs`` epochs (at
most the budget, so its saving is at most zero), which favours training from scratch.

Unless ``--short-fraction`` is 0, a second inherited run per child trains on a cosine
schedule cut by that fraction (30% fewer epochs by default), since a user who inherits
would set fewer epochs rather than stop early: its final accuracy is compared with the
full-length scratch run.

Usage::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/weight_inheritance.py --epochs 20 \\
        --population 10 --children 30 --threads 1 \\
        --output benchmarks/results/weight_inheritance.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
import torch

from optuna_nas import (
    ArchitectureObjective,
    TrainingConfig,
    data,
    open_artifact_store,
    spaces,
    training,
)
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.spaces import Architecture

REPORT_EPOCHS = (1, 2, 5, 10)


def epochs_to_reach(curve: Sequence[float], target: float) -> int | None:
    """The first epoch (1-based) whose accuracy is at least ``target``, or ``None``."""
    for epoch, value in enumerate(curve, start=1):
        if value >= target - 1e-12:
            return epoch
    return None


def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    dataset = data.load(args.dataset, seed=args.seed)
    space = spaces.create("chain")
    config = TrainingConfig(epochs=args.epochs, device="cpu")
    store = open_artifact_store(folder / "artifacts")
    study = optuna.create_study(
        storage=f"sqlite:///{folder / 'study.db'}",
        direction="maximize",
        pruner=optuna.pruners.NopPruner(),
        sampler=RegularizedEvolutionSampler(
            population_size=args.population,
            sample_size=max(2, args.population // 2),
            seed=args.seed,
        ),
    )
    objective = ArchitectureObjective(space, dataset, config, seed=args.seed, artifact_store=store)
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.population + args.children)
    search_seconds = time.perf_counter() - start
    print(f"search: {len(study.trials)} trials in {search_seconds:.0f} s", file=sys.stderr)

    short_epochs = max(1, math.floor(args.epochs * (1 - args.short_fraction) + 1e-9))
    children = []
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        parent = trial.user_attrs.get("parent_trial")
        if parent is None:
            continue
        scratch = [trial.intermediate_values[e] for e in range(args.epochs)]
        common = (study, trial, parent, space, dataset, store, args.seed)
        inherited = _train_inherited(*common, args.epochs, args.inherit_lr_scale)
        short = (
            _train_inherited(*common, short_epochs, args.inherit_lr_scale)
            if args.short_fraction > 0
            else None
        )
        target = scratch[-1]
        children.append(
            {
                "trial": trial.number,
                "parent": parent,
                "architecture": str(Architecture.from_trial(trial, space)),
                "inherited_tensors": inherited["inherited_tensors"],
                "model_tensors": inherited["model_tensors"],
                "scratch_curve": scratch,
                "inherited_curve": inherited["curve"],
                "short_curve": None if short is None else short["curve"],
                "target": target,
                "scratch_epochs": epochs_to_reach(scratch, target),
                "inherited_epochs": epochs_to_reach(inherited["curve"], target),
            }
        )
        c = children[-1]
        print(
            f"child #{trial.number} (parent #{parent}, {c['inherited_tensors']}/"
            f"{c['model_tensors']} tensors): target {target:.4f} reached after "
            f"{c['scratch_epochs']} scratch / {c['inherited_epochs']} inherited epochs"
            + (
                ""
                if short is None
                else f"; {short_epochs}-epoch run ends at {short['curve'][-1]:.4f}"
            ),
            file=sys.stderr,
        )
    return {
        "epochs": args.epochs,
        "short_epochs": short_epochs,
        "inherit_lr_scale": args.inherit_lr_scale,
        "search_seconds": search_seconds,
        "total_seconds": time.perf_counter() - start,
        "n_trials": len(study.trials),
        "children": children,
    }


def _train_inherited(
    study: optuna.Study,
    trial: optuna.trial.FrozenTrial,
    parent: int,
    space: spaces.SearchSpace,
    dataset: data.Dataset,
    store: Any,
    base_seed: int,
    epochs: int,
    lr_scale: float,
) -> dict[str, Any]:
    # The same seeds as the trial's own from-scratch run in ArchitectureObjective.
    seed = base_seed + trial.number
    training.seed_everything(seed)
    model = Architecture.from_trial(trial, space).build(dataset.input_shape, dataset.num_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", training.InheritanceWarning)
        state = training.load_checkpoint(study, parent, store)
    assert state is not None
    result = training.fit(
        model,
        dataset,
        epochs=epochs,
        device="cpu",
        seed=seed,
        init_state_dict=state,
        inherit_lr_scale=lr_scale,
    )
    return {
        "curve": result.learning_curve,
        "inherited_tensors": result.inherited_tensors,
        "model_tensors": len(model.state_dict()),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    epochs = result["epochs"]
    children = result["children"]
    savings = []
    partial_savings = []
    reached = 0
    for c in children:
        inherited = c["inherited_epochs"]
        reached += inherited is not None
        savings.append(1 - min(inherited or epochs, epochs) / c["scratch_epochs"])
        if c["inherited_tensors"] < c["model_tensors"]:
            partial_savings.append(savings[-1])
    has_short = all(c["short_curve"] is not None for c in children)
    short_final = [c["short_curve"][-1] for c in children] if has_short else []
    scratch_final = [c["scratch_curve"][-1] for c in children]
    at = {
        e: (
            statistics.mean(c["scratch_curve"][e - 1] for c in children),
            statistics.mean(c["inherited_curve"][e - 1] for c in children),
        )
        for e in (*REPORT_EPOCHS, epochs)
        if e <= epochs
    }
    return {
        "n_children": len(children),
        "reached": reached,
        "mean_saving": statistics.mean(savings),
        "median_saving": statistics.median(savings),
        "at_least_30": sum(s >= 0.3 for s in savings),
        "n_partial": len(partial_savings),
        "partial_mean_saving": statistics.mean(partial_savings) if partial_savings else None,
        "mean_scratch_epochs": statistics.mean(c["scratch_epochs"] for c in children),
        "mean_inherited_epochs": statistics.mean(
            min(c["inherited_epochs"] or epochs, epochs) for c in children
        ),
        "short_matches": sum(
            s >= t - 1e-12 for s, t in zip(short_final, scratch_final, strict=False)
        ),
        "short_mean": statistics.mean(short_final) if short_final else None,
        "scratch_mean": statistics.mean(scratch_final),
        "copied_fraction": statistics.mean(
            c["inherited_tensors"] / c["model_tensors"] for c in children
        ),
        "all_copied": sum(c["inherited_tensors"] == c["model_tensors"] for c in children),
        "at": at,
    }


def report(result: dict[str, Any], summary: dict[str, Any], command: str) -> str:
    epochs, short = result["epochs"], result["short_epochs"]
    n = summary["n_children"]
    lines = [
        "# Weight inheritance on evolution children (chain space, MNIST-1D)",
        "",
        "```",
        command,
        "```",
        "",
        f"- {result['n_trials']} trials of regularized evolution, {n} children, {epochs} "
        "epochs each, CPU, one thread",
        f"- inherited tensors train at {result['inherit_lr_scale']} x the peak learning rate "
        "of the scratch runs",
        f"- tensors copied from the parent: {100 * summary['copied_fraction']:.0f}% on "
        f"average; all of them for {summary['all_copied']} of {n} children",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
        f"cores (shared), python {platform.python_version()}, torch {torch.__version__}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{result['total_seconds']:.0f} s in all",
        "",
        "Epochs to reach the from-scratch run's final validation accuracy:",
        "",
        "| | from scratch | inherited |",
        "|---|---|---|",
        f"| mean epochs | {summary['mean_scratch_epochs']:.1f} | "
        f"{summary['mean_inherited_epochs']:.1f} |",
        f"| reached the target | {n} of {n} | {summary['reached']} of {n} |",
        "",
        f"Epoch saving per child (1 - inherited / scratch): mean "
        f"{100 * summary['mean_saving']:.0f}%, median {100 * summary['median_saving']:.0f}%; "
        f"at least 30% for {summary['at_least_30']} of {n} children.",
        "",
    ]
    if summary["n_partial"]:
        lines += [
            f"Children whose mutation changed a tensor shape ({summary['n_partial']} of {n}, "
            "so part of the network starts fresh): mean saving "
            f"{100 * summary['partial_mean_saving']:.0f}%.",
            "",
        ]
    lines += [
        "Mean validation accuracy at equal epochs (same full-length cosine schedule):",
        "",
        "| epoch | from scratch | inherited |",
        "|---|---|---|",
    ]
    for e, (scratch, inherited) in summary["at"].items():
        lines.append(f"| {e} | {100 * scratch:.2f}% | {100 * inherited:.2f}% |")
    lines.append("")
    if summary["short_mean"] is None:
        return "\n".join(lines)
    lines += [
        f"Inherited children trained on a {short}-epoch schedule ({100 * (1 - short / epochs):.0f}"
        f"% fewer epochs) against {epochs}-epoch scratch runs: mean final accuracy "
        f"{100 * summary['short_mean']:.2f}% against {100 * summary['scratch_mean']:.2f}%; "
        f"equal or better for {summary['short_matches']} of {n} children.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--children", type=int, default=30)
    parser.add_argument(
        "--short-fraction",
        type=float,
        default=0.3,
        help="also train each inherited child on a schedule this much shorter; 0 skips it",
    )
    parser.add_argument(
        "--inherit-lr-scale",
        type=float,
        default=training.INHERIT_LR_SCALE,
        help="peak learning rate of an inherited run, as a fraction of the scratch one "
        "(default: optuna_nas.training.INHERIT_LR_SCALE)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the Markdown report here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    command = shlex.join(["python", "benchmarks/weight_inheritance.py", *(argv or sys.argv[1:])])

    with tempfile.TemporaryDirectory(prefix="optuna_nas_wi_") as folder:
        result = run(args, Path(folder))
    summary = summarize(result)
    text = report(result, summary, command)
    print(text)
    if args.output:
        output = Path(args.output)
        output.write_text(text)
        payload = {"command": command, **result, "summary": summary}
        output.with_suffix(".json").write_text(json.dumps(payload, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
