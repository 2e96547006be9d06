"""Parametric learning-curve models and their ensemble extrapolation.

Pure numerical code (NumPy and SciPy, no Optuna);
:class:`~optuna_nas.pruners.LearningCurvePruner` only translates a trial's intermediate
values into the arrays these functions take. It is longer than the package's 500-line
rule for a module: the eleven curve families, their bounds and the ensemble belong
together, and splitting them would scatter one model.

Eleven saturating curve families from Domhan et al. (2015, table 1) are each fitted to the
observed curve by bounded least squares (:func:`scipy.optimize.least_squares`, at most
:data:`MAX_NFEV` evaluations, warm-startable from the previous fit of the same curve).
Instead of the paper's MCMC over a linear combination of the models, the ensemble is a
mixture of one Gaussian per model:

* the component mean is the fitted model's value at the target step;
* the component variance is a Laplace approximation of the parameter posterior propagated
  to the target, ``g^T s^2 (J^T J)^+ g`` with ``J`` the residual Jacobian at the optimum and
  ``g`` the gradient of the model at the target, plus the residual variance ``s^2`` (the
  final value is itself a noisy observation);
* the component weight is ``exp(-BIC / (2 T))``, normalised over the models that fitted:
  Bayesian-information-criterion weights (fit quality penalised by parameter count),
  tempered by :data:`BIC_TEMPERATURE` because no family is exactly right.

The mixture's mean and standard deviation therefore combine the models' disagreement,
their parameter uncertainty and the residual noise. :func:`prob_exceeds` integrates the
mixture, truncated to the metric's bounds when they are known.

A step ``s`` (0-based, as Optuna reports them) is evaluated at ``x = s + 1``, so the first
report is ``x = 1``. Curves that fall overall (losses, error rates) are mirrored before
fitting, so that every model describes a rising, saturating curve, and mirrored back after.

References:
    Tobias Domhan, Jost Tobias Springenberg, Frank Hutter. "Speeding up Automatic
    Hyperparameter Optimization of Deep Neural Networks by Extrapolation of Learning
    Curves". IJCAI 2015.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import optimize, special

Array = npt.NDArray[np.float64]

MIN_POINTS = 4
"""Fewer observed steps than this are too short to extrapolate."""

MAX_NFEV = 20
"""Function evaluations per model fit; the fits are warm-startable, so few are needed."""

NOISE_FRACTION_OF_BOUNDS = 0.1
"""A curve is too noisy when the residual std exceeds this fraction of ``hi - lo`` ..."""

NOISE_FRACTION_OF_SPAN = 0.25
"""... or, without bounds, this fraction of the observed range of values."""

BIC_TEMPERATURE = 5.0
"""Weights are ``exp(-BIC / (2 T))``. With ``T = 1`` (plain BIC weights) one model takes
nearly all the weight even when none is right, and the mixture is overconfident: on 200
curves from an LC-PFN-like prior with a fifth or half of 50 steps observed, 85% of the final
values fall within two predicted standard deviations; ``T = 5`` raises that to 92-93%
(``benchmarks/results/lce_speed.md``). The misses are mostly curves that keep rising longer
than the saturating models expect, so predictions lean low."""

CALIBRATION_QUANTILE = 0.5
"""The quantile of past absolute standardised errors :func:`calibration_scale` matches."""

FTOL = 1e-5
"""Relative tolerances of the fits: far below the noise of any real learning curve."""

ACCELERATION = 2.0
"""A curve whose end rises this many times faster than its beginning is ``diverging``."""

UNUSABLE_WEIGHT = 0.5
"""Declines when models holding more than this weight diverge or leave the bounds."""

_FLAT_TOLERANCE = 1e-9
_BOUNDS_SLACK = 1e-3  # relative to hi - lo: predictions this close outside still count as in


@dataclass(frozen=True)
class _Summary:
    """What the initial guesses and parameter bounds of the models derive from."""

    x: Array
    y: Array
    span: float  # observed range, > 0
    top: tuple[float, float]  # range of the asymptote
    bottom: tuple[float, float]  # range of the value near x = 0
    asymptote: float  # initial guess of the asymptote
    gap: float  # initial guess of asymptote minus the first value, > 0
    x_mid: float  # geometric middle of the observed steps


Initial = tuple[Array, Array, Array]  # guess, lower bounds, upper bounds


@dataclass(frozen=True)
class CurveModel:
    """One parametric curve family ``y = f(x; params)`` for ``x >= 1``.

    ``function`` broadcasts: ``params[i]`` may be an array, so ``function(x[:, None], P)``
    with ``P`` of shape ``n_params x k`` evaluates ``k`` parameter vectors at once.

    Attributes:
        name: Short name, as in the paper.
        param_names: Names of the parameters, in order.
        function: ``f(x, params)``.
        initial: Robust initial guess and bounds from an observed curve, or ``None`` when
            the family cannot describe it (e.g. ``vapor_pressure`` needs positive values).
    """

    name: str
    param_names: tuple[str, ...]
    function: Callable[[Array, Array], Array]
    initial: Callable[[_Summary], Initial | None] = field(repr=False)

    @property
    def n_params(self) -> int:
        return len(self.param_names)

    def __call__(self, x: npt.ArrayLike, params: npt.ArrayLike) -> Array:
        with np.errstate(all="ignore"):
            return np.asarray(
                self.function(np.asarray(x, dtype=float), np.asarray(params, dtype=float)),
                dtype=float,
            )


def _bounded(guess: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> Initial:
    lo = np.asarray(lower, dtype=float)
    hi = np.asarray(upper, dtype=float)
    # Strictly inside, so that the trust-region solver can start there.
    with np.errstate(invalid="ignore"):
        inner_lo = np.where(np.isfinite(lo), lo + 1e-9 * np.maximum(1.0, np.abs(lo)), lo)
        inner_hi = np.where(np.isfinite(hi), hi - 1e-9 * np.maximum(1.0, np.abs(hi)), hi)
    return np.clip(np.asarray(guess, dtype=float), inner_lo, inner_hi), lo, hi


def _pow3(x: Array, p: Array) -> Array:
    c, a, alpha = p
    return c - a * x ** (-alpha)


def _pow3_init(s: _Summary) -> Initial:
    alpha = 0.5
    a = s.gap * s.x[0] ** alpha
    return _bounded([s.asymptote, a, alpha], [s.top[0], 0.0, 1e-3], [s.top[1], np.inf, 10.0])


def _pow4(x: Array, p: Array) -> Array:
    c, a, b, alpha = p
    return c - (a * x + b) ** (-alpha)


def _pow4_init(s: _Summary) -> Initial:
    alpha = 0.5
    a = s.gap ** (-1.0 / alpha) / (s.x[0] + 1.0)
    return _bounded(
        [s.asymptote, a, a, alpha], [s.top[0], 1e-12, 0.0, 1e-3], [s.top[1], np.inf, np.inf, 10.0]
    )


def _log_log_linear(x: Array, p: Array) -> Array:
    a, b = p
    return np.log(a * np.log(x) + b)


def _log_log_linear_init(s: _Summary) -> Initial | None:
    if s.y.max() > 50.0:
        return None
    design = np.stack([np.log(s.x), np.ones_like(s.x)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, np.exp(s.y), rcond=None)
    return _bounded([max(a, 1e-6), max(b, 1e-6)], [0.0, 1e-12], [np.inf, np.inf])


def _vapor_pressure(x: Array, p: Array) -> Array:
    a, b, c = p
    return np.exp(a + b / x + c * np.log(x))


def _vapor_pressure_init(s: _Summary) -> Initial | None:
    if s.y.min() <= 0.0:
        return None
    design = np.stack([np.ones_like(s.x), 1.0 / s.x, np.log(s.x)], axis=1)
    guess, *_ = np.linalg.lstsq(design, np.log(s.y), rcond=None)
    return _bounded(guess, [-50.0, -1e3, -5.0], [50.0, 1e3, 5.0])


def _hill3(x: Array, p: Array) -> Array:
    y_max, eta, kappa = p
    return y_max * x**eta / (kappa**eta + x**eta)


def _hill3_init(s: _Summary) -> Initial:
    y0 = s.y[0]
    kappa = s.x[0] * (s.asymptote / y0 - 1.0) if 0.0 < y0 < s.asymptote else s.x_mid
    return _bounded(
        [s.asymptote, 1.0, kappa], [s.top[0], 1e-2, 1e-6], [s.top[1], 10.0, 1e3 * s.x[-1]]
    )


def _log_power(x: Array, p: Array) -> Array:
    a, b, c = p
    return a / (1.0 + (x / np.exp(b)) ** c)


def _log_power_init(s: _Summary) -> Initial:
    y0 = s.y[0]
    ratio = s.x[0] * (s.asymptote / y0 - 1.0) if 0.0 < y0 < s.asymptote else s.x_mid
    upper_b = 20.0 + math.log(s.x[-1])
    return _bounded(
        [s.asymptote, math.log(ratio), -1.0], [s.top[0], -20.0, -10.0], [s.top[1], upper_b, -1e-3]
    )


def _mmf(x: Array, p: Array) -> Array:
    alpha, beta, kappa, delta = p
    return alpha - (alpha - beta) / (1.0 + (kappa * x) ** delta)


def _saturating_init(s: _Summary, kappa: float) -> Initial:
    """Shared by the four-parameter families that rise from ``beta`` to ``alpha``."""
    beta = s.y[0] - 0.1 * s.span
    return _bounded(
        [s.asymptote, beta, kappa, 1.0],
        [s.top[0], s.bottom[0], 1e-8, 1e-2],
        [s.top[1], s.bottom[1], 1e2, 5.0],
    )


def _mmf_init(s: _Summary) -> Initial:
    return _saturating_init(s, 1.0 / s.x_mid)


def _exp4(x: Array, p: Array) -> Array:
    c, a, alpha, b = p
    return c - np.exp(-a * x**alpha + b)


def _exp4_init(s: _Summary) -> Initial:
    alpha = 0.5
    reach = s.x[-1] ** alpha - s.x[0] ** alpha
    a = math.log(10.0) / reach if reach > 0.0 else 1.0
    b = math.log(s.gap) + a * s.x[0] ** alpha
    return _bounded(
        [s.asymptote, a, alpha, b], [s.top[0], 0.0, 1e-3, -50.0], [s.top[1], 1e3, 2.0, 50.0]
    )


def _janoschek(x: Array, p: Array) -> Array:
    alpha, beta, kappa, delta = p
    return alpha - (alpha - beta) * np.exp(-kappa * x**delta)


def _janoschek_init(s: _Summary) -> Initial:
    return _saturating_init(s, math.log(2.0) / s.x_mid)


def _weibull(x: Array, p: Array) -> Array:
    alpha, beta, kappa, delta = p
    return alpha - (alpha - beta) * np.exp(-((kappa * x) ** delta))


def _weibull_init(s: _Summary) -> Initial:
    return _saturating_init(s, math.log(2.0) / s.x_mid)


def _ilog2(x: Array, p: Array) -> Array:
    c, a = p
    return c - a / np.log(x + 1.0)


def _ilog2_init(s: _Summary) -> Initial:
    design = np.stack([np.ones_like(s.x), -1.0 / np.log(s.x + 1.0)], axis=1)
    (c, a), *_ = np.linalg.lstsq(design, s.y, rcond=None)
    return _bounded([c, a], [s.top[0], 0.0], [s.top[1], np.inf])


MODELS: dict[str, CurveModel] = {
    model.name: model
    for model in (
        CurveModel("vapor_pressure", ("a", "b", "c"), _vapor_pressure, _vapor_pressure_init),
        CurveModel("pow3", ("c", "a", "alpha"), _pow3, _pow3_init),
        CurveModel("log_log_linear", ("a", "b"), _log_log_linear, _log_log_linear_init),
        CurveModel("hill3", ("y_max", "eta", "kappa"), _hill3, _hill3_init),
        CurveModel("log_power", ("a", "b", "c"), _log_power, _log_power_init),
        CurveModel("pow4", ("c", "a", "b", "alpha"), _pow4, _pow4_init),
        CurveModel("mmf", ("alpha", "beta", "kappa", "delta"), _mmf, _mmf_init),
        CurveModel("exp4", ("c", "a", "alpha", "b"), _exp4, _exp4_init),
        CurveModel("janoschek", ("alpha", "beta", "kappa", "delta"), _janoschek, _janoschek_init),
        CurveModel("weibull", ("alpha", "beta", "kappa", "delta"), _weibull, _weibull_init),
        CurveModel("ilog2", ("c", "a"), _ilog2, _ilog2_init),
    )
}
"""The eleven families of Domhan et al. (2015), by name. Formulas, with ``x >= 1``:

* ``vapor_pressure``: ``exp(a + b / x + c log x)``
* ``pow3``: ``c - a x^-alpha``
* ``log_log_linear``: ``log(a log x + b)``
* ``hill3``: ``y_max x^eta / (kappa^eta + x^eta)``
* ``log_power``: ``a / (1 + (x / e^b)^c)``
* ``pow4``: ``c - (a x + b)^-alpha``
* ``mmf``: ``alpha - (alpha - beta) / (1 + (kappa x)^delta)``
* ``exp4``: ``c - exp(-a x^alpha + b)``
* ``janoschek``: ``alpha - (alpha - beta) exp(-kappa x^delta)``
* ``weibull``: ``alpha - (alpha - beta) exp(-(kappa x)^delta)``
* ``ilog2``: ``c - a / log(x + 1)``; the paper writes ``log x``, which is infinite at
  ``x = 1``, so the step is shifted by one as in the LC-PFN prior.

The parameter bounds keep every family rising (or flat) and its asymptote between the
lowest observed value and the upper metric bound (or ten observed ranges above the top).
"""


@dataclass(frozen=True)
class ModelFit:
    """One model fitted to a curve.

    Attributes:
        name: The model's key in :data:`MODELS`.
        params: Fitted parameters (in the mirrored frame when the curve falls).
        mean: The model's value at the target step.
        std: Predictive standard deviation at the target: Laplace parameter uncertainty
            and residual noise.
        noise_std: Residual standard deviation, ``sqrt(RSS / (n - n_params))``.
        bic: Bayesian information criterion, ``n log(RSS / n) + n_params log n``.
    """

    name: str
    params: Array
    mean: float
    std: float
    noise_std: float
    bic: float


@dataclass(frozen=True)
class Prediction:
    """Predicted distribution of a curve's value at the target step.

    Attributes:
        mean: Mean of the mixture.
        std: Standard deviation of the mixture: model disagreement, parameter uncertainty
            and residual noise together.
        n_models: Models in the mixture.
        noise_std: Weighted residual standard deviation of the models.
        target_step: The step predicted.
        bounds: The metric's bounds the mixture is truncated to, if known.
        fits: The models in the mixture, with their means and standard deviations.
        weights: The mixture weights of ``fits``, summing to one.
    """

    mean: float
    std: float
    n_models: int
    noise_std: float
    target_step: int
    bounds: tuple[float, float] | None
    fits: tuple[ModelFit, ...]
    weights: Array

    @property
    def params(self) -> dict[str, Array]:
        """Fitted parameters by model name, to warm-start the next fit of the same curve."""
        return {fit.name: fit.params for fit in self.fits}


@dataclass(frozen=True)
class Degenerate:
    """Why a curve was not extrapolated.

    Attributes:
        reason: ``too_short``, ``non_finite``, ``out_of_bounds`` (observed or predicted
            values outside the metric's bounds), ``flat``, ``no_fit`` (no model fitted),
            ``too_noisy`` or ``diverging`` (an accelerating curve, or a non-finite or
            uselessly wide prediction); see :func:`fit_ensemble`.
        detail: A sentence for logs.
    """

    reason: str
    detail: str


def fit_ensemble(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    target_step: int,
    *,
    bounds: tuple[float, float] | None = None,
    models: Sequence[str] | None = None,
    warm_start: Mapping[str, npt.ArrayLike] | None = None,
    max_nfev: int = MAX_NFEV,
) -> Prediction | Degenerate:
    """Fits the curve models and predicts the value at ``target_step``, or says why not.

    Degenerate curves, for which no prediction is returned:

    * ``too_short``: fewer than :data:`MIN_POINTS` steps;
    * ``non_finite``: a NaN or infinite value;
    * ``out_of_bounds``: an observed value outside ``bounds``, or models holding more than
      :data:`UNUSABLE_WEIGHT` of the weight predict outside them;
    * ``flat``: all values equal (up to rounding);
    * ``no_fit``: no model could be fitted (too few points for any, or all failed);
    * ``too_noisy``: even the best model leaves a residual std above
      :data:`NOISE_FRACTION_OF_BOUNDS` of the bounds' width (or
      :data:`NOISE_FRACTION_OF_SPAN` of the observed range without bounds);
    * ``diverging``: the curve accelerates (its last quarter rises more than
      :data:`ACCELERATION` times as fast as the rest, well beyond the noise), models
      holding more than :data:`UNUSABLE_WEIGHT` of the weight have a predictive std wider
      than the bounds (ten observed ranges without bounds), or the mixture is not finite.

    Models that diverge or leave the bounds but hold less weight are dropped from the
    mixture; models that cannot be fitted (fewer than ``n_params + 2`` points, values the
    family cannot take, a failed solve) are left out before the weights are computed.

    Args:
        steps: 0-based steps of the observations (any order, distinct); shape ``n``.
        values: Observed values; shape ``n``.
        target_step: The step to predict, at least the last observed one.
        bounds: ``(lo, hi)`` the metric cannot leave, e.g. ``(0.0, 1.0)`` for accuracy;
            either may be infinite.
        models: Names from :data:`MODELS` to use; all by default.
        warm_start: Parameters from an earlier fit of the same curve, by model name
            (:attr:`Prediction.params`), used instead of the initial guesses.
        max_nfev: Function evaluations per model fit.

    Returns:
        A :class:`Prediction` or a :class:`Degenerate`.

    Raises:
        ValueError: For mismatched shapes, negative or repeated steps, a target before the
            last step, invalid bounds or an unknown model name.
    """
    x, y, target = _validate(steps, values, target_step, bounds)
    names = list(MODELS) if models is None else list(models)
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown curve models {unknown}; choose from: {', '.join(MODELS)}")
    lo, hi = (-np.inf, np.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))

    if len(y) < MIN_POINTS:
        return Degenerate("too_short", f"{len(y)} steps; at least {MIN_POINTS} are needed")
    if not np.all(np.isfinite(y)):
        return Degenerate("non_finite", "the curve contains NaN or infinite values")
    if y.min() < lo or y.max() > hi:
        return Degenerate("out_of_bounds", f"observed values leave the bounds ({lo}, {hi})")
    span = float(np.ptp(y))
    if span <= _FLAT_TOLERANCE * max(1.0, float(np.abs(y).max())):
        return Degenerate("flat", f"all values equal {y[0]}")

    # Mirror falling curves so that every family describes a rise to an asymptote.
    slope = np.polyfit(np.log(x), y, 1)[0]
    mirror: float | None = None
    if slope < 0.0:
        mirror = lo + hi if np.isfinite(lo) and np.isfinite(hi) else 0.0
        y, lo, hi = mirror - y, mirror - hi, mirror - lo
    summary = _summarise(x, y, span, lo, hi)

    fits = [
        fit
        for name in names
        if (
            fit := _fit_model(
                MODELS[name],
                summary,
                target,
                None if warm_start is None else warm_start.get(name),
                max_nfev,
            )
        )
        is not None
    ]
    if not fits:
        return Degenerate("no_fit", "no curve model could be fitted")

    width = hi - lo if np.isfinite(hi - lo) else math.inf
    if np.isfinite(width):
        noise_limit = NOISE_FRACTION_OF_BOUNDS * width
    else:
        noise_limit = NOISE_FRACTION_OF_SPAN * span
    best_noise = min(fit.noise_std for fit in fits)
    if best_noise > noise_limit:
        return Degenerate("too_noisy", f"residual std {best_noise:.3g} exceeds {noise_limit:.3g}")
    accelerating = _acceleration(y, best_noise)
    if accelerating is not None:
        return Degenerate("diverging", accelerating)

    weights = _bic_weights(np.array([fit.bic for fit in fits]))
    means = np.array([fit.mean for fit in fits])
    stds = np.array([fit.std for fit in fits])
    spread_limit = width if np.isfinite(width) else 10.0 * span
    diverging = stds > spread_limit
    if weights[diverging].sum() > UNUSABLE_WEIGHT:
        return Degenerate(
            "diverging", f"{_names(fits, diverging)} spread wider than {spread_limit:.3g}"
        )
    slack = _BOUNDS_SLACK * (width if np.isfinite(width) else span)
    outside = (means < lo - slack) | (means > hi + slack)
    if weights[outside].sum() > UNUSABLE_WEIGHT:
        return Degenerate("out_of_bounds", f"{_names(fits, outside)} leave ({lo}, {hi})")
    usable = ~(diverging | outside)
    if not usable.any():
        return Degenerate("diverging", "every model diverges or leaves the bounds")
    fits = [fit for fit, ok in zip(fits, usable, strict=True) if ok]
    weights = weights[usable] / weights[usable].sum()
    means, stds = means[usable], stds[usable]

    mean = float(weights @ means)
    std = math.sqrt(float(weights @ (stds**2 + (means - mean) ** 2)))
    if not (math.isfinite(mean) and math.isfinite(std)):
        return Degenerate("diverging", f"prediction {mean:.3g} +- {std:.3g} is not finite")

    if mirror is not None:
        mean = mirror - mean
        fits = [
            ModelFit(f.name, f.params, mirror - f.mean, f.std, f.noise_std, f.bic) for f in fits
        ]
    return Prediction(
        mean=mean,
        std=std,
        n_models=len(fits),
        noise_std=float(weights @ np.array([fit.noise_std for fit in fits])),
        target_step=target_step,
        bounds=None if bounds is None else (float(bounds[0]), float(bounds[1])),
        fits=tuple(fits),
        weights=weights,
    )


def extrapolate(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    target_step: int,
    *,
    bounds: tuple[float, float] | None = None,
) -> Prediction | None:
    """The predicted distribution of the curve at ``target_step``, or ``None``.

    :func:`fit_ensemble` with all models; ``None`` stands for any :class:`Degenerate` curve
    (flat, too short, too noisy, non-finite, diverging or outside ``bounds``).

    Example:
        .. code-block:: python

            import numpy as np
            from optuna_nas.pruners._curves import extrapolate, prob_exceeds

            steps = np.arange(10)
            values = 0.9 - 0.5 * (steps + 1.0) ** -0.8
            prediction = extrapolate(steps, values, target_step=49, bounds=(0.0, 1.0))
            prob_exceeds(prediction, 0.95, "maximize")  # close to 0
    """
    result = fit_ensemble(steps, values, target_step, bounds=bounds)
    return result if isinstance(result, Prediction) else None


def prob_exceeds(
    prediction: Prediction,
    threshold: float,
    direction: str = "maximize",
    *,
    scale: float = 1.0,
) -> float:
    """Probability that the predicted value beats ``threshold``.

    The mixture of :class:`Prediction` is integrated component by component, each Gaussian
    truncated to ``prediction.bounds`` when known.

    Args:
        prediction: From :func:`extrapolate` or :func:`fit_ensemble`.
        threshold: The value to beat.
        direction: ``maximize`` for ``P(value > threshold)``, ``minimize`` for
            ``P(value < threshold)``.
        scale: Stretches the mixture about its mean by this factor before integrating:
            component means move ``scale`` times as far from the mixture mean and
            component standard deviations grow ``scale`` times, so the mixture's standard
            deviation is ``scale * prediction.std`` (before truncation). From
            :func:`calibration_scale`; 1 leaves the prediction as fitted.

    Raises:
        ValueError: For another ``direction`` or a ``scale`` that is not finite and
            positive.
    """
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    if not (math.isfinite(scale) and scale > 0.0):
        raise ValueError(f"scale must be finite and positive, got {scale!r}")
    means = np.array([fit.mean for fit in prediction.fits])
    if scale != 1.0:
        means = prediction.mean + scale * (means - prediction.mean)
    stds = np.maximum(scale * np.array([fit.std for fit in prediction.fits]), 1e-12)
    lo, hi = (-np.inf, np.inf) if prediction.bounds is None else prediction.bounds
    cdf_lo = special.ndtr((lo - means) / stds)
    cdf_hi = special.ndtr((hi - means) / stds)
    cdf_t = special.ndtr((np.clip(threshold, lo, hi) - means) / stds)
    mass = cdf_hi - cdf_lo
    # A component whose mass lies almost all outside the bounds sits on the nearer bound.
    spread = mass > 1e-12
    below = np.where(
        spread,
        (cdf_t - cdf_lo) / np.where(spread, mass, 1.0),
        (np.clip(means, lo, hi) < threshold).astype(float),
    )
    p_below = float(prediction.weights @ np.clip(below, 0.0, 1.0))
    return 1.0 - p_below if direction == "maximize" else p_below


def calibration_scale(errors: npt.ArrayLike, quantile: float = CALIBRATION_QUANTILE) -> float:
    """How much wider predictions must be to match the errors of earlier predictions.

    ``errors`` are standardised errors ``(final - mean) / std`` of predictions made for
    curves whose final value is now known. Were the predictions calibrated, the errors
    would be standard normal, and the ``quantile`` of their absolute values would be
    ``g = Phi^-1((1 + quantile) / 2)``. The scale is ``max(1, Q / g)`` with ``Q`` that
    quantile of the observed absolute errors (linearly interpolated): a Gaussian fitted
    to the errors by one quantile, a robust estimate of how much too narrow the
    predictions were. The default, the median, makes it the median absolute deviation
    (taken about 0, since a biased prediction errs too) divided by 0.6745, the classic
    robust estimate of a Gaussian's standard deviation (Hampel, 1974). The scale never
    narrows a prediction: errors smaller than calibrated ones may only mean that the
    curves were easy so far.

    Args:
        errors: Standardised errors of earlier predictions; shape ``m``. Non-finite ones
            are ignored.
        quantile: Which quantile of the absolute errors to match, in ``(0, 1)``; higher
            ones weigh the worst errors more.

    Returns:
        The factor, at least 1; exactly 1 without errors.

    Raises:
        ValueError: For a ``quantile`` outside ``(0, 1)``.

    References:
        Frank R. Hampel. "The Influence Curve and its Role in Robust Estimation". Journal
        of the American Statistical Association 69(346), 1974.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must lie in (0, 1), got {quantile!r}")
    z = np.abs(np.asarray(errors, dtype=float).ravel())
    z = z[np.isfinite(z)]
    if not len(z):
        return 1.0
    gaussian = float(special.ndtri(0.5 + 0.5 * quantile))
    return max(1.0, float(np.quantile(z, quantile)) / gaussian)


def _validate(
    steps: npt.ArrayLike,
    values: npt.ArrayLike,
    target_step: int,
    bounds: tuple[float, float] | None,
) -> tuple[Array, Array, float]:
    s = np.asarray(steps, dtype=float).ravel()
    y = np.asarray(values, dtype=float).ravel()
    if s.shape != y.shape:
        raise ValueError(f"steps and values differ in length: {len(s)} and {len(y)}")
    if np.any(s < 0) or not np.all(np.isfinite(s)):
        raise ValueError("steps must be finite and non-negative (0-based)")
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    if np.any(np.diff(s) == 0):
        raise ValueError("steps must be distinct")
    if len(s) and target_step < s[-1]:
        raise ValueError(f"target_step {target_step} precedes the last step {s[-1]:g}")
    if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
        raise ValueError(f"bounds must be (lo, hi) with lo < hi, got {bounds!r}")
    return s + 1.0, y, float(target_step) + 1.0


def _acceleration(y: Array, noise: float) -> str | None:
    """Why a rising curve looks like divergence rather than learning, or ``None``.

    Learning curves decelerate. A curve whose last quarter rises more than
    :data:`ACCELERATION` times as fast per step as the rest did, by more than four times
    the residual ``noise`` std, is diverging or has only just begun to learn; the
    saturating models would extrapolate it as a plateau.
    """
    n = len(y)
    q = max(2, n // 4)
    late_rise = y[-1] - y[-1 - q]
    late = late_rise / q
    early = max(y[-1 - q] - y[0], 0.0) / max(n - 1 - q, 1)
    if late > ACCELERATION * early and late_rise > 4.0 * noise:
        return f"the curve accelerates: {late:.3g} per step lately, {early:.3g} before"
    return None


def _summarise(x: Array, y: Array, span: float, lo: float, hi: float) -> _Summary:
    y_lo, y_hi = float(y.min()), float(y.max())
    top = (y_lo, min(hi, y_hi + 10.0 * span))
    bottom = (y_lo - 10.0 * span, y_hi)
    y_end = float(y[-3:].mean())
    asymptote = float(np.clip(y_end + 0.1 * span, *top))
    return _Summary(
        x=x,
        y=y,
        span=span,
        top=top,
        bottom=bottom,
        asymptote=asymptote,
        gap=max(asymptote - float(y[0]), 0.1 * span),
        x_mid=math.sqrt(x[0] * x[-1]),
    )


def _fit_model(
    model: CurveModel,
    summary: _Summary,
    target: float,
    warm: npt.ArrayLike | None,
    max_nfev: int,
) -> ModelFit | None:
    x, y = summary.x, summary.y
    n, k = len(y), model.n_params
    if n < k + 2:  # too few residual degrees of freedom to estimate the noise
        return None
    initial = model.initial(summary)
    if initial is None:
        return None
    guess, lower, upper = initial
    if warm is not None:
        warm_guess = np.asarray(warm, dtype=float)
        if warm_guess.shape == guess.shape and np.all(np.isfinite(warm_guess)):
            guess = _bounded(warm_guess, lower, upper)[0]
    big = 1e3 * (summary.span + 1.0)
    columns = x[:, None]
    noise_floor = (1e-6 * summary.span) ** 2

    def residuals(p: Array) -> Array:
        with np.errstate(all="ignore"):
            r = model.function(x, p) - y
        # Steer the solver away from parameters where the model is undefined.
        return r if np.isfinite(r).all() else np.where(np.isfinite(r), r, big)

    def jacobian(p: Array) -> Array:
        return _forward_difference(model, columns, p, upper)

    if np.abs(residuals(guess)).max() >= big:
        return None
    try:
        with np.errstate(all="ignore"):  # a trial step may overflow the cost; it is rejected
            result = optimize.least_squares(
                residuals,
                guess,
                jac=jacobian,
                bounds=(lower, upper),
                method="trf",
                x_scale="jac",
                max_nfev=max_nfev,
                ftol=FTOL,
                xtol=FTOL,
                gtol=FTOL,
            )
    except (ValueError, np.linalg.LinAlgError):
        return None
    params = result.x
    r = residuals(params)
    if np.abs(r).max() >= big:
        return None
    rss = float(r @ r)
    # A floor keeps exact fits of noise-free curves from sending the BIC to minus infinity.
    noise_var = max(rss / (n - k), noise_floor)
    mean = float(model(target, params))
    gradient = _forward_difference(model, np.array(target), params, upper)
    jac = jacobian(params)
    # Laplace: parameter covariance s^2 (J^T J)^+ at the optimum, linearised at the target.
    param_var = float(gradient @ np.linalg.pinv(jac.T @ jac, rcond=1e-10) @ gradient) * noise_var
    if not (math.isfinite(mean) and math.isfinite(param_var)):
        return None
    bic = n * math.log(max(rss / n, noise_floor)) + k * math.log(n)
    return ModelFit(
        name=model.name,
        params=params,
        mean=mean,
        std=math.sqrt(max(param_var, 0.0) + noise_var),
        noise_std=math.sqrt(noise_var),
        bic=bic,
    )


def _forward_difference(model: CurveModel, x: Array, params: Array, upper: Array) -> Array:
    """``d f(x; params) / d params`` by forward differences, one vectorised evaluation.

    Shape ``n x n_params`` for ``x`` of shape ``n x 1``, ``n_params`` for a scalar ``x``.
    Steps go backwards at an upper bound; undefined entries become 0.
    """
    step = 1e-7 * np.maximum(np.abs(params), 1e-3)
    shifted = np.where(upper - params < step, params - step, params + step)
    probes = params[:, None] + np.diag(shifted - params)
    with np.errstate(all="ignore"):
        diff = (model.function(x, probes) - model.function(x, params[:, None])) / (
            shifted - params
        )
    return diff if np.isfinite(diff).all() else np.where(np.isfinite(diff), diff, 0.0)


def _names(fits: Sequence[ModelFit], mask: npt.NDArray[np.bool_]) -> str:
    return ", ".join(fit.name for fit, hit in zip(fits, mask, strict=True) if hit)


def _bic_weights(bic: Array) -> Array:
    logits = -0.5 * (bic - bic.min()) / BIC_TEMPERATURE
    weights = np.exp(logits)
    return weights / weights.sum()


__all__ = [
    "MODELS",
    "CurveModel",
    "Degenerate",
    "ModelFit",
    "Prediction",
    "calibration_scale",
    "extrapolate",
    "fit_ensemble",
    "prob_exceeds",
]
