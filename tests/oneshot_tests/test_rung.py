"""A zero-cost proxy or a one-shot score as the lowest rung of the low-fidelity pruner."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch

from optuna_nas import ArchitectureObjective, TrainingConfig, data, oneshot, spaces, training
from optuna_nas.pruners import LowFidelityPruner


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.load("mnist1d", num_samples=400)


def _space() -> spaces.SearchSpace:
    return spaces.create("nb201", channels=4, cells_per_stage=1)


def test_the_estimate_rung_sits_below_the_epoch_rungs() -> None:
    assert LowFidelityPruner(max_step=8).rung_steps == (0, 2, 8)
    assert LowFidelityPruner(max_step=8, estimate_rung=True).rung_steps == (0, 1, 3, 9)
    with pytest.raises(ValueError, match="include step 0 for the estimate yourself"):
        LowFidelityPruner(rung_steps=[0, 2], estimate_rung=True)


def test_fit_can_leave_step_zero_to_an_estimate(
    dataset: data.Dataset, device: torch.device
) -> None:
    study = optuna.create_study(direction="maximize")
    model = _space().from_params(_space().sample_params(np.random.RandomState(0)))
    trial = study.ask()
    training.fit(model, dataset, trial=trial, epochs=2, first_step=1, device=device)
    assert sorted(study.trials[0].intermediate_values) == [1, 2]
    with pytest.raises(ValueError, match="first_step must be an integer >= 0"):
        training.fit(model, dataset, epochs=1, first_step=-1, device=device)


def test_a_trusted_proxy_rung_prunes_before_training(dataset: data.Dataset) -> None:
    rung = oneshot.EstimateRung(dataset, proxy="synflow")
    objective = ArchitectureObjective(
        _space(), dataset, TrainingConfig(epochs=1), estimate_rung=rung
    )
    # Trusted from the third pair on, whatever the correlation, so that this test sees it act.
    pruner = LowFidelityPruner(
        max_step=0, estimate_rung=True, min_correlation=-0.99, min_pairs=3, eta=2
    )
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )
    study.optimize(objective, n_trials=10)
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned and len(complete) >= 3
    for trial in pruned:
        assert list(trial.intermediate_values) == [0]  # stopped before any epoch
    for trial in study.trials:
        score = trial.user_attrs["optuna_nas:proxy_score"]
        arch = _space().from_params(trial.params)
        assert score == pytest.approx(rung.score(arch))  # the same for the same cell
        assert trial.intermediate_values[0] == pytest.approx(score)
    for trial in complete:
        assert sorted(trial.intermediate_values) == [0, 1]
        assert trial.value == trial.intermediate_values[1]
    correlations = study.user_attrs["optuna_nas:rank_correlation"]
    assert correlations[0]["step"] == 0 and correlations[0]["pairs"] >= 3


def test_a_supernet_gives_the_one_shot_score_as_the_rung(
    dataset: data.Dataset, device: torch.device
) -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    oneshot.train_supernet(supernet, dataset, epochs=1, device=device)
    rung = oneshot.EstimateRung(dataset, supernet=supernet)
    assert rung.name == "oneshot"
    objective = ArchitectureObjective(space, dataset, TrainingConfig(epochs=1), estimate_rung=rung)
    study = optuna.create_study(
        direction="maximize", pruner=LowFidelityPruner(max_step=0, estimate_rung=True)
    )
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        score = trial.user_attrs["optuna_nas:oneshot_score"]
        assert 0.0 <= score <= 1.0 and not math.isnan(score)
        assert trial.intermediate_values[0] == score
        assert oneshot.score_architecture(
            supernet, space.from_params(trial.params), dataset, device=device
        ) == (score)
    with pytest.raises(ValueError, match="unknown proxy 'flop'"):
        oneshot.EstimateRung(dataset, proxy="flop")
