"""Decision time of the rank pruner beside Optuna's ``MedianPruner``, on 50-step curves.

The rank pruner is timed as the CLI creates it (``max_step`` given) and with its
extrapolation rule on, which runs the learning-curve network at every step.

A study holds ``N`` finished trials (a third completed, the rest pruned at a random step)
with 50-step synthetic accuracy curves; a new trial then reports 50 steps and asks
``should_prune`` after each (the pruner's rules are evaluated, nothing is stopped, so every
step is timed). Median and 90th-percentile milliseconds per decision, per pruner, study
size and storage (in-memory and SQLite).

Usage::

    python benchmarks/rank_speed.py --output benchmarks/results/rank_speed.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from optuna_nas.pruners import RankPruner

STEPS = 50


def _curve(rng: np.random.Generator) -> np.ndarray:
    final = rng.uniform(0.3, 0.95)
    x = np.arange(1.0, STEPS + 1)
    return np.clip(final - final / 2 * x**-0.7 + rng.normal(0, 0.01, STEPS), 0, 1)


def _study(n: int, storage: str | None, pruner: optuna.pruners.BasePruner, seed: int):
    rng = np.random.default_rng(seed)
    study = optuna.create_study(storage=storage, direction="maximize", pruner=pruner)
    trials = []
    for i in range(n):
        curve = _curve(rng)
        if i % 3 == 0:
            trials.append(
                optuna.trial.create_trial(
                    value=float(curve[-1]),
                    intermediate_values={s: float(v) for s, v in enumerate(curve)},
                )
            )
        else:
            stop = int(rng.integers(1, STEPS))
            trials.append(
                optuna.trial.create_trial(
                    state=TrialState.PRUNED,
                    intermediate_values={s: float(v) for s, v in enumerate(curve[:stop])},
                )
            )
    study.add_trials(trials)
    return study


def time_decisions(study: optuna.Study, seed: int) -> list[float]:
    """Milliseconds of each of 50 ``should_prune`` calls of a fresh trial."""
    curve = _curve(np.random.default_rng(seed + 1))
    trial = study.ask()
    out = []
    for step, value in enumerate(curve):
        trial.report(float(value), step)
        start = time.perf_counter()
        trial.should_prune()
        out.append(1000 * (time.perf_counter() - start))
    study.tell(trial, float(curve[-1]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--repeats", type=int, default=3, help="fresh trials timed per study")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruners = {
        # As the CLI creates it: max_step given.
        "ours: rank (defaults)": lambda: RankPruner(max_step=STEPS - 1),
        "ours: rank, pfn_threshold=0.005": lambda: RankPruner(
            max_step=STEPS - 1, pfn_threshold=0.005
        ),
        "Optuna: Median (defaults)": optuna.pruners.MedianPruner,
    }
    lines = [
        "# Rank pruner decision time",
        "",
        f"`python benchmarks/rank_speed.py --sizes {' '.join(map(str, args.sizes))} "
        f"--repeats {args.repeats} --output benchmarks/results/rank_speed.md`",
        "",
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()} CPU, "
        f"Python {platform.python_version()}, Optuna {optuna.__version__}.",
        "",
        "| storage | finished trials | pruner | median ms | p90 ms |",
        "|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for storage_name in ("in-memory", "SQLite"):
            for n in args.sizes:
                for label, make in pruners.items():
                    url = None
                    if storage_name == "SQLite":
                        url = f"sqlite:///{tmp}/{n}-{len(lines)}.db"
                    study = _study(n, url, make(), seed=n)
                    ms = [m for r in range(args.repeats) for m in time_decisions(study, r)]
                    row = (
                        f"| {storage_name} | {n} | {label} | {np.median(ms):.2f} | "
                        f"{np.percentile(ms, 90):.2f} |"
                    )
                    print(row, flush=True)
                    lines.append(row)
    text = "\n".join(lines) + "\n"
    if args.output:
        args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
