"""Pruners replayed on real learning curves, beside Optuna's pruners as their users run them.

The curves come from the project's own scripts, one *source* per model family, dataset
and training recipe (``--bank`` files):

* ``mnist1d``, ``digits``: ``benchmarks/data/curve_bank.csv`` (``benchmarks/curve_bank.py``;
  three spaces, AdamW with a cosine schedule, 30 epochs);
* ``mnist1d-sgd``, ``digits-nb201``, ``tabular-mlp``: ``benchmarks/data/curve_bank_recipes*.csv``
  (``benchmarks/curve_recipes.py``; SGD, Adam or RMSprop, a learning rate drawn over
  three to four decades, constant, cosine or step schedules, diverging runs included).

A replay runs every curve of a source once, in a random order, as the trials of a real
single-worker Optuna study with in-memory storage
(:func:`optuna_nas.benchmarks.replay_study`), once per pruner; ``--n-replays`` orders per
source, the same orders for every pruner. Each pruner is one point: the fraction of
epochs saved, and how often the best is kept (the picked trial's final value is within
0.1 percentage point of what the same order picks without pruning).

The pruners:

* Optuna's, as their users run them: ``MedianPruner``, ``PercentilePruner(25)``,
  ``SuccessiveHalvingPruner``, ``HyperbandPruner`` and ``PatientPruner`` around
  ``MedianPruner``, each at its defaults and on a small grid of its main knob
  (:func:`optuna_grid`);
* ours: ``rank`` (:class:`optuna_nas.pruners.RankPruner`) on a grid of its
  ``top_fraction``, ``completed_percentile`` and ``first_fraction``, and ``lce`` and
  ``fidelity`` at their defaults.

**Leave one source out.** For every source, the settings of ``rank`` are chosen on
the *other* sources (the most epochs saved among the values that keep the best in at
least 95% of the replays of every other source) and reported on the held-out source.
The choice on all sources is the shipped default.

**Metric scales.** Every replay of the default ``rank`` and of ``lce`` is run again on a
percent copy (values times 100), an error copy (one minus the value, minimised) and a
loss-like copy (minus the logarithm of the value, minimised) of
the curves, and the script counts the replays whose decisions (the steps each trial ran)
are identical to those on the ``[0, 1]`` copy.

The LCDB curves (``--lcdb``) stay the sample-wise case: step ``k`` is the ``k``-th anchor
and costs the training-set size; one replay per OpenML dataset.

Usage::

    python benchmarks/pruner_replay.py --jobs 2 \\
        --output benchmarks/results/pruner_replay.md --plot benchmarks/results/pruner_frontier.png
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter, defaultdict  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from optuna_nas import pruners  # noqa: E402
from optuna_nas.benchmarks import (  # noqa: E402
    Curve,
    ReplayResult,
    random_orders,
    replay_study,
    run_methods,
    summarize_scores,
    unselected_rank_correlation_before,
)

PrunerFactory = Callable[[int], optuna.pruners.BasePruner]

KEPT = 0.95
"""Best kept in at least this fraction of replays: the issue's target, and the bar a
``top_fraction`` must clear on every training source to be chosen."""

RANK_GRID = tuple(
    (q, p, f) for f in (0.2, 0.25, 0.35) for p in (65.0, 75.0) for q in (0.04, 0.05, 0.07)
)
"""``(top_fraction, completed_percentile, first_fraction)`` of
:class:`~optuna_nas.pruners.RankPruner` tried."""

DEFAULT_RANK = "ours: rank (defaults)"

PFN_THRESHOLDS = (0.002, 0.005, 0.01)
"""``pfn_threshold`` of :class:`~optuna_nas.pruners.RankPruner` tried at the ``rank`` point
chosen on :data:`RANK_GRID` (the rule is off on that grid)."""

LCE_PFN_THRESHOLDS = (0.01, 0.05)
"""``threshold`` of ``LearningCurvePruner(predictor="pfn")`` alone."""


def optuna_grid() -> dict[str, PrunerFactory]:
    """Optuna's pruners at their defaults and on a small grid of each one's main knob."""
    P = optuna.pruners
    grid: dict[str, PrunerFactory] = {"Optuna: none": lambda m: P.NopPruner()}
    grid["Optuna: Median (defaults)"] = lambda m: P.MedianPruner()
    for w in (1, 3, 5, 10):
        grid[f"Optuna: Median warmup={w}"] = lambda m, w=w: P.MedianPruner(n_warmup_steps=w)
    for w in (0, 3, 5):
        grid[f"Optuna: Percentile(25) warmup={w}"] = lambda m, w=w: P.PercentilePruner(
            25.0, n_warmup_steps=w
        )
    grid["Optuna: SHA (defaults)"] = lambda m: P.SuccessiveHalvingPruner()
    for r in (1, 3):
        for eta in (2, 3, 4):
            grid[f"Optuna: SHA min_resource={r} eta={eta}"] = lambda m, r=r, eta=eta: (
                P.SuccessiveHalvingPruner(min_resource=r, reduction_factor=eta)
            )
    grid["Optuna: Hyperband (defaults)"] = lambda m: P.HyperbandPruner()
    for r in (3, 5):
        grid[f"Optuna: Hyperband min_resource={r}"] = lambda m, r=r: P.HyperbandPruner(
            min_resource=r
        )
    for patience in (1, 3, 5):
        grid[f"Optuna: Patient(Median) patience={patience}"] = lambda m, p=patience: (
            P.PatientPruner(P.MedianPruner(), patience=p)
        )
    return grid


def ours_grid(slow: bool) -> dict[str, PrunerFactory]:
    """``rank`` on :data:`RANK_GRID` without its extrapolation rule, at its defaults
    (``max_step`` given, as the CLI does), and with the rule on :data:`PFN_THRESHOLDS`;
    ``lce`` with the prior-fitted network on :data:`LCE_PFN_THRESHOLDS`; ``lce`` and
    ``fidelity`` if ``slow`` (they fit curves and take much longer)."""
    grid: dict[str, PrunerFactory] = {DEFAULT_RANK: lambda m: pruners.create("rank", max_step=m)}
    for q, p, f in RANK_GRID:
        grid[_rank_label(q, p, f)] = lambda m, q=q, p=p, f=f: pruners.RankPruner(
            top_fraction=q, completed_percentile=p, first_fraction=f, pfn_threshold=None
        )
    for t in PFN_THRESHOLDS:
        grid[_pfn_label(t)] = lambda m, t=t: pruners.RankPruner(max_step=m, pfn_threshold=t)
    for t in LCE_PFN_THRESHOLDS:
        grid[f"ours: lce predictor=pfn threshold={t}"] = lambda m, t=t: (
            pruners.LearningCurvePruner(max_step=m, predictor="pfn", threshold=t)
        )
    if slow:
        grid["ours: lce (defaults)"] = lambda m: pruners.create("lce", max_step=m)
        grid["ours: fidelity (defaults)"] = lambda m: pruners.create("fidelity", max_step=m)
    return grid


def _rank_label(q: float, p: float, f: float) -> str:
    return f"ours: rank top_fraction={q} completed_percentile={p:.0f} first_fraction={f}"


def _pfn_label(t: float) -> str:
    return f"ours: rank pfn_threshold={t}"


RANK_LABELS = [_rank_label(q, p, f) for q, p, f in RANK_GRID]
RANK_CAREFUL = _rank_label(
    max(q for q, _, _ in RANK_GRID),
    min(p for _, p, _ in RANK_GRID),
    max(f for _, _, f in RANK_GRID),
)
RANK_DEFAULT_POINT = _rank_label(0.04, 75.0, 0.35)
PFN_LABELS = [RANK_DEFAULT_POINT, *(_pfn_label(t) for t in PFN_THRESHOLDS)]
"""The extrapolation rule's choice: off (the ``rank`` point the grid chose, which is the
shipped default) or one of :data:`PFN_THRESHOLDS`."""


def load_bank(paths: Sequence[Path]) -> dict[str, list[Curve]]:
    """Curves grouped by source: the ``source`` column, or else the ``dataset`` column."""
    out: dict[str, list[Curve]] = defaultdict(list)
    for path in paths:
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                values = tuple(float(v) for v in row["valid"].split())
                source = row.get("source") or row["dataset"]
                out[source].append(
                    Curve(values, test=float(row["test_acc"]), name=f"{source}#{row['index']}")
                )
    return dict(out)


def scaled(curves: Sequence[Curve], scale: str) -> tuple[list[Curve], str]:
    """The curves in another metric scale, and the direction to optimise them in."""
    if scale == "percent":
        return [replace(c, values=tuple(100.0 * v for v in c.values)) for c in curves], "maximize"
    if scale == "error":
        return [replace(c, values=tuple(1.0 - v for v in c.values)) for c in curves], "minimize"
    if scale == "loss":
        return [
            replace(c, values=tuple(-math.log(max(v, 1e-6)) for v in c.values)) for c in curves
        ], "minimize"
    raise ValueError(scale)


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


class FidelityAudit:
    """Checks every prune of the ``fidelity`` pruner at the moment it was made.

    Two checks per prune: the rung's entry in the correlations the pruner published in
    the study user attribute ``fidelity:rank_correlation`` right after the decision must
    say at least ``min_correlation`` on at least ``min_pairs`` pairs; and the same
    correlation recomputed here from the replay must too, over the trials that ran before,
    passed the rung while it was not pruning and reached the final step (the pairs the
    pruner promises to measure a rung on).
    """

    def __init__(self, min_correlation: float = 0.6, min_pairs: int = 6) -> None:
        self.min_correlation = min_correlation
        self.min_pairs = min_pairs
        self.n_prunes = 0
        self.by_step: dict[int, int] = defaultdict(int)
        self.violations: list[str] = []

    def check(self, curves: Sequence[Curve], result: ReplayResult) -> None:
        if "fidelity" not in result.method:
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
            rho, pairs = unselected_rank_correlation_before(
                curves, result, event.trial, event.step, self.min_correlation, self.min_pairs
            )
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


def replay_source(
    name: str, curves: Sequence[Curve], n_replays: int, seed: int, slow: bool
) -> dict[str, Any]:
    """Every pruner of both grids on ``n_replays`` orders of all of ``curves``, plus the
    metric-scale check; returns JSON-ready summaries."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    orders = random_orders(len(curves), n_replays, seed=seed)
    factories = {**optuna_grid(), **ours_grid(slow)}
    audit = FidelityAudit()
    scores = run_methods(curves, orders, factories, on_result=lambda r: audit.check(curves, r))
    same: dict[str, dict[str, Any]] = {}
    checked = {DEFAULT_RANK: len(orders), _pfn_label(0.005): len(orders)}
    if slow:
        checked["ours: lce (defaults)"] = min(3, len(orders))  # it fits curves: slow
    copies = {scale: scaled(curves, scale) for scale in ("percent", "error", "loss")}
    for method, n_checked in checked.items():
        make = factories[method]
        same[method] = {"replays": n_checked, "percent": 0, "error": 0, "loss": 0}
        for r, order in enumerate(orders[:n_checked]):
            max_step = max(len(curves[i].values) for i in order) - 1
            base = replay_study(curves, order, make(max_step), study_name=f"replay-{r}")
            for scale, (copy, direction) in copies.items():
                other = replay_study(
                    copy, order, make(max_step), direction=direction, study_name=f"replay-{r}"
                )
                same[method][scale] += base.n_steps == other.n_steps
    finals = np.array([c.final for c in curves])
    return {
        "source": name,
        "n_curves": len(curves),
        "n_steps": len(curves[0].values),
        "n_replays": len(orders),
        "final_median": float(np.median(finals)),
        "final_max": float(finals.max()),
        "summaries": [asdict(s) for s in summarize_scores(scores)],
        "same_decisions": same,
        "fidelity_audit": audit.summary() if slow else "",
        "fidelity_violations": audit.violations[:20],
        "seconds": time.perf_counter() - started,
    }


def choose(
    results: Sequence[dict[str, Any]],
    held_out: str | None,
    labels: Sequence[str] = RANK_LABELS,
    careful: str = RANK_CAREFUL,
) -> str:
    """The grid point of ``labels`` saving the most epochs on the sources other than
    ``held_out`` among those keeping the best in :data:`KEPT` of the replays of each
    (``careful`` if none does).

    A training source on which no grid point keeps the best that often (a late-blooming
    best that every point prunes) does not constrain the choice; it still counts in the
    epochs saved."""
    training = [r for r in results if r["source"] != held_out]
    binding = [r for r in training if max(_row(r, label)["unchanged"] for label in labels) >= KEPT]
    feasible = [
        label for label in labels if all(_row(r, label)["unchanged"] >= KEPT for r in binding)
    ]
    if not feasible:  # nothing keeps the best often enough everywhere: the most careful point
        return careful
    return max(
        feasible, key=lambda label: np.mean([_row(r, label)["steps_saved"] for r in training])
    )


def _row(result: dict[str, Any], method: str) -> dict[str, Any]:
    return next(s for s in result["summaries"] if s["method"] == method)


def verdict(result: dict[str, Any], ours: str) -> list[str]:
    """The issue's three targets for ``ours`` on one held-out source."""
    mine = _row(result, ours)
    peers = [s for s in result["summaries"] if s["method"].startswith("Optuna")]
    as_often = [p for p in peers if p["unchanged"] >= mine["unchanged"] - 1e-9]
    beaten = [p for p in as_often if p["steps_saved"] >= mine["steps_saved"]]
    return [
        f"best kept >= 95%: {'met' if mine['unchanged'] >= KEPT else 'NOT met'} "
        f"({mine['unchanged']:.0%})",
        f"epochs saved >= 85%: {'met' if mine['steps_saved'] >= 0.85 else 'NOT met'} "
        f"({mine['steps_saved']:.1%})",
        "more saved than every Optuna configuration that keeps the best as often: "
        + (
            "met"
            if not beaten
            else "NOT met ("
            + ", ".join(f"{p['method']} {p['steps_saved']:.1%}" for p in beaten)
            + ")"
        ),
    ]


def table(result: dict[str, Any], marks: dict[str, str]) -> list[str]:
    lines = [
        "| pruner | epochs saved | best kept | regret mean (pp) | regret max (pp) |",
        "|---|---|---|---|---|",
    ]
    for s in result["summaries"]:
        label = s["method"] + marks.get(s["method"], "")
        lines.append(
            f"| {label} | {s['steps_saved']:.1%} | {s['unchanged']:.0%} | "
            f"{100 * s['regret_mean']:.2f} | {100 * s['regret_max']:.2f} |"
        )
    return lines


def leave_one_out(
    results: Sequence[dict[str, Any]],
    tuning: Sequence[dict[str, Any]],
    unseen: set[str],
    labels: Sequence[str],
    careful: str,
    family: str,
    cls: str,
    title: str | None = None,
) -> tuple[str, dict[str, str], list[str]]:
    """The point of ``labels`` chosen on all tuning sources, the pick for each source
    (chosen without it; the unseen ones get the former) and the report's section."""
    default = choose(tuning, None, labels, careful)
    picks = {
        r["source"]: default
        if r["source"] in unseen
        else choose(tuning, r["source"], labels, careful)
        for r in results
    }
    sections: list[str] = [
        f"## Leave one source out: {title or family}",
        "",
        f"Each row is `{family}` with the settings chosen on the other sources, scored on "
        "the source it names; Optuna's best configurations on that source are beside it. "
        "Sources marked *unseen* were never used for any choice: they get the "
        "default, chosen on the other sources.",
        "",
        "| held-out source | settings chosen on | ours: saved / kept | best Optuna that keeps "
        "the best as often: saved / kept | Optuna Median (defaults): saved / kept |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        mine = _row(r, picks[r["source"]])
        peers = [s for s in r["summaries"] if s["method"].startswith("Optuna")]
        as_often = [p for p in peers if p["unchanged"] >= mine["unchanged"] - 1e-9]
        top = max(as_often, key=lambda p: p["steps_saved"], default=None)
        med = _row(r, "Optuna: Median (defaults)")
        others = ", ".join(x["source"] for x in tuning if x is not r)
        name = r["source"] + (" (*unseen*)" if r["source"] in unseen else "")
        sections.append(
            f"| {name} | {picks[r['source']].removeprefix(f'ours: {family} ')} ({others}) | "
            f"{mine['steps_saved']:.1%} / {mine['unchanged']:.0%} | "
            + (
                f"{top['method'][8:]}: {top['steps_saved']:.1%} / {top['unchanged']:.0%}"
                if top
                else "none"
            )
            + f" | {med['steps_saved']:.1%} / {med['unchanged']:.0%} |"
        )
    sections += [
        "",
        "Chosen on all sources but the unseen ones: "
        f"`{default.split(': ', 1)[1]}` (compare the defaults of `optuna_nas.pruners.{cls}`).",
        "",
    ]
    return default, picks, sections


def plot(results: Sequence[dict[str, Any]], picks: dict[str, str], path: Path) -> None:
    """One panel per source: Optuna's configurations as grey points and their frontier,
    the held-out ``rank`` pick in red, the rest of the ``rank`` grid in pale red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False)
    for ax, result in zip(axes[0], results, strict=True):
        rows = result["summaries"]
        optuna_rows = [s for s in rows if s["method"].startswith("Optuna")]
        xs = [100 * s["steps_saved"] for s in optuna_rows]
        ys = [100 * s["unchanged"] for s in optuna_rows]
        ax.scatter(xs, ys, c="0.5", s=18, label="Optuna configurations")
        front = sorted(zip(xs, ys, strict=True), key=lambda p: -p[0])
        fx, fy, top = [], [], -1.0
        for x, y in front:
            if y > top:
                fx.append(x)
                fy.append(y)
                top = y
        ax.step(fx, fy, where="post", c="0.5", lw=0.8)
        grid = [s for s in rows if s["method"].startswith("ours: rank top")]
        ax.scatter(
            [100 * s["steps_saved"] for s in grid],
            [100 * s["unchanged"] for s in grid],
            c="#f4a6a6",
            s=18,
            label="rank, other grid points",
        )
        for s in rows:
            if s["method"] in ("ours: lce (defaults)", "ours: fidelity (defaults)"):
                ax.scatter(
                    100 * s["steps_saved"],
                    100 * s["unchanged"],
                    marker="^",
                    s=30,
                    label=s["method"][6:],
                )
        pick = _row(result, picks[result["source"]])
        ax.scatter(
            100 * pick["steps_saved"],
            100 * pick["unchanged"],
            c="red",
            s=50,
            marker="*",
            label="rank, chosen on the other sources",
        )
        ax.set_title(f"{result['source']} (held out)", fontsize=9)
        ax.set_xlabel("epochs saved (%)")
        ax.set_ylabel("best kept (% of replays)")
        ax.axhline(100 * KEPT, ls=":", c="0.7", lw=0.8)
        ax.set_ylim(-5, 105)
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bank",
        type=Path,
        nargs="+",
        default=sorted(Path("benchmarks/data").glob("curve_bank*.csv")),
    )
    parser.add_argument("--sources", nargs="*", default=None, help="sources (default all)")
    parser.add_argument(
        "--unseen",
        nargs="*",
        default=[],
        help="sources no choice may use: each gets the settings chosen on the other sources",
    )
    parser.add_argument("--n-replays", type=int, default=10, help="orders per source")
    parser.add_argument("--lcdb", type=Path, default=None, help="folder of the LCDB curves")
    parser.add_argument("--lcdb-datasets", type=int, default=40)
    parser.add_argument("--no-slow", action="store_true", help="skip lce and fidelity")
    parser.add_argument("--jobs", type=int, default=1, help="sources replayed in parallel")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=None, help="Markdown report")
    parser.add_argument("--json", type=Path, default=None, help="summaries per source")
    parser.add_argument("--plot", type=Path, default=None, help="frontier plot (PNG or SVG)")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()

    bank = load_bank(args.bank)
    names = sorted(bank) if args.sources is None else args.sources
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [
            pool.submit(replay_source, n, bank[n], args.n_replays, args.seed, not args.no_slow)
            for n in names
        ]
        results = []
        for future in futures:
            results.append(future.result())
            print(f"{results[-1]['source']}: {results[-1]['seconds']:.0f} s", flush=True)

    unseen = set(args.unseen)
    tuning = [r for r in results if r["source"] not in unseen]
    default, picks, sections = leave_one_out(
        results, tuning, unseen, RANK_LABELS, RANK_CAREFUL, "rank", "RankPruner"
    )
    _, pfn_picks, more = leave_one_out(
        results,
        tuning,
        unseen,
        PFN_LABELS,
        PFN_LABELS[0],
        "rank",
        "RankPruner",
        title="rank's extrapolation rule (off, or pfn_threshold)",
    )
    sections += more
    for r in results:
        sections += [
            f"## {r['source']}: {r['n_curves']} curves x {r['n_steps']} epochs, "
            f"{r['n_replays']} replays",
            "",
            f"Final validation accuracy: median {r['final_median']:.1%}, best "
            f"{r['final_max']:.1%}. Replayed in {r['seconds']:.0f} s.",
            "",
            *table(
                r,
                {
                    pfn_picks.get(r["source"], ""): " **(chosen on the other sources)**",
                    picks[r["source"]]: " **(chosen on the other sources)**",
                },
            ),
            "",
            "Targets for the held-out pick:",
            "",
            *[f"- {line}" for line in verdict(r, picks[r["source"]])],
            *[
                f"- with the extrapolation rule's choice: {line}"
                for line in verdict(r, pfn_picks[r["source"]])
            ],
            "",
            "Same decisions on other metric scales (replays with identical steps per trial):",
            "",
            *[
                f"- {m}: percent copy {v['percent']}/{v['replays']}, error copy "
                f"(minimised) {v['error']}/{v['replays']}, loss-like copy (minus the log, "
                f"minimised) {v.get('loss', 0)}/{v['replays']}"
                for m, v in r["same_decisions"].items()
            ],
            "",
        ]
        if r["fidelity_audit"]:
            sections += [r["fidelity_audit"], ""]

    if args.lcdb is not None:
        lcdb = load_lcdb(args.lcdb)
        rng = np.random.default_rng(args.seed)
        chosen = sorted(
            rng.choice(sorted(lcdb), size=min(args.lcdb_datasets, len(lcdb)), replace=False),
            key=int,
        )
        factories = {
            "Optuna: Median (defaults)": lambda m: optuna.pruners.MedianPruner(),
            "Optuna: SHA (defaults)": lambda m: optuna.pruners.SuccessiveHalvingPruner(),
            "Optuna: Hyperband (defaults)": lambda m: optuna.pruners.HyperbandPruner(),
            DEFAULT_RANK: lambda m: pruners.RankPruner(),
        }
        if not args.no_slow:
            factories["ours: lce (defaults)"] = lambda m: pruners.create("lce", max_step=m)
        all_scores = []
        for r, dataset in enumerate(chosen):
            orders = random_orders(len(lcdb[dataset]), 1, seed=args.seed + r)
            all_scores += run_methods(lcdb[dataset], orders, factories)
        sections += [
            f"## LCDB 1.0 (sample-wise: step = anchor, cost = training-set size), "
            f"{len(chosen)} datasets, one replay each",
            "",
            "| pruner | anchors saved | examples saved | best kept |",
            "|---|---|---|---|",
        ]
        for s in summarize_scores(all_scores):
            sections.append(
                f"| {s.method} | {s.steps_saved:.1%} | {s.cost_saved:.1%} | {s.unchanged:.0%} |"
            )
        sections.append("")

    if args.plot is not None:
        plot(results, picks, args.plot)
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
        "'Best kept': the fraction of replays whose picked trial ends within 0.1 percentage "
        "point of the trial the same order picks without pruning. Regret is in percentage "
        "points of validation accuracy.",
        "",
    ]
    report = "\n".join(head + sections)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"results": results, "picks": picks, "pfn_picks": pfn_picks, "default": default}
            )
        )
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
