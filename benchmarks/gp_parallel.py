"""``gp`` with simulated parallel workers: every query is planned while others run.

The study asks a trial, evaluates it at once, and tells it only after ``workers - 1``
later trials were asked, so every plan sees ``workers - 1`` running trials, as that many
workers sharing one storage do. Modes:

- ``gp``: ours at its defaults (running trials are pending points of its qLogNEI);
- ``tpe``: Optuna's multivariate TPE with ``constant_liar=True``, as its users run it in
  parallel.

The rejected kriging believer (running trials join the GP at its posterior mean) was
measured as ``gp`` with ``benchmarks/results/gp_kriging_believer.patch`` applied and
``--label kb``.

Each run appends one JSON line (the best value found, the test accuracy of that
architecture and the run's seconds) to ``--runs``, and is skipped when it is there
already; the summary is the mean and standard error per problem and mode. The runs file
holds NAS-Bench-201 table values when a problem is one, so it stays local::

    python benchmarks/gp_parallel.py --modes gp,tpe --problems nb201-cifar10-A \
        --workers 4 --seeds 100:200 --runs gp_parallel.jsonl
"""

from __future__ import annotations

import argparse
import collections
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import optuna

from optuna_nas import _keys, samplers
from optuna_nas.benchmarks import Problem, default_problems


def make_sampler(mode: str, seed: int) -> optuna.samplers.BaseSampler:
    if mode == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    if mode != "gp":
        raise SystemExit(f"unknown mode {mode!r}: use gp or tpe")
    return samplers.create("gp", seed=seed)


def run(problem: Problem, mode: str, seed: int, workers: int, label: str) -> dict[str, Any]:
    """One search of ``problem.n_queries`` queries (100 under a time budget)."""
    objective = problem.make_objective()
    start = time.perf_counter()
    study = optuna.create_study(direction="maximize", sampler=make_sampler(mode, seed))
    running: collections.deque[tuple[optuna.Trial, float]] = collections.deque()
    best, test = -float("inf"), None

    def tell_oldest() -> None:
        nonlocal best, test
        trial, value = running.popleft()
        study.tell(trial, value)
        if value > best:
            best, test = value, trial.user_attrs.get(_keys.BENCH_TEST_ACCURACY)

    for _ in range(problem.n_queries or 100):
        trial = study.ask()
        running.append((trial, float(objective(trial))))
        if len(running) >= workers:
            tell_oldest()
    while running:
        tell_oldest()
    return {"problem": problem.name, "mode": label, "seed": seed, "workers": workers,
            "best_value": best, "test_of_best": test,
            "seconds": time.perf_counter() - start}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="gp,tpe")
    parser.add_argument("--label", default=None, help="records gp's runs under this name")
    parser.add_argument("--problems", required=True, help="comma-separated suite names")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seeds", default="0:20", help="FIRST:END")
    parser.add_argument("--runs", type=Path, required=True)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    first, end = (int(x) for x in args.seeds.split(":"))
    lines = args.runs.read_text().splitlines() if args.runs.exists() else []
    done = [json.loads(x) for x in lines]
    keys = {(d["problem"], d["mode"], d["seed"], d["workers"]) for d in done}
    by_name = {p.name: p for p in default_problems()}
    names = args.problems.split(",")
    modes = args.modes.split(",")
    labels = [args.label if mode == "gp" and args.label else mode for mode in modes]
    for name in names:
        for mode, label in zip(modes, labels, strict=True):
            for seed in range(first, end):
                if (name, label, seed, args.workers) in keys:
                    continue
                record = run(by_name[name], mode, seed, args.workers, label)
                done.append(record)
                with args.runs.open("a") as f:
                    f.write(json.dumps(record) + "\n")
    print("| problem | mode | runs | best value mean ± SE | test of that cell | s per run |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name in names:
        for mode in labels:
            rows = [
                d
                for d in done
                if (d["problem"], d["mode"], d["workers"]) == (name, mode, args.workers)
                and first <= d["seed"] < end
            ]
            if not rows:
                continue
            v = np.array([d["best_value"] for d in rows])
            t = np.array([d["test_of_best"] for d in rows], dtype=float)
            se = v.std(ddof=1) / np.sqrt(len(v)) if len(v) > 1 else float("nan")
            seconds = np.mean([d.get("seconds", np.nan) for d in rows])
            print(
                f"| {name} | {mode} | {len(v)} | {v.mean():.4f} ± {se:.4f} | {t.mean():.4f} "
                f"| {seconds:.1f} |"
            )


if __name__ == "__main__":
    main()
