"""How often samplers re-evaluate an architecture on conditional objectives (no ``space=``).

Two plain Optuna objectives whose parameters exist only when active; evaluation is free,
so only the samplers' choices count:

* ``family`` (279 architectures; the objective of tests/samplers_tests/test_architecture.py,
  used while writing the repeat rule): a family (conv, sep, pool), kernel and width only
  for the convolutions, a depth.
* ``chain`` (held out: never used while writing the rule): ``spaces.create("chain",
  max_layers=2, filters=[4, 8], ...)`` suggested in a plain objective, scored by a fixed
  pseudo-random value per architecture plus a term for conv layers.

For each sampler: repeated architectures per run (of ``--trials``) and the best value
found, mean over ``--seeds`` seeds. Ours at their defaults beside Optuna's samplers at
their defaults and a small grid of TPE's ``n_startup_trials``.

    python benchmarks/conditional_repeats.py --seeds 10 --trials 60 \
        --output benchmarks/results/conditional_repeats.md
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
import warnings
from collections.abc import Callable

import optuna

from optuna_nas import samplers, spaces


def family(trial: optuna.Trial) -> float:
    fam = trial.suggest_categorical("family", ["conv", "sep", "pool"])
    score = {"conv": 1.0, "sep": 0.8, "pool": 0.2}[fam]
    if fam != "pool":
        kernel = trial.suggest_categorical("kernel", [3, 5, 7])
        width = trial.suggest_categorical("width", [8, 16, 32, 64, 128])
        score += {3: 0.3, 5: 0.2, 7: 0.0}[kernel] + width / 256
    depth = trial.suggest_int("depth", 1, 9)
    return score - abs(depth - 6) / 10


CHAIN = spaces.create(
    "chain", max_layers=2, filters=[4, 8], kernel_sizes=[3, 5], strides=[1], dilations=[1]
)


def chain(trial: optuna.Trial) -> float:
    arch = CHAIN.suggest(trial)
    text = str(arch)
    noise = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 2**32
    return noise + 0.3 * text.count("conv")


OBJECTIVES: dict[str, Callable[[optuna.Trial], float]] = {"family": family, "chain": chain}


def make(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name.startswith("tpe(n_startup="):
        n = int(name.split("=")[1].rstrip(")"))
        return optuna.samplers.TPESampler(n_startup_trials=n, seed=seed)
    if name == "tpe(multivariate, group)":
        return optuna.samplers.TPESampler(multivariate=True, group=True, seed=seed)
    return samplers.create(name, seed=seed)


SAMPLERS = [
    "evolution",
    "reinforce",
    "random",
    "gp",
    "tpe",
    "tpe(n_startup=5)",
    "tpe(n_startup=20)",
    "tpe(multivariate, group)",
    "optuna-random",
    "optuna-gp",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    lines = [
        "# Repeated architectures on conditional objectives",
        "",
        f"`python benchmarks/conditional_repeats.py --seeds {args.seeds} --trials "
        f"{args.trials}`; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"x86_64 CPU (2 cores), Optuna {optuna.__version__}. Mean over seeds 0-{args.seeds - 1}.",
        "",
        "| sampler | family: repeats | family: best | chain (held out): repeats "
        "| chain: best | ms/trial |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in SAMPLERS:
        cells = []
        elapsed, n = 0.0, 0
        for objective in OBJECTIVES.values():
            repeats, best = [], []
            for seed in range(args.seeds):
                study = optuna.create_study(direction="maximize", sampler=make(name, seed))
                start = time.perf_counter()
                study.optimize(objective, n_trials=args.trials)
                elapsed += time.perf_counter() - start
                n += args.trials
                seen = [tuple(sorted(t.params.items())) for t in study.trials]
                repeats.append(len(seen) - len(set(seen)))
                best.append(study.best_value)
            cells += [f"{statistics.mean(repeats):.1f}", f"{statistics.mean(best):.3f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {1000 * elapsed / n:.1f} |")
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
