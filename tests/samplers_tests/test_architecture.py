"""No sampler of ours evaluates an architecture twice on a user's conditional objective.

The objective below has 279 architectures: a family (``conv``, ``sep`` or ``pool``), a
kernel and a width only for the two convolutions, and a depth. Trials store only their
active parameters; a plan that mutates ``conv`` into ``pool`` still holds the old kernel
and width, and must still count as a repeat of the ``pool`` trial with the same depth.
"""

from __future__ import annotations

import hashlib

import optuna
import pytest

from optuna_nas import samplers
from optuna_nas.samplers._architecture import TakenArchitectures

N_ARCHITECTURES = 2 * 3 * 5 * 9 + 9  # (conv, sep) x kernel x width x depth, plus pool x depth


def objective(trial: optuna.Trial) -> float:
    family = trial.suggest_categorical("family", ["conv", "sep", "pool"])
    score = {"conv": 1.0, "sep": 0.8, "pool": 0.2}[family]
    if family != "pool":
        kernel = trial.suggest_categorical("kernel", [3, 5, 7])
        width = trial.suggest_categorical("width", [8, 16, 32, 64, 128])
        score += {3: 0.3, 5: 0.2, 7: 0.0}[kernel] + width / 256
    depth = trial.suggest_int("depth", 1, 9)
    return score - abs(depth - 6) / 10


def architecture(params: dict) -> tuple:
    return tuple(sorted(params.items()))


@pytest.mark.parametrize("name", ["evolution", "reinforce", "random", "gp"])
def test_no_architecture_is_evaluated_twice(name: str) -> None:
    sampler = samplers.create(name, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=60)
    seen = [architecture(t.params) for t in study.trials]
    repeats = len(seen) - len(set(seen))
    assert repeats == 0, f"{name} repeated {repeats} architectures in 60 trials"


def test_a_plan_repeats_a_trial_it_agrees_with_on_the_trials_parameters() -> None:
    taken = TakenArchitectures()
    taken.add({"family": "pool", "depth": 3})
    taken.add({"family": "conv", "kernel": 3, "width": 8, "depth": 3})
    # Inactive kernel and width in the plan do not make a new architecture.
    assert {"family": "pool", "kernel": 5, "width": 64, "depth": 3} in taken
    assert {"family": "conv", "kernel": 3, "width": 8, "depth": 3} in taken
    assert {"family": "conv", "kernel": 5, "width": 8, "depth": 3} not in taken
    assert {"family": "pool", "depth": 4} not in taken
    # A plan that lacks a trial's parameter would draw it at random: not a sure repeat.
    assert {"family": "conv", "depth": 3} not in taken
    assert len(taken) == 2


def test_with_a_key_plans_are_compared_by_it() -> None:
    taken = TakenArchitectures(key=lambda g: g["depth"] % 2)
    taken.add({"depth": 3})
    assert {"depth": 5} in taken
    assert {"depth": 4} not in taken


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_repeats_nothing_from_its_first_population_on(seed: int) -> None:
    # Its random first population is drawn without repeats too, once trials have shown
    # the decisions (tests/samplers_tests/test_architecture.py measured 15 of 60 before).
    study = optuna.create_study(
        direction="maximize", sampler=samplers.create("evolution", seed=seed)
    )
    study.optimize(objective, n_trials=60)
    seen = [architecture(t.params) for t in study.trials]
    assert len(seen) == len(set(seen))


def test_gp_candidates_without_the_space_do_not_retrace_a_trial() -> None:
    # The candidate search draws every decision the study has seen, so the repeat test
    # sees whole architectures (before: 34.8 repeats in 60 trials on a 2-layer chain).
    from optuna_nas import spaces

    chain = spaces.create(
        "chain", max_layers=2, filters=[4, 8], kernel_sizes=[3, 5], strides=[1], dilations=[1]
    )

    def score(trial: optuna.Trial) -> float:
        text = str(chain.suggest(trial))
        return text.count("conv") + int(hashlib.sha256(text.encode()).hexdigest()[:6], 16) / 2**24

    study = optuna.create_study(direction="maximize", sampler=samplers.create("gp", seed=0))
    study.optimize(score, n_trials=40)
    modelled = study.trials[10:]  # after the 10 random startup trials
    earlier = {architecture(t.params) for t in study.trials[:10]}
    repeats = 0
    for t in modelled:
        repeats += architecture(t.params) in earlier
        earlier.add(architecture(t.params))
    assert repeats <= 1
