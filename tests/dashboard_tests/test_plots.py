from __future__ import annotations

import itertools
import json
import math

import numpy as np
import optuna
import pytest

from optuna_nas.dashboard import PLOT_IDS, accuracy_figure, pareto_front, save_plots

PLOT_PREFIX = "dashboard:plot_data:"


def _dominated(i: int, costs: list[float], scores: list[float]) -> bool:
    return any(
        costs[j] <= costs[i]
        and scores[j] >= scores[i]
        and (costs[j] < costs[i] or scores[j] > scores[i])
        for j in range(len(costs))
    )


def test_pareto_front_small_cases() -> None:
    assert pareto_front([], []) == []
    assert pareto_front([10, 20, 30, 15], [0.5, 0.7, 0.6, 0.5]) == [0, 1]
    assert pareto_front([5, 5, 1], [0.9, 0.9, 0.1]) == [2, 0]  # one of two equal points
    with pytest.raises(ValueError, match="one per point"):
        pareto_front([1, 2], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        pareto_front([1, math.nan], [0.5, 0.6])


def test_pareto_front_matches_brute_force() -> None:
    rng = np.random.RandomState(0)
    for _ in range(200):
        n = rng.randint(1, 25)
        costs = rng.randint(1, 8, size=n).astype(float).tolist()
        scores = rng.randint(0, 6, size=n).astype(float).tolist()
        front = pareto_front(costs, scores)
        undominated = {i for i in range(n) if not _dominated(i, costs, scores)}
        # Exactly one index per distinct undominated (cost, score), in increasing cost.
        assert {(costs[i], scores[i]) for i in front} == {
            (costs[i], scores[i]) for i in undominated
        }
        assert len(front) == len({(costs[i], scores[i]) for i in undominated})
        assert all(costs[a] < costs[b] for a, b in itertools.pairwise(front))


def _study() -> optuna.Study:
    study = optuna.create_study(study_name="plots", direction="maximize")
    rows = [(0.50, 1000, 2.0), (0.70, 5000, 3.0), (0.60, 8000, 1.0), (0.65, 3000, 4.0)]
    for value, params, latency in rows:
        study.add_trial(
            optuna.trial.create_trial(
                value=value, user_attrs={"n_params": params, "latency_ms": latency}
            )
        )
    # Neither a failed trial nor one without the cost attribute is plotted.
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.add_trial(optuna.trial.create_trial(value=0.99, user_attrs={}))
    return study


def test_accuracy_figure_highlights_the_front() -> None:
    figure = json.loads(accuracy_figure(_study(), "n_params").to_json())
    trials, front = figure["data"]
    assert trials["x"] == [1000, 5000, 8000, 3000]
    assert trials["y"] == [0.5, 0.7, 0.6, 0.65]
    assert front["name"] == "Pareto front"
    assert list(zip(front["x"], front["y"], strict=True)) == [
        (1000, 0.5),
        (3000, 0.65),
        (5000, 0.7),
    ]
    assert figure["layout"]["xaxis"]["type"] == "log"
    latency = json.loads(accuracy_figure(_study(), "latency_ms").to_json())
    assert latency["data"][1]["x"] == [1.0, 3.0]  # 2.0 ms (0.5) loses to 1.0 ms (0.6)


def test_save_plots_replaces_instead_of_adding() -> None:
    study = _study()
    assert save_plots(study) == list(PLOT_IDS.values())
    keys = {
        k
        for k in study._storage.get_study_system_attrs(study._study_id)
        if k.startswith(PLOT_PREFIX)
    }
    assert {k.split(":")[2] for k in keys} == set(PLOT_IDS.values())
    study.add_trial(optuna.trial.create_trial(value=0.9, user_attrs={"n_params": 900}))
    save_plots(study)
    ids = {
        k.split(":")[2]
        for k in study._storage.get_study_system_attrs(study._study_id)
        if k.startswith(PLOT_PREFIX)
    }
    assert ids == set(PLOT_IDS.values())


def test_save_plots_without_completed_trials_saves_nothing() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    assert save_plots(study) == []
    assert not any(
        k.startswith(PLOT_PREFIX) for k in study._storage.get_study_system_attrs(study._study_id)
    )
    empty = accuracy_figure(study)
    assert not empty.data
    assert "no completed trial" in empty.layout.annotations[0].text
