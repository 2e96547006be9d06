from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState
from scipy.stats import spearmanr

from optuna_nas import _keys, open_storage, pruners
from optuna_nas.pruners import (
    RANK_CORRELATION_ATTR,
    LearningCurvePruner,
    LowFidelityPruner,
    ObjectivePruner,
)

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

# Rungs after 1, 3 and 9 epochs of 27: steps 0, 2 and 8; the final rung is step 26.
MAX_STEP = 26
RUNGS = (0, 2, 8)


def _curve(rungs: Sequence[float], final: float) -> dict[int, float]:
    """Intermediate values at the three rungs and the final step."""
    return {**dict(zip(RUNGS, rungs, strict=True)), MAX_STEP: final}


def _add(study: optuna.Study, curve: dict[int, float], final: float | None = None) -> None:
    """A completed trial whose value is its final intermediate value, which passed every
    rung while it was not pruning (as the pruner marks such trials)."""
    value = curve[MAX_STEP] if final is None else final
    marks = {f"{_keys.FIDELITY_UNSELECTED_PREFIX}{step}": True for step in curve}
    study.add_trial(
        optuna.trial.create_trial(value=value, intermediate_values=curve, system_attrs=marks)
    )


def _study(
    finals: Sequence[float],
    rung0: Sequence[float] | None = None,
    direction: str = "maximize",
    storage: str | None = None,
    **kwargs,
) -> optuna.Study:
    """Completed trials whose rung values equal their finals unless ``rung0`` is given."""
    study = optuna.create_study(
        direction=direction, storage=storage, pruner=LowFidelityPruner(MAX_STEP, **kwargs)
    )
    for i, final in enumerate(finals):
        first = final if rung0 is None else rung0[i]
        _add(study, _curve([first, final, final], final))
    return study


def _decide(study: optuna.Study, values: dict[int, float]) -> tuple[optuna.trial.Trial, bool]:
    """Reports ``values`` as a new trial and asks the pruner after the last one."""
    trial = study.ask()
    for step, value in values.items():
        trial.report(value, step)
    return trial, trial.should_prune()


def _published(study: optuna.Study) -> dict[int, dict]:
    return {row["step"]: row for row in study.user_attrs[RANK_CORRELATION_ATTR]}


FINALS = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90]


def test_rungs_sit_at_powers_of_eta_below_max_step() -> None:
    assert pruners.create("fidelity", max_step=26).rung_steps == (0, 2, 8, 26)
    assert pruners.create("fidelity", max_step=29).rung_steps == (0, 2, 8, 29)
    assert pruners.create("fidelity", max_step=19).rung_steps == (0, 2, 19)
    assert LowFidelityPruner(15, eta=2, min_resource=2).rung_steps == (1, 3, 7, 15)
    assert LowFidelityPruner(1).rung_steps == (1,)  # too short for any rung below the final
    assert LowFidelityPruner(rung_steps=range(4)).rung_steps == (0, 1, 2, 3)
    assert LowFidelityPruner(3, rung_steps=[0, 1, 3]).rung_steps == (0, 1, 3)
    assert "fidelity" in pruners.available()


def test_promotes_exactly_the_top_third_of_a_trusted_rung() -> None:
    # Nine finished trials plus the new one: 10 values at rung 0, so the top 10 // 3 = 3 go on.
    study = _study(FINALS)
    _, pruned = _decide(study, {0: 0.82})  # third best: 0.90 and 0.85 beat it
    assert not pruned
    _, pruned = _decide(study, {0: 0.81})  # fourth best among 11: 0.90, 0.85, 0.82 beat it
    assert pruned
    row = _published(study)[0]
    assert row == {"step": 0, "correlation": pytest.approx(1.0), "pairs": 9, "trusted": True}


def test_a_tie_with_the_last_promoted_value_is_promoted() -> None:
    study = _study(FINALS)
    _, pruned = _decide(study, {0: 0.80})  # 10 values, top 3 are 0.90, 0.85, 0.80 (tie)
    assert not pruned


def test_pruned_trials_still_compete_at_their_rung() -> None:
    study = _study(FINALS)
    for value in (0.95, 0.96, 0.97):  # three strong trials that stop at rung 0 by themselves
        trial = study.ask()
        trial.report(value, 0)
        study.tell(trial, state=TrialState.PRUNED)
    # 13 values at rung 0 with the new one: top 4 go on; 0.97, 0.96, 0.95, 0.90 beat 0.86.
    _, pruned = _decide(study, {0: 0.86})
    assert pruned


def test_never_prunes_with_fewer_than_min_pairs() -> None:
    study = _study(FINALS[:5])  # perfectly correlated, but only five pairs
    _, pruned = _decide(study, {0: 0.0})
    assert not pruned
    assert _published(study)[0] == {
        "step": 0,
        "correlation": pytest.approx(1.0),
        "pairs": 5,
        "trusted": False,
    }
    _add(study, _curve([0.52, 0.52, 0.52], 0.52))  # the sixth pair makes the rung trusted
    _, pruned = _decide(study, {0: 0.0})
    assert pruned
    assert _published(study)[0]["pairs"] == 6


def test_never_prunes_below_min_correlation() -> None:
    rung0 = [0.60, 0.50, 0.75, 0.55, 0.90, 0.65, 0.85, 0.70, 0.80]
    expected = spearmanr(rung0, FINALS).statistic
    assert 0.4 < expected < 0.6
    study = _study(FINALS, rung0=rung0)
    _, pruned = _decide(study, {0: 0.0})
    assert not pruned
    row = _published(study)[0]
    assert row["correlation"] == pytest.approx(expected)
    assert row["pairs"] == 9 and not row["trusted"]

    # The same rung passes a lower bar.
    study = _study(FINALS, rung0=rung0, min_correlation=0.4)
    _, pruned = _decide(study, {0: 0.0})
    assert pruned


def test_each_rung_is_trusted_on_its_own() -> None:
    # Rung 0 is anti-correlated with the final rung; rungs 2 and 8 rank perfectly.
    study = _study(FINALS, rung0=FINALS[::-1])
    trial, pruned = _decide(study, {0: 0.0})
    assert not pruned
    trial.report(0.1, 1)
    assert not trial.should_prune()  # step 1 is no rung
    trial.report(0.1, 2)
    assert trial.should_prune()
    rows = _published(study)
    assert rows[0]["correlation"] == pytest.approx(-1.0) and not rows[0]["trusted"]
    assert rows[2]["trusted"] and rows[8]["trusted"]


def test_minimize_promotes_the_lowest_values() -> None:
    losses = [1.0 - f for f in FINALS]
    study = _study(losses, direction="minimize")
    _, pruned = _decide(study, {0: 1.0 - 0.82})
    assert not pruned
    _, pruned = _decide(study, {0: 1.0 - 0.81})
    assert pruned
    assert _published(study)[0]["correlation"] == pytest.approx(1.0)


def test_never_prunes_at_the_final_rung_or_between_rungs() -> None:
    study = _study(FINALS)
    _, pruned = _decide(study, {1: 0.0})
    assert not pruned
    _, pruned = _decide(study, {MAX_STEP: 0.0})
    assert not pruned


def test_nan_ranks_last_and_is_left_out_of_the_correlation() -> None:
    study = _study(FINALS)
    _add(study, _curve([math.nan, 0.3, 0.3], 0.3))
    _, pruned = _decide(study, {0: math.nan})
    assert pruned
    assert _published(study)[0]["pairs"] == 9  # the NaN rung value forms no pair


def test_constant_values_give_no_correlation() -> None:
    study = _study([0.5] * 8)
    _, pruned = _decide(study, {0: 0.0})
    assert not pruned
    assert _published(study)[0] == {"step": 0, "correlation": None, "pairs": 8, "trusted": False}


def test_a_completed_trial_without_the_final_step_counts_with_its_value() -> None:
    study = _study(FINALS[:5])
    curve = {0: 0.95, 2: 0.95, 8: 0.95}
    _add(study, curve, final=0.95)
    pruner = study.pruner
    assert isinstance(pruner, LowFidelityPruner)
    rows = pruner.rank_correlations(study, publish=False)
    assert [row.pairs for row in rows] == [6, 6, 6]
    assert RANK_CORRELATION_ATTR not in study.user_attrs
    pruner.rank_correlations(study)
    assert _published(study)[0]["pairs"] == 6


def test_ladder_rungs_report_at_their_index(sqlite_url: str) -> None:
    pruner = LowFidelityPruner(rung_steps=range(3))
    study = optuna.create_study(direction="maximize", storage=sqlite_url, pruner=pruner)
    rng = np.random.default_rng(0)
    for quality in rng.uniform(0.3, 0.9, size=6):
        trial = study.ask()
        values = [quality - 0.2, quality - 0.1, quality]
        for rung, value in enumerate(values):
            trial.report(float(value), rung)
            assert not trial.should_prune()  # nothing is trusted before the sixth pair
        study.tell(trial, float(values[-1]))
    _, pruned = _decide(study, {0: 0.0})
    assert pruned
    _, pruned = _decide(study, {0: 0.8})
    assert not pruned
    stored = optuna.load_study(study_name=study.study_name, storage=sqlite_url)
    rows = stored.user_attrs[RANK_CORRELATION_ATTR]
    assert [row["step"] for row in rows] == [0, 1]
    assert all(row["correlation"] == pytest.approx(1.0) and row["pairs"] == 6 for row in rows)


def test_decisions_depend_only_on_storage(sqlite_url: str) -> None:
    study = _study(FINALS, storage=sqlite_url)
    # A second process: a fresh pruner on the same storage decides the same.
    other = optuna.load_study(
        study_name=study.study_name, storage=sqlite_url, pruner=LowFidelityPruner(MAX_STEP)
    )
    for target in (study, other):
        _, pruned = _decide(target, {0: 0.79})
        assert pruned
        _, pruned = _decide(target, {0: 0.99})
        assert not pruned


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs max_step"),
        ({"max_step": -1}, "max_step must be an integer >= 0"),
        ({"max_step": 2.5}, "max_step must be an integer"),
        ({"max_step": 9, "eta": 1}, "eta must be an integer >= 2"),
        ({"max_step": 9, "min_resource": 0}, "min_resource must be"),
        ({"max_step": 9, "min_correlation": 1.5}, r"min_correlation must lie in \(-1, 1\]"),
        ({"max_step": 9, "min_correlation": "high"}, "min_correlation must be a number"),
        ({"max_step": 9, "min_pairs": 2}, "min_pairs must be an integer >= 3"),
        ({"rung_steps": []}, "rung_steps must be a non-empty"),
        ({"rung_steps": [0, 2, 2]}, "rung_steps must increase strictly"),
        ({"rung_steps": [0, 1], "max_step": 3}, "must equal max_step"),
    ],
)
def test_bad_arguments_name_the_fix(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LowFidelityPruner(**kwargs)


def test_create_reports_unknown_arguments() -> None:
    with pytest.raises(ValueError, match="invalid argument for pruner 'fidelity'"):
        pruners.create("fidelity", max_step=9, threshold=0.1)
    with pytest.raises(ValueError, match="needs max_step"):
        pruners.create("fidelity")


def test_multi_objective_study_is_refused_without_the_wrapper() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = optuna.trial.create_trial(values=[0.5, 1.0], intermediate_values={})
    with pytest.raises(ValueError, match="ObjectivePruner"):
        LowFidelityPruner(MAX_STEP).prune(study, trial)


# Multi-objective studies, pruned on one named objective.


def _mo_study(
    pruner: ObjectivePruner, storage: optuna.storages.BaseStorage | None = None
) -> optuna.Study:
    study = optuna.create_study(
        directions=["minimize", "maximize"],
        storage=storage,
        pruner=pruner,
        study_name=f"objective-pruner-{uuid.uuid4().hex}",  # the database servers are shared
    )
    study.set_metric_names(["params", "accuracy"])
    return study


def _mo_trial(
    study: optuna.Study, pruner: ObjectivePruner, curve: dict[int, float]
) -> tuple[optuna.trial.Trial, bool]:
    trial = study.ask()
    pruned = False
    for step, value in curve.items():
        pruner.report(trial, value, step)
        pruned = pruner.should_prune(trial)
        if pruned:
            break
    return trial, pruned


@pytest.mark.parametrize("storage", ["sqlite_url", "postgresql_url", "mysql_url"])
def test_objective_pruner_runs_asha_on_the_named_objective(
    storage: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(storage)
    pruner = ObjectivePruner(LowFidelityPruner(MAX_STEP), objective="accuracy")
    study = _mo_study(pruner, open_storage(url))
    for i, final in enumerate(FINALS):
        trial, pruned = _mo_trial(study, pruner, _curve([final] * 3, final))
        assert not pruned
        study.tell(trial, [1000.0 * (i + 1), final])
    trial, pruned = _mo_trial(study, pruner, {0: 0.79})  # 0.90, 0.85 and 0.80 go on
    assert pruned
    study.tell(trial, state=TrialState.PRUNED)
    trial, pruned = _mo_trial(study, pruner, {0: 0.89})
    assert not pruned

    stored = optuna.load_study(study_name=study.study_name, storage=open_storage(url))
    assert stored.user_attrs[RANK_CORRELATION_ATTR][0]["correlation"] == pytest.approx(1.0)
    curves = [t.user_attrs.get("optuna_nas:intermediate_values:accuracy") for t in stored.trials]
    assert curves[0] == {"0": 0.5, "2": 0.5, "8": 0.5, "26": 0.5}
    assert stored.trials[-2].state == TrialState.PRUNED
    assert all(t.intermediate_values == {} for t in stored.trials)  # Optuna's own stay empty


def test_objective_pruner_by_index_respects_that_objectives_direction() -> None:
    # Objective 0 is minimised: the lowest rung values go on.
    pruner = ObjectivePruner(LowFidelityPruner(MAX_STEP), objective=0)
    study = _mo_study(pruner)
    for final in FINALS:
        loss = 1.0 - final
        trial, _ = _mo_trial(study, pruner, _curve([loss] * 3, loss))
        study.tell(trial, [loss, final])
    _, pruned = _mo_trial(study, pruner, {0: 0.9})
    assert pruned
    _, pruned = _mo_trial(study, pruner, {0: 0.05})
    assert not pruned


def test_objective_pruner_drives_the_learning_curve_pruner() -> None:
    max_step = 29
    x = np.arange(1.0, max_step + 2)

    def accuracy(final: float) -> list[float]:
        return list(final - (final - 0.1) * x**-0.8)

    pruner = ObjectivePruner(LearningCurvePruner(max_step=max_step), objective="accuracy")
    study = _mo_study(pruner)
    for final in (0.9, 0.92, 0.95, 0.85, 0.8):
        trial, pruned = _mo_trial(study, pruner, dict(enumerate(accuracy(final))))
        assert not pruned
        study.tell(trial, [1.0, accuracy(final)[-1]])
    trial, pruned = _mo_trial(study, pruner, dict(enumerate(accuracy(0.6)[:12])))
    assert pruned
    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    assert attrs["optuna_nas:lce_p_improve"] < 0.05
    assert attrs["optuna_nas:lce_predicted_mean"] < 0.7
    _, pruned = _mo_trial(study, pruner, dict(enumerate(accuracy(0.97)[:12])))
    assert not pruned


def test_objective_pruner_in_a_single_objective_study_reads_plain_reports() -> None:
    study = _study(FINALS)
    study.pruner = ObjectivePruner(LowFidelityPruner(MAX_STEP), objective=0)
    _, pruned = _decide(study, {0: 0.79})
    assert pruned
    _, pruned = _decide(study, {0: 0.95})
    assert not pruned


def test_objective_pruner_keeps_the_first_value_of_a_step() -> None:
    pruner = ObjectivePruner(optuna.pruners.NopPruner(), objective="accuracy")
    study = _mo_study(pruner)
    trial = study.ask()
    pruner.report(trial, 0.5, 0)
    pruner.report(trial, 0.9, 0)
    pruner.report(trial, math.nan, 1)
    assert trial.user_attrs[pruner.attr_key] == {"0": 0.5, "1": None}
    assert not pruner.should_prune(trial)


def test_objective_pruner_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="must be an optuna BasePruner"):
        ObjectivePruner("median", objective=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="metric name or an objective index"):
        ObjectivePruner(optuna.pruners.NopPruner(), objective=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="objective index must be >= 0"):
        ObjectivePruner(optuna.pruners.NopPruner(), objective=-1)

    pruner = ObjectivePruner(optuna.pruners.NopPruner(), objective="loss")
    study = optuna.create_study(directions=["minimize", "maximize"], pruner=pruner)
    trial = study.ask()
    with pytest.raises(ValueError, match=r"not a metric name.*set_metric_names"):
        pruner.report(trial, 0.5, 0)
    study.set_metric_names(["params", "accuracy"])
    with pytest.raises(ValueError, match=r"not a metric name"):
        pruner.report(trial, 0.5, 0)

    pruner = ObjectivePruner(optuna.pruners.NopPruner(), objective=2)
    with pytest.raises(ValueError, match=r"out of range.*pass 0 to 1"):
        pruner.report(trial, 0.5, 0)
    pruner = ObjectivePruner(optuna.pruners.NopPruner(), objective=0)
    with pytest.raises(ValueError, match="step must be an integer >= 0"):
        pruner.report(trial, 0.5, -1)
    with pytest.raises(ValueError, match="must be a number"):
        pruner.report(trial, "high", 0)  # type: ignore[arg-type]
    assert trial.user_attrs.get(pruner.attr_key) is None  # nothing half-written


def test_only_trials_that_passed_a_rung_unpruned_measure_it() -> None:
    study = _study(FINALS[:5])  # 5 pairs: not trusted yet (min_pairs=6)
    trial, pruned = _decide(study, {0: 0.51})
    assert not pruned  # untrusted: goes on, and is marked as an unbiased pair for rung 0
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.system_attrs.get(f"{_keys.FIDELITY_UNSELECTED_PREFIX}0") is True
    for step, value in {2: 0.51, 8: 0.51, MAX_STEP: 0.51}.items():
        trial.report(value, step)
    study.tell(trial, 0.51)
    assert _published_now(study)[0]["pairs"] == 6 and _published_now(study)[0]["trusted"]

    # Trials promoted by the trusted rung are its top third; among them the rung's values
    # do not predict the final ones. Counted, they would drag the correlation below 0.6
    # and switch the rung off; they are not marked, so they do not count.
    rng = np.random.RandomState(0)
    for i in range(12):
        promoted = study.ask()
        high = 0.91 + 0.005 * i  # the best so far at rung 0: promoted
        promoted.report(high, 0)
        assert not promoted.should_prune()
        final = float(rng.uniform(0.5, 0.95))
        for step in (2, 8, MAX_STEP):
            promoted.report(final, step)
        study.tell(promoted, final)
    rows = _published_now(study)
    assert rows[0]["pairs"] == 6 and rows[0]["trusted"]
    _, pruned = _decide(study, {0: 0.52})
    assert pruned


def _published_now(study: optuna.Study) -> dict[int, dict]:
    pruner = study.pruner
    assert isinstance(pruner, LowFidelityPruner)
    return {row.step: asdict(row) for row in pruner.rank_correlations(study, publish=False)}
