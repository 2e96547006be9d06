from __future__ import annotations

import numpy as np
import pytest

from optuna_nas.pruners._curves import (
    MODELS,
    Degenerate,
    Prediction,
    calibration_scale,
    extrapolate,
    fit_ensemble,
    prob_exceeds,
)

OBSERVED = np.arange(20)
TARGET = 49

TRUE_PARAMS = {
    "vapor_pressure": (-0.1, -1.5, -0.02),
    "pow3": (0.9, 0.7, 0.6),
    "log_log_linear": (0.3, 1.2),
    "hill3": (0.9, 1.5, 4.0),
    "log_power": (0.9, 1.2, -1.3),
    "pow4": (0.9, 0.5, 1.0, 0.8),
    "mmf": (0.9, 0.1, 0.2, 1.2),
    "exp4": (0.9, 0.8, 0.5, 0.3),
    "janoschek": (0.9, 0.1, 0.1, 0.9),
    "weibull": (0.9, 0.1, 0.1, 0.9),
    "ilog2": (0.95, 0.5),
}


def _curve(clean: np.ndarray, noise: float, seed: int, steps: np.ndarray = OBSERVED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(clean[steps] + rng.normal(0.0, noise, len(steps)), 0.0, 1.0)


def _pow3_curve(n: int = TARGET + 1) -> np.ndarray:
    return 0.88 - 0.6 * np.arange(1.0, n + 1) ** -0.7


def test_every_paper_model_is_covered() -> None:
    assert set(TRUE_PARAMS) == set(MODELS)
    assert len(MODELS) == 11


@pytest.mark.parametrize("name", sorted(TRUE_PARAMS))
def test_model_fits_its_own_curve_and_extrapolates(name: str) -> None:
    model = MODELS[name]
    clean = model(np.arange(1.0, TARGET + 2), TRUE_PARAMS[name])
    assert np.all(np.diff(clean) > 0) and 0.0 < clean[0] and clean[-1] < 1.0
    values = _curve(clean, noise=0.002, seed=1)

    result = fit_ensemble(OBSERVED, values, TARGET, bounds=(0.0, 1.0), models=[name])

    assert isinstance(result, Prediction), result
    assert result.n_models == 1 and result.fits[0].name == name
    assert result.mean == pytest.approx(clean[TARGET], abs=0.02)
    assert result.fits[0].noise_std == pytest.approx(0.002, rel=0.6)
    assert abs(result.mean - clean[TARGET]) < 4 * result.std + 0.005


def test_ensemble_predicts_noisy_curves_and_std_grows_with_noise() -> None:
    clean = _pow3_curve()
    errors, stds = [], {}
    for noise in (0.003, 0.03):
        stds[noise] = []
        for seed in range(3):
            prediction = extrapolate(OBSERVED, _curve(clean, noise, seed), TARGET, bounds=(0, 1))
            assert prediction is not None
            assert prediction.n_models >= 5
            errors.append(abs(prediction.mean - clean[TARGET]))
            stds[noise].append(prediction.std)
    assert max(errors) < 0.05
    assert np.median(stds[0.03]) > 2 * np.median(stds[0.003])
    assert np.median(stds[0.003]) < 0.02


def test_more_observed_steps_give_a_sharper_prediction() -> None:
    clean = _pow3_curve()
    short = extrapolate(np.arange(8), _curve(clean, 0.01, 0, np.arange(8)), TARGET)
    long = extrapolate(np.arange(35), _curve(clean, 0.01, 0, np.arange(35)), TARGET)
    assert short is not None and long is not None
    assert long.std < short.std
    assert abs(long.mean - clean[TARGET]) < 0.02


def test_falling_curve_is_mirrored() -> None:
    error = 1.0 - _pow3_curve()
    prediction = extrapolate(OBSERVED, _curve(error, 0.005, 0), TARGET, bounds=(0.0, 1.0))
    assert prediction is not None
    assert prediction.mean == pytest.approx(error[TARGET], abs=0.03)
    assert prob_exceeds(prediction, 0.05, "minimize") < 0.01
    assert prob_exceeds(prediction, 0.5, "minimize") > 0.99


def test_unbounded_loss_curve() -> None:
    loss = 0.3 + 2.0 * np.arange(1.0, TARGET + 2) ** -0.8
    prediction = extrapolate(OBSERVED, loss[OBSERVED], TARGET)
    assert prediction is not None and prediction.bounds is None
    assert prediction.mean == pytest.approx(loss[TARGET], abs=0.05)


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        (np.full(20, 0.1), "flat"),
        (np.r_[np.linspace(0.1, 0.5, 10), np.nan, np.linspace(0.5, 0.6, 9)], "non_finite"),
        (np.r_[np.linspace(0.1, 0.5, 19), np.inf], "non_finite"),
        (1e-6 * np.exp(0.6 * OBSERVED), "diverging"),
        (np.where(OBSERVED % 2 == 0, 0.2, 0.8), "too_noisy"),
        (np.linspace(0.1, 1.2, 20), "out_of_bounds"),
    ],
    ids=["flat", "nan", "inf", "diverging", "noisy", "outside"],
)
def test_degenerate_curves_are_reported(values: np.ndarray, reason: str) -> None:
    result = fit_ensemble(OBSERVED, values, TARGET, bounds=(0.0, 1.0))
    assert isinstance(result, Degenerate) and result.reason == reason, result
    assert result.detail
    assert extrapolate(OBSERVED, values, TARGET, bounds=(0.0, 1.0)) is None


def test_diverging_curve_without_bounds() -> None:
    exploding = np.exp(0.5 * OBSERVED)
    result = fit_ensemble(OBSERVED, exploding, TARGET)
    assert isinstance(result, Degenerate) and result.reason == "diverging"


def test_too_short_curve() -> None:
    result = fit_ensemble([0, 1, 2], [0.1, 0.3, 0.4], TARGET)
    assert isinstance(result, Degenerate) and result.reason == "too_short"
    assert extrapolate([0, 1, 2], [0.1, 0.3, 0.4], TARGET) is None


def test_extrapolation_beyond_bounds_is_rejected() -> None:
    # Steep and straight: only the unbounded families fit it, and they cross 1.
    steep = 0.02 * (OBSERVED + 1.0)
    result = fit_ensemble(OBSERVED, steep, 99, bounds=(0.0, 1.0))
    assert isinstance(result, Degenerate) and result.reason == "out_of_bounds"


def test_prob_exceeds_is_monotone_in_the_threshold() -> None:
    prediction = extrapolate(OBSERVED, _curve(_pow3_curve(), 0.01, 0), TARGET, bounds=(0, 1))
    assert prediction is not None
    thresholds = np.linspace(0.0, 1.0, 41)
    up = [prob_exceeds(prediction, t, "maximize") for t in thresholds]
    down = [prob_exceeds(prediction, t, "minimize") for t in thresholds]
    assert np.all(np.diff(up) <= 1e-12) and np.all(np.diff(down) >= -1e-12)
    assert up[0] == pytest.approx(1.0) and up[-1] == pytest.approx(0.0)
    np.testing.assert_allclose(np.add(up, down), 1.0, atol=1e-12)
    assert prob_exceeds(prediction, prediction.mean, "maximize") == pytest.approx(0.5, abs=0.2)


def test_warm_start_reproduces_the_cold_fit() -> None:
    values = _curve(_pow3_curve(), 0.01, 0)
    cold = fit_ensemble(OBSERVED[:-1], values[:-1], TARGET, bounds=(0, 1))
    assert isinstance(cold, Prediction)
    warm = fit_ensemble(OBSERVED, values, TARGET, bounds=(0, 1), warm_start=cold.params)
    again = fit_ensemble(OBSERVED, values, TARGET, bounds=(0, 1))
    assert isinstance(warm, Prediction) and isinstance(again, Prediction)
    assert warm.mean == pytest.approx(again.mean, abs=0.01)


def test_steps_may_come_in_any_order() -> None:
    values = _curve(_pow3_curve(), 0.01, 0)
    order = np.random.default_rng(0).permutation(len(OBSERVED))
    shuffled = extrapolate(OBSERVED[order], values[order], TARGET)
    ordered = extrapolate(OBSERVED, values, TARGET)
    assert shuffled is not None and ordered is not None
    assert shuffled.mean == pytest.approx(ordered.mean)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": [0, 1, 2, 3], "values": [0.1, 0.2, 0.3]}, "differ in length"),
        ({"steps": [-1, 0, 1, 2]}, "non-negative"),
        ({"steps": [0, 1, 1, 2]}, "distinct"),
        ({"target_step": 2}, "precedes"),
        ({"bounds": (1.0, 0.0)}, "lo < hi"),
        ({"models": ["pow3", "pow5"]}, "unknown curve models"),
    ],
)
def test_invalid_arguments(kwargs: dict, message: str) -> None:
    arguments = {"steps": [0, 1, 2, 3], "values": [0.1, 0.2, 0.3, 0.35], "target_step": 9}
    arguments |= kwargs
    with pytest.raises(ValueError, match=message):
        fit_ensemble(**arguments)


def test_prob_exceeds_rejects_unknown_direction() -> None:
    prediction = extrapolate(OBSERVED, _curve(_pow3_curve(), 0.01, 0), TARGET)
    assert prediction is not None
    with pytest.raises(ValueError, match="maximize"):
        prob_exceeds(prediction, 0.5, "max")


def test_prob_exceeds_scale_stretches_the_mixture_about_its_mean() -> None:
    prediction = extrapolate(OBSERVED, _curve(_pow3_curve(), 0.01, 0), TARGET, bounds=(0, 1))
    assert prediction is not None
    above = prediction.mean + 2.0 * prediction.std
    assert prob_exceeds(prediction, above, scale=1.0) == prob_exceeds(prediction, above)
    widened = [prob_exceeds(prediction, above, scale=s) for s in (1.0, 2.0, 4.0)]
    assert widened[0] < 0.05
    assert widened[0] < widened[1] < widened[2] < 0.5
    below = prediction.mean - 2.0 * prediction.std
    assert prob_exceeds(prediction, below, "minimize", scale=4.0) > prob_exceeds(
        prediction, below, "minimize"
    )
    for scale in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="scale"):
            prob_exceeds(prediction, above, scale=scale)


def test_calibration_scale() -> None:
    rng = np.random.default_rng(0)
    assert calibration_scale([]) == 1.0
    assert calibration_scale([np.nan, np.inf]) == 1.0
    # Errors of calibrated predictions, or smaller ones, never narrow a prediction.
    assert calibration_scale(rng.normal(0.0, 1.0, 2000)) == pytest.approx(1.0, abs=0.08)
    assert calibration_scale(rng.normal(0.0, 0.2, 50)) == 1.0
    # Predictions three times too narrow: the scale recovers the factor, for any quantile,
    # and the sign of the errors does not matter.
    errors = rng.normal(0.0, 3.0, 2000)
    for quantile in (0.5, 0.8, 0.95):
        assert calibration_scale(errors, quantile) == pytest.approx(3.0, rel=0.1)
    assert calibration_scale(-errors) == calibration_scale(errors)
    # One huge miss among accurate predictions moves the median little, a high quantile more.
    one_miss = [*rng.normal(0.0, 1.0, 9), 50.0]
    assert calibration_scale(one_miss) < 2.0 < calibration_scale(one_miss, 0.95)
    for quantile in (0.0, 1.0):
        with pytest.raises(ValueError, match="quantile"):
            calibration_scale([1.0], quantile)
