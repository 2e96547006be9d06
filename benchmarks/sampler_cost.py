"""Time per trial of our samplers and TPE on the ``darts`` space, at 300 and 1,000 trials.

The objective is a cheap synthetic score of a DARTS cell pair (the ``darts`` space's 22
or more conditional decisions): a fixed random weight per decision and choice, summed,
plus Gaussian noise, so that the sampler's own time is all that is measured. A trial's
time is the wall clock of ``ask``, the objective (``space.suggest`` and the score) and
``tell``; the table gives the mean over the ``--window`` trials before each checkpoint.

    python benchmarks/sampler_cost.py --trials 1000 --checkpoints 300 1000 \
        --output benchmarks/results/sampler_cost.md
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import optuna

from optuna_nas import samplers, spaces


def weight(name: str, value: object) -> float:
    digest = hashlib.sha256(f"{name}={value}".encode()).digest()
    return int.from_bytes(digest[:4], "little") / 2**32


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", default="gp,evolution,reinforce,random,tpe")
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()

    space = spaces.create("darts")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    rows = []
    for name in args.samplers.split(","):
        rng = np.random.RandomState(0)

        def objective(trial: optuna.Trial, rng: np.random.RandomState = rng) -> float:
            space.suggest(trial)
            score = sum(weight(k, v) for k, v in trial.params.items())
            return score + float(rng.normal(0.0, 0.1))

        study = optuna.create_study(direction="maximize", sampler=samplers.create(name, seed=0))
        times = []
        for _ in range(args.trials):
            tick = time.perf_counter()
            trial = study.ask()
            value = objective(trial)
            study.tell(trial, value)
            times.append(time.perf_counter() - tick)
            if len(times) in args.checkpoints:
                mean_ms = 1000 * float(np.mean(times[-args.window :]))
                n_params = np.mean([len(t.params) for t in study.trials[-args.window :]])
                row = (len(times), name, mean_ms, n_params, study.best_value)
                rows.append(row)
                print(
                    f"{row[0]} {name}: {mean_ms:.0f} ms/trial, {n_params:.0f} params", flush=True
                )
    table = [
        "| trials | sampler | mean ms/trial | parameters per trial | best score |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    table += [f"| {n} | {s} | {ms:.0f} | {p:.0f} | {b:.2f} |" for n, s, ms, p, b in rows]
    text = (
        "# Sampler cost on the darts space\n\n"
        f"```\npython {shlex.join(sys.argv)}\n```\n\n"
        f"Machine: {platform.machine()}, Python {platform.python_version()}, "
        f"optuna {optuna.__version__}; mean over the {args.window} trials before each "
        "checkpoint.\n\n" + "\n".join(table) + "\n"
    )
    print(text)
    if args.output:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
