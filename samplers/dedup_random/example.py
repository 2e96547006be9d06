"""Searches NAS-Bench-201 cells with DeduplicatingRandomSampler loaded through OptunaHub.

The score is a cheap stand-in for accuracy (the number of 3x3 convolutions in the cell), so
the example runs in seconds; replace it with ``optuna_nas.training.fit`` for a real search.
"""

from __future__ import annotations

from pathlib import Path

import optuna
import optunahub

from optuna_nas import spaces


def main(n_trials: int = 30, seed: int = 0) -> optuna.Study:
    here = Path(__file__).resolve().parent
    module = optunahub.load_local_module(package=here.name, registry_root=str(here.parent))
    space = spaces.create("nb201")

    def objective(trial: optuna.Trial) -> float:
        cell = space.suggest(trial).genotype
        return float(sum(op == "nor_conv_3x3" for op in cell))

    study = optuna.create_study(
        direction="maximize", sampler=module.DeduplicatingRandomSampler(seed=seed)
    )
    study.optimize(objective, n_trials=n_trials)
    return study


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best = main().best_trial
    print(f"best score {best.value} with {best.params}")
