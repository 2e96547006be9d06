"""Time per pruning decision of :class:`~optuna_nas.pruners.LearningCurvePruner`.

Every curve is reported step by step into one in-memory study as a running trial, and at
every step both pruners decide on the same frozen trial and study: the learning-curve
pruner (``lce``, default arguments; ``lce cold`` is a new one at every step, so no fit is
warm-started) and Optuna's :class:`~optuna.pruners.MedianPruner` as
:func:`optuna_nas.pruners.create` builds it. Decisions are only timed, never acted on, so
every curve runs to its end. The study holds ``--completed`` finished trials whose final
value is 1.0, the upper bound, so the learning-curve pruner fits at every step from
``min_steps`` until the last (its early exits, before ``min_steps`` and at ``max_step``,
are timed apart as "all calls"). Each completed trial carries an exact recorded prediction
at every step, as the pruner leaves on the trials it sees, so the calibration's reading of
them is timed as well (it finds nothing to widen).

Two sets of curves:

* ``synthetic``: 50 steps from an LC-PFN-like prior: a random convex mixture of pow3,
  ilog2 and Janoschek curves rising from ``y0 ~ U(0, y_inf)`` to ``y_inf ~ U(0.5, 1)``, with
  Gaussian noise of log standard deviation ``~ N(-4, 1)``, clipped to ``[0, 1]``;
* ``lcdb``: real sample-wise validation-accuracy curves of LCDB 1.0
  (``/work/shared/benchmarks/curves``) with at least 20 anchors, the anchor index as step
  (so 20 to 36 steps, not 50).

A second table checks the predictions behind the decisions, on ``--n-calibration`` curves
per set: with a fifth and with half of each curve observed, how often the final value lies
within two predicted standard deviations (95% if calibrated), how often the pruner's
probability of exceeding the final value itself falls below 0.05 (5% if calibrated;
higher means pruning too eagerly), and the median absolute error of the predicted mean,
for plain BIC weights (temperature 1) and the tempered weights the pruner uses.

A third table asks whether the decisions are right. For each of ``--n-decision`` synthetic
curves, a study holds five other curves of the set as completed trials (the learning-curve
pruner's default ``n_startup_trials``); the curve is a "winner" if its final value beats
theirs. Both pruners then run on it as in a real study, stopping it at the first prune.

Each run is timed on the wall clock and as CPU time of this process, which other load on a
shared machine inflates far less. BLAS runs on one thread.

Usage::

    python benchmarks/lce_speed.py --output benchmarks/results/lce_speed.md
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import datetime  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402
from collections.abc import Iterator, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import scipy  # noqa: E402

from optuna_nas import pruners  # noqa: E402
from optuna_nas.pruners import _curves  # noqa: E402
from optuna_nas.pruners._lce import PREDICTIONS_ATTR  # noqa: E402

SYNTHETIC_STEPS = 50
LCDB_MIN_ANCHORS = 20
DEFAULT_CURVES_DIR = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "curves"
PRUNERS = ("lce", "lce cold", "median")
"""``lce cold`` is a fresh learning-curve pruner at every step: no warm start."""


def synthetic_curve(rng: np.random.Generator, n_steps: int = SYNTHETIC_STEPS) -> np.ndarray:
    """One noisy curve from the LC-PFN-like prior described in the module docstring."""
    x = np.arange(1, n_steps + 1, dtype=float)
    y_inf = rng.uniform(0.5, 1.0)
    y0 = rng.uniform(0.0, y_inf)
    gap = y_inf - y0
    pow3 = y_inf - gap * x ** -rng.uniform(0.1, 2.0)
    ilog2 = y_inf - gap * np.log(2.0) / np.log(x + 1.0)
    kappa = np.exp(rng.uniform(np.log(1e-3), 0.0))
    janoschek = y_inf - gap * np.exp(-kappa * x ** rng.uniform(0.5, 2.0))
    weights = rng.dirichlet(np.ones(3))
    clean = weights[0] * pow3 + weights[1] * ilog2 + weights[2] * janoschek
    noise = rng.normal(0.0, np.exp(rng.normal(-4.0, 1.0)), n_steps)
    return np.clip(clean + noise, 0.0, 1.0)


def lcdb_curves(directory: Path, rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``n`` LCDB validation-accuracy curves with enough anchors, chosen at random."""
    anchors: dict[tuple[str, str], list[tuple[int, float]]] = defaultdict(list)
    for path in sorted(directory.glob("lcdb_v1_accuracy_curves_part*.csv")):
        with path.open(newline="") as file:
            for row in csv.DictReader(file):
                key = (row["openmlid"], row["learner"])
                anchors[key].append((int(row["size_train"]), float(row["valid_acc_mean"])))
    curves = [
        np.array([value for _, value in sorted(points)])
        for points in anchors.values()
        if len(points) >= LCDB_MIN_ANCHORS
    ]
    if not curves:
        raise SystemExit(f"no LCDB curves under {directory}; pass --curves-dir")
    chosen = rng.choice(len(curves), size=min(n, len(curves)), replace=False)
    return [curves[i] for i in chosen]


@dataclass
class Timings:
    """Seconds per decision, by pruner and clock, for one set of curves."""

    fitted: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {p: {"wall": [], "cpu": []} for p in PRUNERS}
    )
    every: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {p: {"wall": [], "cpu": []} for p in PRUNERS}
    )
    lengths: list[int] = field(default_factory=list)
    pruned_at: list[int | None] = field(default_factory=list)


def _timed(pruner: optuna.pruners.BasePruner, study: optuna.Study, trial: object) -> tuple:
    wall, cpu = time.perf_counter(), time.process_time()
    decision = pruner.prune(study, trial)  # type: ignore[arg-type]
    return decision, time.perf_counter() - wall, time.process_time() - cpu


def time_curves(curves: Sequence[np.ndarray], n_completed: int) -> Timings:
    """Reports each curve into its own study and times both pruners at every step."""
    timings = Timings()
    for curve in curves:
        max_step = len(curve) - 1
        lce = pruners.create("lce", max_step=max_step)
        median = pruners.create("median", max_step=max_step)
        study = optuna.create_study(direction="maximize")
        min_steps = lce._min_steps  # type: ignore[attr-defined]
        # Each completed trial carries what the pruner would have recorded on it, a
        # prediction at every fitting step (here exact), so the calibration is timed too.
        history = [[n, 1.0, 0.01] for n in range(min_steps, max_step + 1)]
        for _ in range(n_completed):
            study.add_trial(
                optuna.trial.create_trial(
                    value=1.0,
                    intermediate_values={s: 1.0 for s in range(len(curve))},
                    system_attrs={PREDICTIONS_ATTR: history},
                )
            )
        trial = study.ask()
        first_prune: int | None = None
        for step, value in enumerate(curve):
            trial.report(float(value), step)
            frozen = study._storage.get_trial(trial._trial_id)
            fits = min_steps <= step + 1 and step < max_step
            cold = pruners.create("lce", max_step=max_step)
            for name, pruner in (("lce", lce), ("lce cold", cold), ("median", median)):
                decision, wall, cpu = _timed(pruner, study, frozen)
                timings.every[name]["wall"].append(wall)
                timings.every[name]["cpu"].append(cpu)
                if fits:
                    timings.fitted[name]["wall"].append(wall)
                    timings.fitted[name]["cpu"].append(cpu)
                if name == "lce" and decision and first_prune is None:
                    first_prune = step
        study.tell(trial, float(curve[-1]))
        timings.lengths.append(len(curve))
        timings.pruned_at.append(first_prune)
    return timings


@dataclass
class Calibration:
    """Quality of the predicted final values, at one observed fraction and temperature."""

    fraction: float
    temperature: float
    n: int = 0
    degenerate: int = 0
    within_two_std: int = 0
    p_below_5pct: int = 0
    errors: list[float] = field(default_factory=list)


def calibrate(
    curves: Sequence[np.ndarray], fractions: Sequence[float], temperatures: Sequence[float]
) -> list[Calibration]:
    """Extrapolates each curve from its first steps and scores the final-value prediction."""
    rows = []
    default = _curves.BIC_TEMPERATURE
    try:
        for temperature in temperatures:
            _curves.BIC_TEMPERATURE = temperature
            for fraction in fractions:
                row = Calibration(fraction, temperature)
                for curve in curves:
                    n_seen = max(_curves.MIN_POINTS, round(fraction * len(curve)))
                    final = float(curve[-1])
                    result = _curves.fit_ensemble(
                        np.arange(n_seen), curve[:n_seen], len(curve) - 1, bounds=(0.0, 1.0)
                    )
                    row.n += 1
                    if isinstance(result, _curves.Degenerate):
                        row.degenerate += 1
                        continue
                    row.within_two_std += abs(final - result.mean) <= 2 * result.std
                    row.p_below_5pct += _curves.prob_exceeds(result, final) < 0.05
                    row.errors.append(abs(final - result.mean))
                rows.append(row)
    finally:
        _curves.BIC_TEMPERATURE = default
    return rows


@dataclass
class Decisions:
    """How one pruner's decisions turned out on a set of curves."""

    winners: int = 0
    winners_pruned: int = 0
    losers: int = 0
    losers_pruned: int = 0
    steps: int = 0
    steps_saved: int = 0


def judge_decisions(
    curves: Sequence[np.ndarray], n_completed: int, rng: np.random.Generator
) -> dict[str, Decisions]:
    """Runs each curve against ``n_completed`` others, under each pruner, until pruned."""
    outcome = {"lce": Decisions(), "median": Decisions()}
    for i, curve in enumerate(curves):
        others = rng.choice([j for j in range(len(curves)) if j != i], n_completed, False)
        best = max(float(curves[j][-1]) for j in others)
        winner = float(curve[-1]) > best
        max_step = len(curve) - 1
        for name, tally in outcome.items():
            study = optuna.create_study(
                direction="maximize", pruner=pruners.create(name, max_step=max_step)
            )
            for j in others:
                study.add_trial(
                    optuna.trial.create_trial(
                        value=float(curves[j][-1]),
                        intermediate_values=dict(enumerate(map(float, curves[j]))),
                    )
                )
            trial = study.ask()
            pruned_at = None
            for step, value in enumerate(curve):
                trial.report(float(value), step)
                if trial.should_prune():
                    pruned_at = step
                    break
            tally.steps += len(curve)
            if pruned_at is not None:
                tally.steps_saved += max_step - pruned_at
            if winner:
                tally.winners += 1
                tally.winners_pruned += pruned_at is not None
            else:
                tally.losers += 1
                tally.losers_pruned += pruned_at is not None
    return outcome


def _ms(values: Sequence[float], q: float) -> str:
    return f"{1e3 * float(np.quantile(values, q)):.2f}" if values else "-"


def report(
    results: dict[str, Timings],
    calibration: dict[str, list[Calibration]],
    decisions: dict[str, Decisions],
    command: str,
    n_completed: int,
) -> str:
    lines = [
        "# LearningCurvePruner decision time",
        "",
        f"`{command}`",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- python {platform.python_version()}, numpy {np.__version__}, scipy "
        f"{scipy.__version__}, optuna {optuna.__version__}",
        f"- CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} logical cores,"
        " BLAS on one thread",
        "- load average at the end (1, 5, 15 min): "
        + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
        f"- one in-memory study per curve with {n_completed} completed trials (final value "
        "1.0, each with a recorded prediction at every step, read by the calibration); "
        "both pruners decide on the same frozen trial at every step; decisions are "
        "timed, not acted on",
        "- lce: `pruners.create('lce', max_step=len(curve) - 1)` (defaults: min_steps = "
        "max(4, (max_step + 1) // 8), threshold ramped over 6 decisions, calibration "
        "quantile 0.5, warm-started refits); median: "
        "`pruners.create('median', max_step=...)`",
        "- 'fitting decisions': steps from min_steps to max_step - 1, where lce fits the "
        "curve; 'all calls': every step",
        "",
        "| curves | n curves | steps | pruner | fitting decisions | median ms | p90 ms "
        "| CPU median ms | CPU p90 ms | all calls: median ms | all calls: p90 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, timings in results.items():
        lengths = sorted(set(timings.lengths))
        steps = str(lengths[0]) if len(lengths) == 1 else f"{lengths[0]}-{lengths[-1]}"
        for pruner in PRUNERS:
            fitted, every = timings.fitted[pruner], timings.every[pruner]
            lines.append(
                f"| {name} | {len(timings.lengths)} | {steps} | {pruner} "
                f"| {len(fitted['wall'])} | {_ms(fitted['wall'], 0.5)} "
                f"| {_ms(fitted['wall'], 0.9)} | {_ms(fitted['cpu'], 0.5)} "
                f"| {_ms(fitted['cpu'], 0.9)} | {_ms(every['wall'], 0.5)} "
                f"| {_ms(every['wall'], 0.9)} |"
            )
    lines += ["", "Against a best final value of 1.0, the learning-curve pruner would stop:", ""]
    for name, timings in results.items():
        stops = [s for s in timings.pruned_at if s is not None]
        where = f", at median step {int(np.median(stops))}" if stops else ""
        lines.append(f"- {name}: {len(stops)} of {len(timings.pruned_at)} curves{where}")
    lines += [
        "",
        "## Predicted final values",
        "",
        "| curves | observed | BIC temperature | curves | degenerate | final within 2 std "
        "| P(exceed final) < 0.05 | median abs error |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, rows in calibration.items():
        for row in rows:
            fitted = row.n - row.degenerate
            lines.append(
                f"| {name} | {row.fraction:.0%} | {row.temperature:g} | {row.n} "
                f"| {row.degenerate} | {row.within_two_std / max(fitted, 1):.1%} "
                f"| {row.p_below_5pct / max(fitted, 1):.1%} "
                f"| {float(np.median(row.errors)) if row.errors else float('nan'):.4f} |"
            )
    tally = decisions["lce"]
    lines += [
        "",
        "## Decisions",
        "",
        f"{tally.winners + tally.losers} synthetic curves, each "
        "against 5 others as completed trials; a winner beats all five. The completed "
        "trials are added without recorded predictions, so lce decides uncalibrated here "
        "(scale 1); the pruner replays (`benchmarks/pruner_replay.py`) judge calibration.",
        "",
        "| pruner | winners pruned | other curves pruned | steps saved |",
        "|---|---|---|---|",
    ]
    for name, tally in decisions.items():
        lines.append(
            f"| {name} | {tally.winners_pruned} of {tally.winners} "
            f"| {tally.losers_pruned} of {tally.losers} "
            f"| {tally.steps_saved / max(tally.steps, 1):.0%} |"
        )
    return "\n".join(lines) + "\n"


def _curve_sets(args: argparse.Namespace, n: int) -> Iterator[tuple[str, list[np.ndarray]]]:
    rng = np.random.default_rng(args.seed)
    yield "synthetic", [synthetic_curve(rng) for _ in range(n)]
    yield "lcdb", lcdb_curves(args.curves_dir, rng, n)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-curves", type=int, default=20, help="curves per set")
    parser.add_argument(
        "--n-calibration", type=int, default=200, help="curves per set for the second table"
    )
    parser.add_argument(
        "--n-decision", type=int, default=200, help="synthetic curves for the third table"
    )
    parser.add_argument("--completed", type=int, default=10, help="completed trials per study")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--curves-dir", type=Path, default=DEFAULT_CURVES_DIR)
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    results = {
        name: time_curves(curves, args.completed)
        for name, curves in _curve_sets(args, args.n_curves)
    }
    calibration = {
        name: calibrate(curves, (0.2, 0.5), (1.0, _curves.BIC_TEMPERATURE))
        for name, curves in _curve_sets(args, args.n_calibration)
    }
    rng = np.random.default_rng(args.seed + 1)
    population = [synthetic_curve(rng) for _ in range(args.n_decision)]
    decisions = judge_decisions(population, 5, rng)
    command = shlex.join(["python", "benchmarks/lce_speed.py", *(argv or sys.argv[1:])])
    text = report(results, calibration, decisions, command, args.completed)
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
