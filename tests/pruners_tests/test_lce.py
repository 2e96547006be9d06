from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from optuna_nas import data, pruners, spaces
from optuna_nas.pruners import CurvePFN, LearningCurvePruner, _pfn, _pfn_prior
from optuna_nas.training import fit, seed_everything

MAX_STEP = 29
ATTRS = (
    "optuna_nas:lce_predicted_mean",
    "optuna_nas:lce_predicted_std",
    "optuna_nas:lce_p_improve",
)
PREDICTIONS = "optuna_nas:lce_predictions"


def _curve(final: float, n: int = MAX_STEP + 1, noise: float = 0.005, seed: int = 0) -> list:
    """An accuracy curve rising from 0.1 towards ``final``."""
    x = np.arange(1.0, n + 1)
    rng = np.random.default_rng(seed)
    clean = final - (final - 0.1) * x**-0.8
    return list(np.clip(clean + rng.normal(0.0, noise, n), 0.0, 1.0))


def _study(
    pruner: optuna.pruners.BasePruner,
    finals: Sequence[float] = (0.9, 0.92, 0.95, 0.85, 0.8),
    direction: str = "maximize",
    history: tuple[float, float] | None = None,
) -> optuna.Study:
    """A study with completed trials ending at ``finals``; ``history=(error, std)`` records
    on each of them a prediction at every step that missed its final value by ``error``
    (final minus predicted, in the objective's units) with standard deviation ``std``."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    for i, final in enumerate(finals):
        curve = _curve(final, seed=100 + i)
        if direction == "minimize":
            curve = [1.0 - v for v in curve]
        system_attrs = {}
        if history is not None:
            error, std = history
            system_attrs[PREDICTIONS] = [
                [n, curve[-1] - error, std] for n in range(4, MAX_STEP + 1)
            ]
        study.add_trial(
            optuna.trial.create_trial(
                value=curve[-1],
                intermediate_values=dict(enumerate(curve)),
                system_attrs=system_attrs,
            )
        )
    return study


def _report(study: optuna.Study, values: Sequence[float]) -> tuple[optuna.trial.Trial, bool]:
    """Reports ``values`` as a new trial and asks the study's pruner once, at the end."""
    trial = study.ask()
    for step, value in enumerate(values):
        trial.report(float(value), step)
    return trial, trial.should_prune()


def _attrs(study: optuna.Study, trial: optuna.trial.Trial) -> dict:
    return study._storage.get_trial(trial._trial_id).user_attrs


def test_prunes_a_hopeless_curve_and_stores_the_prediction() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP))
    trial, pruned = _report(study, _curve(0.6)[:12])
    assert pruned
    attrs = _attrs(study, trial)
    assert set(ATTRS) <= set(attrs)
    assert attrs["optuna_nas:lce_predicted_mean"] == pytest.approx(0.55, abs=0.05)
    assert 0.0 < attrs["optuna_nas:lce_predicted_std"] < 0.1
    assert 0.0 <= attrs["optuna_nas:lce_p_improve"] < 0.05


def test_keeps_a_clearly_better_curve() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP))
    values = _curve(0.99)[:12]
    best = max(t.value for t in study.trials)
    assert values[-1] < best  # still behind: the decision rests on the extrapolation
    trial, pruned = _report(study, values)
    assert not pruned
    attrs = _attrs(study, trial)
    assert attrs["optuna_nas:lce_p_improve"] > 0.5
    assert attrs["optuna_nas:lce_predicted_mean"] > best


def test_calibration_holds_back_where_extrapolations_proved_wrong() -> None:
    hopeless = _curve(0.6)[:12]
    # Every completed trial was predicted 0.3 below its final value, with a std of 0.01.
    wrong = _study(LearningCurvePruner(max_step=MAX_STEP), history=(0.3, 0.01))
    trial, pruned = _report(wrong, hopeless)
    assert not pruned
    attrs = _attrs(wrong, trial)
    assert attrs["optuna_nas:lce_std_scale"] > 10.0
    assert attrs["optuna_nas:lce_p_improve"] >= 0.05
    assert attrs["optuna_nas:lce_predicted_std"] > 10.0 * _fitted_std(wrong, trial)
    # Accurate history (errors of half a std) leaves the prediction as fitted.
    accurate = _study(LearningCurvePruner(max_step=MAX_STEP), history=(0.005, 0.01))
    trial, pruned = _report(accurate, hopeless)
    assert pruned
    assert _attrs(accurate, trial)["optuna_nas:lce_std_scale"] == 1.0
    # Without calibration, the wrong history is ignored and nothing is recorded.
    uncalibrated = LearningCurvePruner(max_step=MAX_STEP, calibration_quantile=None)
    study = _study(uncalibrated, history=(0.3, 0.01))
    trial, pruned = _report(study, hopeless)
    assert pruned
    assert PREDICTIONS not in study._storage.get_trial(trial._trial_id).system_attrs


def test_calibration_respects_the_direction() -> None:
    hopeless = [1.0 - v for v in _curve(0.6)[:12]]
    # Losses predicted 0.3 too high: the trials ended far better (lower) than foreseen.
    wrong = _study(
        LearningCurvePruner(max_step=MAX_STEP), direction="minimize", history=(-0.3, 0.01)
    )
    trial, pruned = _report(wrong, hopeless)
    assert not pruned
    assert _attrs(wrong, trial)["optuna_nas:lce_std_scale"] > 10.0
    accurate = _study(
        LearningCurvePruner(max_step=MAX_STEP), direction="minimize", history=(-0.005, 0.01)
    )
    assert _report(accurate, hopeless)[1]


def test_calibration_learns_from_the_study_and_is_shared_by_workers() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP)
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i, final in enumerate((0.9, 0.92, 0.95, 0.85, 0.8)):
        curve = _curve(final, seed=100 + i)
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(value, step)
            assert not trial.should_prune()
        study.tell(trial, curve[-1])
    # Startup trials cannot be pruned, but every step from min_steps was extrapolated.
    for frozen in study.get_trials(states=(TrialState.COMPLETE,)):
        records = frozen.system_attrs[PREDICTIONS]
        reported = [r[0] for r in records]
        assert reported == sorted(reported) and reported[-1] == MAX_STEP
        assert len(reported) >= MAX_STEP - 6
        assert not set(ATTRS) & set(frozen.user_attrs)
    trial, pruned = _report(study, _curve(0.6)[:12])
    assert pruned
    attrs = _attrs(study, trial)
    assert 1.0 <= attrs["optuna_nas:lce_std_scale"] < 3.0
    # A second worker, with a pruner of its own, rebuilds the same calibration from storage.
    other = optuna.load_study(
        study_name=study.study_name,
        storage=study._storage,
        pruner=LearningCurvePruner(max_step=MAX_STEP),
    )
    frozen = study._storage.get_trial(trial._trial_id)
    assert other.pruner.prune(other, frozen)
    assert _attrs(study, trial)["optuna_nas:lce_std_scale"] == attrs["optuna_nas:lce_std_scale"]


def _fitted_std(study: optuna.Study, trial: optuna.trial.Trial) -> float:
    return study._storage.get_trial(trial._trial_id).system_attrs[PREDICTIONS][-1][2]


def test_never_prunes_before_min_steps() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP, min_steps=8))
    trial, pruned = _report(study, _curve(0.3)[:7])
    assert not pruned
    assert not set(ATTRS) & set(_attrs(study, trial))
    _, pruned = _report(study, _curve(0.3)[:8])
    assert pruned


def test_never_prunes_before_n_startup_trials_completed() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP, n_startup_trials=3)
    study = _study(pruner, finals=(0.9, 0.95))
    study.add_trial(optuna.trial.create_trial(state=TrialState.FAIL))
    _, pruned = _report(study, _curve(0.3)[:12])
    assert not pruned
    study = _study(pruner, finals=(0.9, 0.95, 0.92))
    _, pruned = _report(study, _curve(0.3)[:12])
    assert pruned


@pytest.mark.parametrize(
    "values",
    [np.full(12, 0.1), [*_curve(0.3)[:6], math.nan, *_curve(0.3)[7:12]]],
    ids=["flat", "nan"],
)
def test_never_prunes_a_degenerate_curve(values: Sequence[float]) -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP))
    trial, pruned = _report(study, values)
    assert not pruned
    assert not set(ATTRS) & set(_attrs(study, trial))


def test_never_prunes_a_trial_that_already_reaches_the_best() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP), finals=(0.5, 0.6, 0.55, 0.4, 0.6))
    # Rises fast to 0.65 and then drops: extrapolated low, but already beyond the best.
    values = [*_curve(0.66, noise=0.0)[:10], 0.63, 0.61]
    assert values[-1] >= max(t.value for t in study.trials)
    trial, pruned = _report(study, values)
    assert not pruned
    assert "optuna_nas:lce_p_improve" not in _attrs(study, trial)


def test_never_prunes_at_max_step() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP)
    study = _study(pruner)
    trial, pruned = _report(study, _curve(0.5))
    assert not pruned
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.last_step == MAX_STEP
    _, pruned = _report(study, _curve(0.5)[:MAX_STEP])
    assert pruned


def test_interval_steps_skips_decisions() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP, min_steps=6, interval_steps=4))
    assert _report(study, _curve(0.3)[:10])[1]
    assert not _report(study, _curve(0.3)[:11])[1]


def test_minimize_direction() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP)
    study = _study(pruner, direction="minimize")
    hopeless = [1.0 - v for v in _curve(0.6)[:12]]
    trial, pruned = _report(study, hopeless)
    assert pruned
    assert _attrs(study, trial)["optuna_nas:lce_predicted_mean"] == pytest.approx(0.45, abs=0.05)
    promising = [1.0 - v for v in _curve(0.99)[:12]]
    trial, pruned = _report(study, promising)
    assert not pruned
    assert _attrs(study, trial)["optuna_nas:lce_p_improve"] > 0.5


def test_unbounded_loss() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP, bounds=None)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    x = np.arange(1.0, MAX_STEP + 2)
    for floor in (0.2, 0.3, 0.25, 0.4, 0.35):
        loss = floor + 3.0 * x**-0.7
        study.add_trial(
            optuna.trial.create_trial(value=loss[-1], intermediate_values=dict(enumerate(loss)))
        )
    _, pruned = _report(study, (1.5 + 3.0 * x**-0.7)[:12])
    assert pruned
    _, pruned = _report(study, (0.05 + 3.0 * x**-0.7)[:12])
    assert not pruned


def test_pruned_trials_keep_their_prediction_in_optimize() -> None:
    rng = np.random.default_rng(0)
    pruner = LearningCurvePruner(max_step=MAX_STEP, n_startup_trials=3)
    study = optuna.create_study(direction="maximize", pruner=pruner)

    def objective(trial: optuna.Trial) -> float:
        final = 0.95 if trial.number < 3 else 0.5
        for step, value in enumerate(_curve(final, seed=int(rng.integers(1000)))):
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return value

    study.optimize(objective, n_trials=6)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert len(pruned) == 3
    for trial in pruned:
        assert trial.user_attrs["optuna_nas:lce_p_improve"] < 0.05
        assert trial.user_attrs["optuna_nas:lce_predicted_mean"] < 0.95


def test_multi_objective_study_is_rejected() -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP)
    study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner)
    frozen = optuna.trial.create_trial(
        state=TrialState.RUNNING, intermediate_values=dict(enumerate(_curve(0.5)[:10]))
    )
    with pytest.raises(ValueError, match="single-objective"):
        pruner.prune(study, frozen)


def test_create_by_name() -> None:
    pruner = pruners.create("lce", max_step=29)
    assert isinstance(pruner, LearningCurvePruner)
    assert pruner._max_step == 29
    assert pruner._min_steps == 4
    assert "lce" in pruners.available()
    assert pruners.create("lce", max_step=29, threshold=0.1)._threshold == 0.1
    with pytest.raises(ValueError, match="needs max_step"):
        pruners.create("lce")
    with pytest.raises(ValueError, match="invalid argument for pruner 'lce'"):
        pruners.create("lce", max_step=29, patience=3)


def test_threshold_ramps_up_over_the_first_decisions() -> None:
    pruner = LearningCurvePruner(max_step=29, threshold=0.09, min_steps=5, ramp_steps=3)
    assert [round(pruner._threshold_at(n), 6) for n in (5, 6, 7, 8, 20)] == [
        0.01,
        0.04,
        0.09,
        0.09,
        0.09,
    ]
    flat = LearningCurvePruner(max_step=29, threshold=0.09, min_steps=5, ramp_steps=1)
    assert flat._threshold_at(5) == 0.09
    default = LearningCurvePruner(max_step=29, threshold=0.09)
    assert default._threshold_at(4) == pytest.approx(0.09 / 36)
    assert default._threshold_at(9) == pytest.approx(0.09)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_step": 0}, "max_step"),
        ({"max_step": 9.5}, "max_step"),
        ({"threshold": 0.0}, "threshold"),
        ({"threshold": 1.0}, "threshold"),
        ({"min_steps": 3}, "min_steps"),
        ({"min_steps": MAX_STEP + 1}, "min_steps"),
        ({"n_startup_trials": 0}, "n_startup_trials"),
        ({"bounds": (1.0, 0.0)}, "bounds"),
        ({"bounds": (0.0, 0.5, 1.0)}, "bounds"),
        ({"interval_steps": 0}, "interval_steps"),
        ({"ramp_steps": 0}, "ramp_steps"),
        ({"calibration_quantile": 0.0}, "calibration_quantile"),
        ({"calibration_quantile": 1.0}, "calibration_quantile"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LearningCurvePruner(**{"max_step": MAX_STEP, **kwargs})
    with pytest.raises(ValueError, match=message):
        pruners.create("lce", **{"max_step": MAX_STEP, **kwargs})


def test_with_fit_on_digits(single_thread: None) -> None:
    dataset = data.load("digits", seed=0)
    space = spaces.create("chain", max_layers=2, filters=[4, 8])
    epochs = 8
    pruner = LearningCurvePruner(max_step=epochs - 1, min_steps=4, n_startup_trials=2)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.Trial) -> float:
        seed_everything(trial.number)
        lr = trial.suggest_float("lr", 1e-4, 3e-2, log=True)
        model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
        return fit(model, dataset, trial=trial, epochs=epochs, lr=lr, device="cpu").valid_accuracy

    study.optimize(objective, n_trials=6)
    states = [t.state for t in study.trials]
    assert set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert states.count(TrialState.COMPLETE) >= 2
    for trial in study.trials:
        if trial.state == TrialState.PRUNED:
            assert trial.user_attrs["optuna_nas:lce_p_improve"] < 0.05
            assert 0.0 <= trial.user_attrs["optuna_nas:lce_predicted_mean"] <= 1.0
    assert torch.get_num_threads() == 1


def _percent_study(pruner: optuna.pruners.BasePruner) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for i, final in enumerate((0.9, 0.92, 0.95, 0.85, 0.8)):
        curve = [100.0 * v for v in _curve(final, seed=100 + i)]
        study.add_trial(
            optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve)))
        )
    return study


def test_accuracy_in_percent_prunes_as_in_fractions() -> None:
    study = _percent_study(LearningCurvePruner(max_step=MAX_STEP))
    trial, pruned = _report(study, [100.0 * v for v in _curve(0.6)[:12]])
    assert pruned
    assert _attrs(study, trial)["optuna_nas:lce_predicted_mean"] == pytest.approx(55.0, abs=5.0)


@pytest.mark.parametrize("final", [0.6, 0.8, 0.9, 0.97])
def test_percent_and_fractions_give_the_same_decision_and_prediction(final: float) -> None:
    fraction = _study(LearningCurvePruner(max_step=MAX_STEP))
    percent = _percent_study(LearningCurvePruner(max_step=MAX_STEP))
    curve = _curve(final, seed=7)[:12]
    trial_f, pruned_f = _report(fraction, curve)
    trial_p, pruned_p = _report(percent, [100.0 * v for v in curve])
    assert pruned_f == pruned_p
    attrs_f, attrs_p = _attrs(fraction, trial_f), _attrs(percent, trial_p)
    assert attrs_p.keys() == attrs_f.keys()
    for key in attrs_f:
        if key.endswith(("predicted_mean", "predicted_std")):
            assert attrs_p[key] == pytest.approx(100.0 * attrs_f[key], rel=1e-4, abs=1e-4)
        elif key.endswith(("p_improve", "std_scale")):
            assert attrs_p[key] == pytest.approx(attrs_f[key], rel=1e-4, abs=1e-4)


def test_bounds_that_the_curve_leaves_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    study = _percent_study(LearningCurvePruner(max_step=MAX_STEP, bounds=(0.0, 1.0)))
    with caplog.at_level("WARNING", logger="optuna_nas.pruners._lce"):
        for _ in range(2):
            trial, pruned = _report(study, [100.0 * v for v in _curve(0.6)[:12]])
            assert not pruned
            assert "leave the bounds" in _attrs(study, trial)["optuna_nas:pruner_not_decided"]
            study.tell(trial, state=TrialState.PRUNED)
    assert sum("cannot decide" in r.message for r in caplog.records) == 1


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="'auto'"):
        LearningCurvePruner(max_step=MAX_STEP, bounds="percent")  # type: ignore[arg-type]


# The prior-fitted network and LearningCurvePruner(predictor="pfn").


def test_prior_curves_lie_in_the_unit_interval_and_vary() -> None:
    x, y = _pfn_prior.sample_curves(2000, 30, np.random.default_rng(0))
    assert x.shape == (30,) and y.shape == (2000, 30)
    assert x[0] == pytest.approx(1 / 30) and x[-1] == 1.0
    assert y.min() >= 0.0 and y.max() <= 1.0
    finals = y[:, -1]
    # Many curves end near 1 (where the bins must be fine), but not all.
    assert 0.08 < np.mean(finals > 0.95) < 0.8
    assert np.mean(finals < 0.5) > 0.05
    # Most curves rise; a few fall (declines, divergence).
    rises = np.mean(y[:, -5:].mean(axis=1) > y[:, :5].mean(axis=1))
    assert 0.75 < rises < 0.999
    again = _pfn_prior.sample_curves(2000, 30, np.random.default_rng(0))[1]
    np.testing.assert_array_equal(y, again)


def test_histogram_moments_and_survival() -> None:
    borders = np.array([0.0, 0.5, 0.8, 1.0])
    probs = np.array([0.2, 0.5, 0.3])
    mean, std = _pfn.bin_moments(probs, borders)
    assert mean == pytest.approx(0.2 * 0.25 + 0.5 * 0.65 + 0.3 * 0.9)
    # Against sampling from the piecewise-uniform density.
    rng = np.random.default_rng(0)
    which = rng.choice(3, size=400_000, p=probs)
    samples = rng.uniform(borders[which], borders[which + 1])
    assert std == pytest.approx(samples.std(), rel=0.01)
    for t in (0.0, 0.3, 0.5, 0.9, 1.0):
        assert _pfn.bin_survival(probs, borders, t) == pytest.approx(
            np.mean(samples > t), abs=0.005
        )
    assert _pfn.bin_survival(probs, borders, -1.0) == pytest.approx(1.0)
    assert _pfn.bin_survival(probs, borders, 2.0) == 0.0


def test_queries_see_only_the_observed_points() -> None:
    torch.manual_seed(0)
    model = CurvePFN(torch.linspace(0, 1, 11)).eval()
    x, y = torch.rand(1, 5), torch.rand(1, 5)
    one = model(x, y, torch.tensor([[1.0]]))
    two = model(x, y, torch.tensor([[1.0, 0.7]]))
    torch.testing.assert_close(one[0, 0], two[0, 0])
    assert one.shape == (1, 1, 10)


def test_save_and_load_round_trip_with_weights_only(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = CurvePFN(torch.linspace(0, 1, 21), d_model=16, n_layers=1, n_heads=2, d_ff=32)
    path = tmp_path / "net.pt"
    _pfn.save(model.eval(), str(path), {"seed": 0})
    blob = torch.load(path, weights_only=True)  # plain tensors and numbers only
    assert blob["meta"] == {"seed": 0}
    loaded = _pfn.load(str(path))
    probs = _pfn.predict(model, [0, 1, 2], [0.2, 0.4, 0.5], 9)
    np.testing.assert_allclose(_pfn.predict(loaded, [0, 1, 2], [0.2, 0.4, 0.5], 9), probs)
    assert probs.sum() == pytest.approx(1.0)


def test_shipped_network_extrapolates_plausibly() -> None:
    model = _pfn.load()
    borders = model.borders.double().numpy()
    steps = np.arange(10)
    for final in (0.6, 0.9):
        values = _curve(final, n=30, noise=0.002)[:10]
        mean, std = _pfn.bin_moments(_pfn.predict(model, steps, values, 29), borders)
        # Beyond the last value seen, short of the asymptote of the clean curve plus slack.
        assert values[-1] - 0.01 < mean < final + 0.05
        assert 0.0 < std < 0.15
    # More of the curve seen: a narrower prediction.
    values = _curve(0.9, n=30, noise=0.002)
    early = _pfn.bin_moments(_pfn.predict(model, steps[:5], values[:5], 29), borders)[1]
    late = _pfn.bin_moments(_pfn.predict(model, np.arange(25), values[:25], 29), borders)[1]
    assert late < early
    # A curve longer than the longest context of training is thinned, not refused.
    long = _pfn.predict(model, np.arange(150), np.linspace(0.1, 0.9, 150), 199)
    assert long.sum() == pytest.approx(1.0)


def test_pfn_prunes_a_hopeless_curve_and_keeps_a_better_one() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP, predictor="pfn"))
    trial, pruned = _report(study, _curve(0.6)[:12])
    assert pruned
    attrs = _attrs(study, trial)
    assert attrs["optuna_nas:lce_p_improve"] < 0.05
    assert attrs["optuna_nas:lce_predicted_mean"] < 0.8
    trial, pruned = _report(study, _curve(0.97)[:12])
    assert not pruned


@pytest.mark.parametrize("final", [0.6, 0.85, 0.93])
def test_pfn_decides_alike_on_percent_and_error(final: float) -> None:
    def decide(scale: float, minimize: bool) -> tuple[bool, float]:
        pruner = LearningCurvePruner(max_step=MAX_STEP, predictor="pfn")
        study = optuna.create_study(
            direction="minimize" if minimize else "maximize", pruner=pruner
        )
        for i, f in enumerate((0.9, 0.92, 0.95, 0.85, 0.8)):
            curve = [scale * ((1.0 - v) if minimize else v) for v in _curve(f, seed=100 + i)]
            study.add_trial(
                optuna.trial.create_trial(
                    value=curve[-1], intermediate_values=dict(enumerate(curve))
                )
            )
        values = [scale * ((1.0 - v) if minimize else v) for v in _curve(final)[:12]]
        trial, pruned = _report(study, values)
        return pruned, _attrs(study, trial)["optuna_nas:lce_p_improve"]

    base = decide(1.0, False)
    for scale, minimize in ((100.0, False), (1.0, True), (100.0, True)):
        pruned, p = decide(scale, minimize)
        assert pruned == base[0]
        assert p == pytest.approx(base[1], abs=1e-6)


def test_pfn_on_an_unbounded_loss() -> None:
    # bounds=None: "auto" would take a loss below 100 for an error in percent.
    pruner = LearningCurvePruner(max_step=MAX_STEP, predictor="pfn", bounds=None)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    for i, f in enumerate((0.3, 0.25, 0.2, 0.35, 0.4)):
        x = np.arange(1.0, MAX_STEP + 2)
        curve = list(f + 2.0 * x**-0.7 + np.random.default_rng(i).normal(0, 0.005, len(x)))
        study.add_trial(
            optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve)))
        )
    x = np.arange(1.0, 13)
    hopeless = list(1.5 + 2.0 * x**-0.7)
    trial, pruned = _report(study, hopeless)
    assert pruned
    mean = _attrs(study, trial)["optuna_nas:lce_predicted_mean"]
    assert 1.0 < mean < hopeless[-1] + 0.05
    x = np.arange(1.0, 13)
    promising = list(0.05 + 2.0 * x**-0.7)
    assert not _report(study, promising)[1]


def test_pfn_does_not_decide_on_values_that_are_not_finite() -> None:
    study = _study(LearningCurvePruner(max_step=MAX_STEP, predictor="pfn"))
    values = _curve(0.6)[:12]
    values[5] = math.nan
    trial, pruned = _report(study, values)
    assert not pruned
    assert "optuna_nas:lce_p_improve" not in _attrs(study, trial)


def test_pfn_says_once_when_values_leave_the_bounds(caplog: pytest.LogCaptureFixture) -> None:
    pruner = LearningCurvePruner(max_step=MAX_STEP, predictor="pfn", bounds=(0.0, 0.5))
    study = _study(pruner)
    with caplog.at_level("WARNING"):
        for _ in range(2):
            trial, pruned = _report(study, _curve(0.6)[:12])
            assert not pruned
            assert "bounds" in _attrs(study, trial)["optuna_nas:pruner_not_decided"]
    assert sum("cannot decide" in r.message for r in caplog.records) == 1


def test_unknown_predictor_is_rejected() -> None:
    with pytest.raises(ValueError, match="predictor must be one of ensemble, pfn"):
        LearningCurvePruner(max_step=MAX_STEP, predictor="gp")
