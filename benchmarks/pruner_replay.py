"""Pruners replayed on real learning curves: what they save and what they lose.

Two sets of curves:

* ``bank``: the epoch-wise validation curves of ``benchmarks/data/curve_bank.csv``
  (``benchmarks/curve_bank.py``: architectures of three spaces trained for 30 epochs on
  MNIST-1D and digits), one set per dataset. A replay is a random draw of
  ``--n-trials`` architectures in random order; ``--n-replays`` replays per dataset.
* ``lcdb``: LCDB 1.0 sample-wise curves (``--lcdb DIR``, e.g.
  ``/work/shared/benchmarks/curves``; read in place, never copied). The fidelity is the
  training-set size: step ``k`` is the ``k``-th anchor and costs ``size_train``. A replay is
  one OpenML dataset, its learners in random order; only learners whose curve reaches the
  dataset's largest anchor count, and datasets with at least 8 such learners and 10
  anchors.

Every replay runs, on the same order, each pruner in a real single-worker Optuna study
with in-memory storage (:func:`optuna_nas.benchmarks.replay_study`): ours, ``lce`` and
``fidelity`` (when :func:`optuna_nas.pruners.available` has it; ``lce-untuned`` is the
learning-curve pruner with its defaults before they were tuned on the MNIST-1D bank:
``min_steps=max(5, (max_step + 1) // 5)``, no threshold ramp, no calibration), Optuna's
``MedianPruner``, ``SuccessiveHalvingPruner`` and ``HyperbandPruner`` as
:func:`optuna_nas.pruners.create` builds them, and no pruning; plus the baseline that
trains every trial one step and finishes only the top ``--top-k`` fraction.

Metrics, against the same order without pruning: fraction of steps (epochs) saved, of
step cost saved (LCDB: training examples), how often the unpruned pick was pruned, the
regret of the picked trial's final validation accuracy in percentage points (mean and
worst), how often the pick's final accuracy is unchanged, and the pick's test accuracy
minus the unpruned pick's.

For the low-fidelity pruner every prune is checked against the rung correlations it
publishes in the study's user attributes at that moment.

Usage::

    python benchmarks/pruner_replay.py --bank benchmarks/data/curve_bank.csv \\
        --lcdb /work/shared/benchmarks/curves --output benchmarks/results/pruner_replay.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from optuna_nas import pruners  # noqa: E402
from optuna_nas.benchmarks import (  # noqa: E402
    Curve,
    MethodSummary,
    ReplayResult,
    random_orders,
    rank_correlation_before,
    run_methods,
    summarize_scores,
)

PrunerFactory = Callable[[int], optuna.pruners.BasePruner]

METHOD_LABELS = {
    "lce": "ours: lce (LearningCurvePruner)",
    "lce-untuned": "ours: lce, defaults before tuning",
    "fidelity": "ours: fidelity (LowFidelityPruner)",
    "median": "Optuna MedianPruner",
    "sha": "Optuna SuccessiveHalvingPruner",
    "hyperband": "Optuna HyperbandPruner",
    "none": "no pruning",
}


def load_bank(path: Path) -> dict[str, list[Curve]]:
    """Curves of the bank CSV grouped by dataset."""
    out: dict[str, list[Curve]] = defaultdict(list)
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            values = tuple(float(v) for v in row["valid"].split())
            out[row["dataset"]].append(
                Curve(values, test=float(row["test_acc"]), name=f"{row['space']}#{row['index']}")
            )
    return dict(out)


def load_lcdb(
    directory: Path, min_learners: int = 8, min_anchors: int = 10
) -> dict[str, list[Curve]]:
    """LCDB curves grouped by OpenML dataset id, as described in the module docstring."""
    files = sorted(directory.glob("lcdb_v1_accuracy_curves_part*.csv"))
    if not files:
        raise SystemExit(
            f"no lcdb_v1_accuracy_curves_part*.csv in {directory}; pass --lcdb with the "
            "folder holding the LCDB curves (e.g. /work/shared/benchmarks/curves)"
        )
    rows: dict[tuple[str, str], list[tuple[int, float, float]]] = defaultdict(list)
    for file in files:
        with file.open(newline="") as fh:
            for row in csv.DictReader(fh):
                rows[(row["openmlid"], row["learner"])].append(
                    (
                        int(row["size_train"]),
                        float(row["valid_acc_mean"]),
                        float(row["test_acc_mean"]),
                    )
                )
    by_dataset: dict[str, list[tuple[str, list[tuple[int, float, float]]]]] = defaultdict(list)
    for (dataset, learner), anchors in rows.items():
        by_dataset[dataset].append((learner, sorted(anchors)))
    out: dict[str, list[Curve]] = {}
    for dataset, learners in sorted(by_dataset.items(), key=lambda kv: int(kv[0])):
        longest = max(len(a) for _, a in learners)
        # The anchor sizes most learners of the longest length share.
        sizes = Counter(
            tuple(s for s, _, _ in a) for _, a in learners if len(a) == longest
        ).most_common(1)[0][0]
        curves = [
            Curve(
                tuple(v for _, v, _ in a),
                test=a[-1][2],
                costs=tuple(float(s) for s, _, _ in a),
                name=f"{dataset}/{learner}",
            )
            for learner, a in sorted(learners)
            if tuple(s for s, _, _ in a) == sizes
        ]
        if len(curves) >= min_learners and longest >= min_anchors:
            out[dataset] = curves
    return out


def _lce_before_tuning(max_step: int) -> optuna.pruners.BasePruner:
    # LearningCurvePruner's defaults before they were tuned on the MNIST-1D bank, and
    # before its predictions were calibrated on the study's history.
    return pruners.LearningCurvePruner(
        max_step=max_step,
        min_steps=max(5, (max_step + 1) // 5),
        ramp_steps=1,
        calibration_quantile=None,
    )


def pruner_factories(names: Sequence[str]) -> dict[str, PrunerFactory]:
    """Method name -> ``max_step -> pruner``, for the names :mod:`optuna_nas.pruners` has,
    plus ``lce-untuned`` (the learning-curve pruner's defaults before tuning)."""
    out: dict[str, PrunerFactory] = {}
    for name in names:
        if name == "lce-untuned":
            out[name] = _lce_before_tuning
            continue
        if name not in pruners.available():
            print(f"pruner {name!r} is not available here; skipped", file=sys.stderr)
            continue
        out[name] = lambda max_step, name=name: pruners.create(name, max_step=max_step)
    return out


class FidelityAudit:
    """Checks every prune of the ``fidelity`` pruner at the moment it was made.

    Two checks per prune: the rung's entry in the correlations the pruner published in
    the study user attribute ``fidelity:rank_correlation`` right after the decision must
    say at least ``min_correlation`` on at least ``min_pairs`` pairs; and the same
    correlation recomputed here from the replay (trials that ran before and reached the
    final step) must too.
    """

    def __init__(self, min_correlation: float = 0.6, min_pairs: int = 6) -> None:
        self.min_correlation = min_correlation
        self.min_pairs = min_pairs
        self.n_prunes = 0
        self.by_step: dict[int, int] = defaultdict(int)
        self.violations: list[str] = []

    def check(self, curves: Sequence[Curve], result: ReplayResult) -> None:
        if result.method != "fidelity":
            return
        for event in result.events:
            self.n_prunes += 1
            self.by_step[event.step] += 1
            published = {
                entry["step"]: entry
                for entry in event.study_user_attrs.get(pruners.RANK_CORRELATION_ATTR, [])
            }
            entry = published.get(event.step)
            if entry is None:
                self.violations.append(
                    f"trial {event.trial}: pruned at step {event.step}, no published rung there"
                )
            elif not self._ok(entry["correlation"], entry["pairs"]):
                self.violations.append(
                    f"trial {event.trial}: pruned at step {event.step} with published "
                    f"correlation {entry['correlation']} on {entry['pairs']} pairs"
                )
            rho, pairs = rank_correlation_before(curves, result, event.trial, event.step)
            if not self._ok(rho, pairs):
                self.violations.append(
                    f"trial {event.trial}: pruned at step {event.step}; recomputed "
                    f"correlation {rho} on {pairs} pairs"
                )

    def _ok(self, rho: float | None, pairs: int) -> bool:
        return rho is not None and rho >= self.min_correlation - 1e-12 and pairs >= self.min_pairs

    def summary(self) -> str:
        steps = ", ".join(f"step {k}: {v}" for k, v in sorted(self.by_step.items()))
        return (
            f"Low-fidelity pruner audit: {self.n_prunes} prunes ({steps}); "
            f"{len(self.violations)} at a rung whose correlation (published by the pruner, "
            f"or recomputed from the replay) was below {self.min_correlation} or had fewer "
            f"than {self.min_pairs} pairs."
        )


def format_summary(
    title: str, summaries: Sequence[MethodSummary], cost_label: str | None = None
) -> list[str]:
    header = ["method", "replays", "steps saved"]
    if cost_label:
        header.append(cost_label)
    header += [
        "best pruned",
        "pick unchanged",
        "regret mean (pp)",
        "regret max (pp)",
        "test of pick (%)",
        "test vs unpruned (pp)",
    ]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    for s in summaries:
        cells = [METHOD_LABELS.get(s.method, s.method), str(s.n_replays), f"{s.steps_saved:.1%}"]
        if cost_label:
            cells.append(f"{s.cost_saved:.1%}")
        cells += [
            f"{s.best_pruned:.0%}",
            f"{s.unchanged:.0%}",
            f"{100 * s.regret_mean:.2f}",
            f"{100 * s.regret_max:.2f}",
            f"{100 * s.test_mean:.2f}",
            f"{100 * s.test_delta:+.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def targets(summaries: Sequence[MethodSummary]) -> list[str]:
    """Issue 3's targets for the learning-curve pruner, checked on one table."""
    by = {s.method: s for s in summaries}
    if "lce" not in by:
        return []
    lce = by["lce"]
    lines = [
        f"- lce saves >= 50% of epochs: {'met' if lce.steps_saved >= 0.5 else 'NOT met'} "
        f"({lce.steps_saved:.1%})",
        f"- lce pick unchanged in >= 95% of replays: "
        f"{'met' if lce.unchanged >= 0.95 else 'NOT met'} ({lce.unchanged:.0%})",
        f"- lce regret <= 0.1 pp: {'met' if lce.regret_mean <= 0.001 else 'NOT met'} "
        f"(mean {100 * lce.regret_mean:.2f} pp, worst {100 * lce.regret_max:.2f} pp)",
    ]
    for peer in ("median", "hyperband"):
        if peer in by:
            p = by[peer]
            ok = lce.steps_saved > p.steps_saved and lce.regret_mean <= p.regret_mean
            lines.append(
                f"- lce saves more than {peer} at equal or lower regret: "
                f"{'met' if ok else 'NOT met'} (saved {lce.steps_saved:.1%} vs "
                f"{p.steps_saved:.1%}, regret {100 * lce.regret_mean:.2f} vs "
                f"{100 * p.regret_mean:.2f} pp)"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bank", type=Path, default=Path("benchmarks/data/curve_bank.csv"))
    parser.add_argument(
        "--datasets", nargs="*", default=None, help="bank datasets (default all; none: skip)"
    )
    parser.add_argument("--lcdb", type=Path, default=None, help="folder of the LCDB curves")
    parser.add_argument("--lcdb-datasets", type=int, default=40, help="LCDB datasets replayed")
    parser.add_argument("--n-replays", type=int, default=20, help="replays per bank dataset")
    parser.add_argument("--n-trials", type=int, default=60, help="trials per bank replay")
    parser.add_argument(
        "--pruners",
        nargs="+",
        default=["lce", "lce-untuned", "fidelity", "median", "sha", "hyperband", "none"],
    )
    parser.add_argument("--top-k", type=float, nargs="*", default=[0.1, 0.25])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="per-replay scores")
    args = parser.parse_args(argv)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    factories = pruner_factories(args.pruners)
    audit = FidelityAudit()
    sections: list[str] = []
    raw: dict[str, Any] = {}
    started = time.perf_counter()

    bank = load_bank(args.bank)
    for dataset in sorted(bank) if args.datasets is None else args.datasets:
        curves = bank[dataset]
        n_trials = min(args.n_trials, len(curves))
        orders = random_orders(len(curves), args.n_replays, n_trials, seed=args.seed)
        t0 = time.perf_counter()
        scores = run_methods(
            curves,
            orders,
            factories,
            top_k=args.top_k,
            on_result=lambda result, curves=curves: audit.check(curves, result),
        )
        summaries = summarize_scores(scores)
        finals = np.array([c.final for c in curves])
        title = (
            f"Bank, {dataset}: {len(curves)} architectures x {len(curves[0].values)} epochs; "
            f"{len(orders)} replays of {n_trials} trials "
            f"(final valid accuracy: median {np.median(finals):.1%}, max {finals.max():.1%}; "
            f"{time.perf_counter() - t0:.0f} s)"
        )
        sections += format_summary(title, summaries)
        sections += [*targets(summaries), ""]
        raw[f"bank/{dataset}"] = [asdict(s) for s in scores]
        print("\n".join(format_summary(title, summaries)), flush=True)

    if args.lcdb is not None:
        lcdb = load_lcdb(args.lcdb)
        rng = np.random.default_rng(args.seed)
        chosen = sorted(
            rng.choice(sorted(lcdb), size=min(args.lcdb_datasets, len(lcdb)), replace=False),
            key=int,
        )
        all_scores = []
        t0 = time.perf_counter()
        for r, dataset in enumerate(chosen):
            curves = lcdb[dataset]
            orders = random_orders(len(curves), 1, seed=args.seed + r)
            all_scores += run_methods(
                curves,
                orders,
                factories,
                top_k=args.top_k,
                on_result=lambda result, curves=curves: audit.check(curves, result),
            )
        summaries = summarize_scores(all_scores)
        n_learners = [len(lcdb[d]) for d in chosen]
        n_anchors = [len(lcdb[d][0].values) for d in chosen]
        title = (
            f"LCDB 1.0 (sample-wise; step = anchor, cost = training-set size): "
            f"{len(chosen)} of {len(lcdb)} eligible datasets, one replay each, "
            f"{min(n_learners)}-{max(n_learners)} learners, "
            f"{min(n_anchors)}-{max(n_anchors)} anchors ({time.perf_counter() - t0:.0f} s)"
        )
        sections += format_summary(title, summaries, cost_label="examples saved")
        sections += [*targets(summaries), ""]
        raw["lcdb"] = [asdict(s) for s in all_scores]
        print("\n".join(format_summary(title, summaries, "examples saved")), flush=True)

    if "fidelity" in factories:
        sections += [audit.summary(), ""]
        sections += [f"- {v}" for v in audit.violations[:20]] + [""]

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    head = [
        "# Pruners replayed on real learning curves",
        "",
        f"`{command}`",
        "",
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()} CPU ({os.cpu_count()} cores, shared), Python "
        f"{platform.python_version()}, Optuna {optuna.__version__}; "
        f"{time.perf_counter() - started:.0f} s in all.",
        "",
        "Regret and test are in percentage points of accuracy; 'best pruned' is how often "
        "the trial a study without pruning picks was stopped early; 'pick unchanged' is how "
        "often the picked trial's final validation accuracy is within 0.1 pp of the "
        "unpruned pick's (regret <= 0.1 pp).",
        "",
    ]
    report = "\n".join(head + sections)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw))
    print("\n".join(sections[-3:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
