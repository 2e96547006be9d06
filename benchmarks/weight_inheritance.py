"""Weight inheritance against training from scratch, on the children of an evolution.

One regularized-evolution study runs the chain space on MNIST-1D with every trial trained
from scratch for ``--epochs`` epochs; :class:`optuna_nas.ArchitectureObjective` saves each
trial's weights to a real artifact folder. Every child of the evolution (a trial with a
``parent_trial``) is then trained a second time with the same recipe, seed, batch order
and epoch budget, but starting from its parent's checkpoint
(:func:`optuna_nas.training.load_checkpoint` and ``fit(init_state_dict=...)``). The
from-scratch curve is the child's own trial in the study, so both sides of each pair
differ only in the starting weights. A tensor whose shape the mutation changed is
transferred in part (:func:`optuna_nas.training.transfer_weights`) unless
``--no-partial`` is given, which copies only tensors of equal names and shapes.

Children are grouped by what their mutation did to the parent's tensors, whichever way
they are inherited: ``full copy`` (every tensor fits whole), ``partial`` (some shapes
changed, all map in part) and ``fresh layer`` (some tensors have no counterpart: a new op
or layer).

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

``--study-dir DIR`` keeps the study and its checkpoints; a second run with the same
settings and ``DIR`` reuses them and trains only the inherited side (e.g. once with and
once without ``--no-partial``). ``--search-only`` stops after the search.
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
MUTATION_KINDS = ("full copy", "partial", "fresh layer")


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
        study_name="weight_inheritance",
        load_if_exists=True,
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
    n_trials = args.population + args.children
    settings = {k: getattr(args, k) for k in ("dataset", "epochs", "population", "seed")}
    reused = bool(study.trials)
    if reused:
        # A study kept by an earlier --study-dir run with the same settings: its scratch
        # runs and checkpoints are reused, so only the inherited side trains again.
        kept = study.user_attrs.get("settings", settings)
        if len(study.trials) != n_trials or kept != settings:
            raise SystemExit(
                f"{folder} holds a study of {len(study.trials)} trials with settings "
                f"{kept}, not {n_trials} trials with {settings}; pass the settings it was "
                "run with or an empty --study-dir"
            )
        print(f"search: reusing the {n_trials} trials in {folder}", file=sys.stderr)
    else:
        study.set_user_attr("settings", settings)
        study.optimize(objective, n_trials=n_trials)
    search_seconds = time.perf_counter() - start
    print(f"search: {len(study.trials)} trials in {search_seconds:.0f} s", file=sys.stderr)
    if args.search_only:
        return {}

    short_epochs = max(1, math.floor(args.epochs * (1 - args.short_fraction) + 1e-9))
    children = []
    for trial in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        parent = trial.user_attrs.get("optuna_nas:parent_trial")
        if parent is None:
            continue
        scratch = [trial.intermediate_values[e] for e in range(args.epochs)]
        common = (study, trial, parent, space, dataset, store, args.seed)
        inherited = _train_inherited(
            *common, args.epochs, args.inherit_lr_scale, not args.no_partial
        )
        short = (
            _train_inherited(*common, short_epochs, args.inherit_lr_scale, not args.no_partial)
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
                "partial_tensors": inherited["partial_tensors"],
                "model_tensors": inherited["model_tensors"],
                "mutation": inherited["mutation"],
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
            f"child #{trial.number} (parent #{parent}, {c['mutation']}, "
            f"{c['inherited_tensors']}/{c['model_tensors']} tensors inherited, "
            f"{c['partial_tensors']} in part): target {target:.4f} reached after "
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
        "partial": not args.no_partial,
        "search_reused": reused,
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
    partial: bool,
) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", training.InheritanceWarning)
        state = training.load_checkpoint(study, parent, store)
    assert state is not None
    # What the mutation did, judged by a partial transfer into a throwaway copy (built
    # before seeding, so the child's own initialisation is untouched): a child lands in
    # the same group with and without --no-partial.
    probe = Architecture.from_trial(trial, space).build(dataset.input_shape, dataset.num_classes)
    counts = training.transfer_weights(probe, state).counts()
    mutation = MUTATION_KINDS[2 if counts["fresh"] else 1 if counts["partial"] else 0]
    # The same seeds as the trial's own from-scratch run in ArchitectureObjective.
    seed = base_seed + trial.number
    training.seed_everything(seed)
    model = Architecture.from_trial(trial, space).build(dataset.input_shape, dataset.num_classes)
    result = training.fit(
        model,
        dataset,
        epochs=epochs,
        device="cpu",
        seed=seed,
        init_state_dict=state,
        inherit_lr_scale=lr_scale,
        inherit_partial=partial,
    )
    return {
        "curve": result.learning_curve,
        "mutation": mutation,
        "inherited_tensors": result.inherited_tensors,
        "partial_tensors": result.partially_inherited_tensors,
        "model_tensors": len(model.state_dict()),
    }


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    epochs = result["epochs"]
    children = result["children"]
    savings = []
    by_kind: dict[str, list[float]] = {kind: [] for kind in MUTATION_KINDS}
    reached = 0
    for c in children:
        inherited = c["inherited_epochs"]
        reached += inherited is not None
        savings.append(1 - min(inherited or epochs, epochs) / c["scratch_epochs"])
        by_kind[c["mutation"]].append(savings[-1])
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
        "by_mutation": {
            kind: {
                "n": len(values),
                "median_saving": statistics.median(values),
                "mean_saving": statistics.mean(values),
                "at_least_30": sum(v >= 0.3 for v in values),
            }
            for kind, values in by_kind.items()
            if values
        },
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
        "partial_fraction": statistics.mean(
            c["partial_tensors"] / c["model_tensors"] for c in children
        ),
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
        f"- tensors inherited from the parent, whole or in part: "
        f"{100 * summary['copied_fraction']:.0f}% on average (in part: "
        f"{100 * summary['partial_fraction']:.0f}%); all of them for "
        f"{summary['all_copied']} of {n} children; partial transfer "
        + ("on" if result["partial"] else "off (--no-partial)"),
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical "
        f"cores (shared), python {platform.python_version()}, torch {torch.__version__}",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"{result['total_seconds']:.0f} s in all"
        + (" (the search reused from --study-dir)" if result.get("search_reused") else ""),
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
    lines += [
        "By what the mutation did to the parent's tensors:",
        "",
        "| mutation | children | median saving | mean saving | at least 30% |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, row in summary["by_mutation"].items():
        lines.append(
            f"| {kind} | {row['n']} | {100 * row['median_saving']:.0f}% | "
            f"{100 * row['mean_saving']:.0f}% | {row['at_least_30']} |"
        )
    lines.append("")
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
    parser.add_argument(
        "--no-partial",
        action="store_true",
        help="copy only tensors of equal name and shape, as before partial transfer",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the Markdown report here")
    parser.add_argument(
        "--study-dir",
        default=None,
        help="keep the study and its checkpoints in this folder; a study already there "
        "(from the same settings) is reused, so only the inherited runs train again",
    )
    parser.add_argument(
        "--search-only",
        action="store_true",
        help="run the evolution (the from-scratch side) into --study-dir and stop",
    )
    args = parser.parse_args(argv)
    if args.search_only and not args.study_dir:
        parser.error("--search-only needs --study-dir to keep the study in")
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    command = shlex.join(["python", "benchmarks/weight_inheritance.py", *(argv or sys.argv[1:])])

    if args.study_dir:
        Path(args.study_dir).mkdir(parents=True, exist_ok=True)
        result = run(args, Path(args.study_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="optuna_nas_wi_") as folder:
            result = run(args, Path(folder))
    if args.search_only:
        return 0
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
