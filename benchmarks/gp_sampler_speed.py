"""Time per trial of :class:`~optuna_nas.samplers.ConditionalGPSampler` next to Optuna's GPSampler.

Both samplers optimise the same cheap objective: a synthetic score of a chain-space
architecture (:class:`~optuna_nas.spaces.ChainSpace`), which rewards convolutions with
64 filters and kernel 5, sepconvs less, pools and identities little, and penalises
depths other than three, plus Gaussian noise. Its conditional parameters are exactly
what the two samplers treat differently: Optuna's ``GPSampler`` models only the
parameters present in every trial (``n_layers`` and ``layer0/op``) and draws the rest at
random, ours models the union of all parameters seen.

The two studies advance in lockstep, one trial each in alternating order, so both see
the same machine load. A trial's time is the wall clock of ``ask``, the objective and
``tell``; the objective takes microseconds, so this is the sampler's time (Optuna's
``GPSampler`` does its work at the first ``suggest``, ours in ``ask``). For each
checkpoint ``c`` the table gives the median and mean over trials ``c - window + 1`` to
``c`` and the best score found by trial ``c``.

Usage::

    python benchmarks/gp_sampler_speed.py --trials 300 --checkpoints 100 200 300 \\
        --output benchmarks/results/gp_sampler_speed.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import botorch
import gpytorch
import numpy as np
import optuna
import torch

from optuna_nas import spaces
from optuna_nas.samplers import ConditionalGPSampler

OP_SCORE = {"conv": 1.0, "sepconv": 0.6, "pool": 0.2, "identity": 0.0}


def make_objective(
    space: spaces.SearchSpace, seed: int, noise: float
) -> Callable[[optuna.Trial], float]:
    """The synthetic chain-space score, with its own noise generator per study."""
    rng = np.random.RandomState(seed)

    def objective(trial: optuna.Trial) -> float:
        layers = space.suggest(trial).genotype
        score = -0.3 * abs(len(layers) - 3)
        for layer in layers:
            score += OP_SCORE[layer.op]
            if layer.op == "conv":
                score += 0.3 * (layer.filters == 64) + 0.2 * (layer.kernel_size == 5)
        return score + noise * rng.normal()

    return objective


def run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Runs both studies in lockstep; per sampler, each trial's seconds and running best."""
    space = spaces.create("chain", max_layers=args.max_layers)
    samplers: dict[str, optuna.samplers.BaseSampler] = {
        "ConditionalGPSampler": ConditionalGPSampler(seed=args.seed, space=space),
        "optuna GPSampler": optuna.samplers.GPSampler(
            seed=args.seed, warn_independent_sampling=False
        ),
    }
    studies = {
        name: optuna.create_study(direction="maximize", sampler=sampler)
        for name, sampler in samplers.items()
    }
    objectives = {name: make_objective(space, args.seed, args.noise) for name in samplers}
    results: dict[str, dict[str, list[float]]] = {
        name: {"seconds": [], "best": []} for name in samplers
    }
    names = list(samplers)
    for i in range(args.trials):
        for name in names if i % 2 == 0 else names[::-1]:
            study = studies[name]
            start = time.perf_counter()
            trial = study.ask()
            value = objectives[name](trial)
            study.tell(trial, value)
            results[name]["seconds"].append(time.perf_counter() - start)
            results[name]["best"].append(study.best_value)
        if (i + 1) % 25 == 0:
            print(f"{i + 1} trials", file=sys.stderr, flush=True)
    return results


def report(
    args: argparse.Namespace,
    command: str,
    results: dict[str, dict[str, list[float]]],
    load: tuple[tuple[float, ...], tuple[float, ...]],
) -> str:
    """The markdown report."""
    lines = [
        "# ConditionalGPSampler vs Optuna GPSampler: time per trial",
        "",
        f"- command: `{command}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"botorch {botorch.__version__}, gpytorch {gpytorch.__version__}, "
        f"optuna {optuna.__version__}",
        f"- CPU: {platform.processor() or platform.machine()}, "
        f"{len(os.sched_getaffinity(0))} usable cores; load average (1, 5, 15 min) "
        f"{_load(load[0])} at the start, {_load(load[1])} at the end",
        f"- objective: chain space, max_layers={args.max_layers}, synthetic score with "
        f"noise sd {args.noise}; seed {args.seed}; both studies in lockstep",
        "",
        f"Milliseconds per trial (ask + objective + tell) over the last {args.window} "
        "trials before each checkpoint, and the best score so far (optimum 5.7 without "
        "noise).",
        "",
        "| trials | sampler | median ms | mean ms | best score |",
        "|---:|---|---:|---:|---:|",
    ]
    for checkpoint in args.checkpoints:
        for name, result in results.items():
            window = result["seconds"][max(0, checkpoint - args.window) : checkpoint]
            lines.append(
                f"| {checkpoint} | {name} | {1000 * statistics.median(window):.0f} | "
                f"{1000 * statistics.fmean(window):.0f} | {result['best'][checkpoint - 1]:.2f} |"
            )
    return "\n".join(lines) + "\n"


def _load(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=300, help="trials per sampler")
    parser.add_argument(
        "--checkpoints", type=int, nargs="+", default=[100, 200, 300], help="trial counts"
    )
    parser.add_argument("--window", type=int, default=20, help="trials per checkpoint")
    parser.add_argument("--max-layers", type=int, default=4, help="depth of the chain space")
    parser.add_argument("--noise", type=float, default=0.1, help="sd of the score's noise")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="also write the report here")
    args = parser.parse_args(argv)
    if any(not args.window <= c <= args.trials for c in args.checkpoints):
        parser.error("each checkpoint must lie between --window and --trials")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark, prints the markdown report and optionally writes it."""
    args = parse_args(argv)
    command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", FutureWarning)
    load_start = os.getloadavg()
    results = run(args)
    text = report(args, command, results, (load_start, os.getloadavg()))
    print(text)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
