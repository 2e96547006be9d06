"""The sampler suite's tables and plot: means, standard errors, ranks and anytime curves."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from optuna_nas.benchmarks._sampler_suite import OURS, Problem, SuiteRun


@dataclass(frozen=True)
class Cell:
    """Mean and standard error of one sampler's runs on one problem."""

    mean: float
    se: float
    test_mean: float
    test_se: float
    n: int


def summarize_suite(runs: Iterable[SuiteRun]) -> dict[str, dict[str, Cell]]:
    """``{problem: {sampler: Cell}}`` over seeds (standard errors with ``ddof=1``)."""
    groups: dict[tuple[str, str], list[SuiteRun]] = {}
    for run in runs:
        groups.setdefault((run.problem, run.sampler), []).append(run)
    table: dict[str, dict[str, Cell]] = {}
    for (problem, sampler), group in groups.items():
        values = np.array([r.best_value for r in group])
        tests = np.array([r.test_of_best for r in group])
        table.setdefault(problem, {})[sampler] = Cell(
            float(values.mean()), _se(values), float(tests.mean()), _se(tests), len(group)
        )
    return table


def _se(x: np.ndarray) -> float:
    return float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else float("nan")


def average_ranks(table: dict[str, dict[str, Cell]]) -> dict[str, float]:
    """Each sampler's rank by mean best value (1 is best, ties share their mean rank),
    averaged over the problems every sampler ran."""
    from scipy.stats import rankdata

    samplers = sorted({s for row in table.values() for s in row})
    ranks: dict[str, list[float]] = {s: [] for s in samplers}
    for row in table.values():
        if set(row) != set(samplers):
            continue
        order = rankdata([-row[s].mean for s in samplers], method="average")
        for s, r in zip(samplers, order, strict=True):
            ranks[s].append(float(r))
    return {s: float(np.mean(r)) if r else float("nan") for s, r in ranks.items()}


def format_suite(
    runs: Sequence[SuiteRun], problems: Sequence[Problem], sampler_names: Sequence[str]
) -> str:
    """The suite's Markdown tables: best value (test of it) per problem, the margin of our
    best over the best peer in standard errors, average ranks and time per query."""
    table = summarize_suite(runs)
    ours = [s for s in sampler_names if s in OURS]
    peers = [s for s in sampler_names if s not in OURS]
    scale = {p.name: 100.0 if not p.name.startswith("nb201") else 1.0 for p in problems}
    header = "| problem | tuned on | " + " | ".join(sampler_names) + " | ours - best peer |"
    lines = [header, "|" + " --- |" * (len(sampler_names) + 3)]
    for problem in problems:
        row = table.get(problem.name)
        if not row:
            continue
        k = scale[problem.name]
        best = max((row[s].mean for s in sampler_names if s in row), default=math.nan)
        cells = []
        for s in sampler_names:
            c = row.get(s)
            if c is None:
                cells.append("")
                continue
            text = f"{k * c.mean:.2f} ± {k * c.se:.2f} ({k * c.test_mean:.2f})"
            cells.append(f"**{text}**" if c.mean == best else text)
        lines.append(
            f"| {problem.name} | {'yes' if problem.tuned else 'no'} | "
            + " | ".join(cells)
            + f" | {_margin(row, ours, peers)} |"
        )
    ranks = average_ranks(table)
    times = _times(runs)
    lines += ["", "| sampler | average rank | sampler ms/query |", "| --- | ---: | ---: |"]
    for s in sorted(sampler_names, key=lambda s: ranks.get(s, math.inf)):
        lines.append(f"| {s} | {ranks.get(s, math.nan):.2f} | {times.get(s, math.nan):.1f} |")
    return "\n".join(lines)


def _margin(row: dict[str, Cell], ours: Sequence[str], peers: Sequence[str]) -> str:
    """Our best mean minus the best peer's, in the larger of the two standard errors."""
    mine = [row[s] for s in ours if s in row]
    theirs = [row[s] for s in peers if s in row]
    if not mine or not theirs:
        return ""
    a = max(mine, key=lambda c: c.mean)
    b = max(theirs, key=lambda c: c.mean)
    se = max(a.se, b.se)
    if not se > 0:
        return "tie" if a.mean == b.mean else ("ahead" if a.mean > b.mean else "behind")
    return f"{(a.mean - b.mean) / se:+.1f} SE"


def _times(runs: Iterable[SuiteRun]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for run in runs:
        groups.setdefault(run.sampler, []).append(run.sampler_ms_per_trial)
    return {s: float(np.mean(t)) for s, t in groups.items()}


def plot_anytime(
    runs: Sequence[SuiteRun], problems: Sequence[Problem], path: str | os.PathLike[str]
) -> None:
    """Saves the anytime curves, the mean best value against queries, one panel per problem.

    A run that stopped early (a time budget) keeps its last best value to the longest run's
    length.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [p.name for p in problems if any(r.problem == p.name for r in runs)]
    columns = 4
    rows = max(1, math.ceil(len(names) / columns))
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    samplers = list(dict.fromkeys(r.sampler for r in runs))
    for ax, name in zip(axes.flat, names, strict=False):
        for sampler in samplers:
            curves = [r.curve for r in runs if r.problem == name and r.sampler == sampler]
            if not curves:
                continue
            length = max(len(c) for c in curves)
            padded = np.array([c + [c[-1]] * (length - len(c)) for c in curves])
            style = "-" if sampler in OURS else "--"
            ax.plot(np.arange(1, length + 1), padded.mean(0), style, label=sampler, lw=1.2)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("queries", fontsize=8)
        ax.tick_params(labelsize=7)
        early = [r.curve[len(r.curve) // 5] for r in runs if r.problem == name]
        low = float(np.percentile(early, 10))
        top = max(r.best_value for r in runs if r.problem == name)
        ax.set_ylim(low, top + 0.05 * (top - low + 1e-9))
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(samplers), fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
