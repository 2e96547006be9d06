"""Pruning by learning-curve extrapolation (Domhan et al., 2015)."""

from __future__ import annotations

import bisect
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_nas import _keys
from optuna_nas._compat import study_storage, trial_id
from optuna_nas.pruners._common import is_int, say_not_decided

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

_logger = logging.getLogger(__name__)

PREDICTED_MEAN_ATTR = _keys.LCE_PREDICTED_MEAN
PREDICTED_STD_ATTR = _keys.LCE_PREDICTED_STD
P_IMPROVE_ATTR = _keys.LCE_P_IMPROVE
STD_SCALE_ATTR = _keys.LCE_STD_SCALE
PREDICTIONS_ATTR = _keys.LCE_PREDICTIONS
"""System attribute: every prediction made for the trial, ``[[n_reported, mean, std], ...]``
in order, which the calibration reads back once the trial has completed."""

STARTUP_TRIALS = 5
"""Completed trials :class:`LearningCurvePruner` waits for by default."""

PREDICTORS = ("ensemble", "pfn")
"""The predictors :class:`LearningCurvePruner` can use."""

_WARM_START_TRIALS = 64  # fits kept for warm starts; older running trials start cold again


class LearningCurvePruner(BasePruner):
    """Prunes a trial whose extrapolated final value is unlikely to beat the best trial.

    At each decision the trial's intermediate values are fitted by eleven parametric curve
    models; their mixture, weighted by fit quality, predicts a distribution of the value at
    ``max_step`` (see :mod:`optuna_nas.pruners._curves`). The trial is pruned when the
    probability that this value beats the best final value of the completed trials is
    below ``threshold`` (smaller at the first decisions, see ``ramp_steps``); for a
    minimised objective, "beats" means "is lower than".

    The predicted distribution is calibrated on the study's own history. Every prediction
    is recorded on its trial; once a trial completes, its predictions become standardised
    errors ``(final - mean) / std``. Before a decision with ``n`` values reported, the
    pruner takes, from each completed trial, the error of its latest prediction made from
    at most ``n`` values, and widens the predicted distribution by
    ``max(1, Q / Phi^-1((1 + q) / 2))``, with ``Q`` the ``q``-quantile of the absolute
    errors and ``q = calibration_quantile``
    (:func:`~optuna_nas.pruners._curves.calibration_scale`). Where the extrapolations of
    this study have proven reliable, the scale stays near 1 and the pruner prunes as
    before; where curves cross, and trials that end best were far behind early, it grows
    and the pruner holds back. The state lives in the storage, as a system attribute
    ``lce:predictions`` on each trial, so every worker computes the same scale. To gather
    errors early, the trials that cannot be pruned yet (before ``n_startup_trials``, or
    while they reach the best) are extrapolated too; completed trials without
    predictions, e.g. added with :meth:`optuna.study.Study.add_trial`, are left out, and
    without any the prediction is used as fitted.

    The trial is never pruned:

    * before it has reported ``min_steps`` values, and then only every ``interval_steps``
      reports;
    * before ``n_startup_trials`` trials have completed with a finite value;
    * at or after ``max_step``, where stopping saves nothing;
    * when its latest value already reaches the best final value;
    * when the curve is degenerate: flat, too short, too noisy, non-finite, or its
      extrapolation diverges or leaves ``bounds``.

    Each decision is stored on the trial as user attributes ``lce:predicted_mean``,
    ``lce:predicted_std`` (calibrated: the fitted std times ``lce:std_scale``) and
    ``lce:p_improve``, which the dashboard shows and architecture samplers read to score
    pruned trials.

    Fits of a running trial are warm-started from its previous fit, which makes a decision
    on a 50-step curve take about 17 ms of CPU instead of 29 ms (median, calibration
    included; Optuna's MedianPruner takes 0.13 ms; see ``benchmarks/results/lce_speed.md``).

    .. note::
        :func:`optuna_nas.training.fit` anneals the learning rate with a cosine schedule,
        which often lifts accuracy in the last epochs. The curve models saturate and cannot
        foresee that lift, so early predictions tend to be low; keep ``threshold`` small.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training
            from optuna_nas.pruners import LearningCurvePruner

            dataset = data.load("digits")
            space = spaces.create("chain", max_layers=2, filters=[8, 16])
            epochs = 10

            def objective(trial):
                model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
                return training.fit(model, dataset, trial=trial, epochs=epochs).valid_accuracy

            pruner = LearningCurvePruner(max_step=epochs - 1)
            study = optuna.create_study(direction="maximize", pruner=pruner)
            study.optimize(objective, n_trials=10)

    Args:
        max_step: The last step a trial reports, whose value is predicted. Steps count from
            0, so for :func:`optuna_nas.training.fit`, which reports epochs ``0`` to
            ``epochs - 1``, pass ``epochs - 1``.
        threshold: Prune when the probability of beating the best completed trial is below
            this, in ``(0, 1)``. Domhan et al. use 0.05.
        min_steps: Values a trial must have reported before the first decision, at least
            4 (the shortest curve that is fitted). ``None`` means
            ``max(4, (max_step + 1) // 8)``: an eighth of the curve, and at least 4 values.
        n_startup_trials: Completed trials needed before anything is pruned, at least 1.
        bounds: ``(lo, hi)`` the objective cannot leave, e.g. ``(0.0, 1.0)`` for accuracy;
            extrapolations outside them are rejected. ``None`` for an unbounded metric
            such as a loss. ``"auto"`` (the default) infers them at each decision from the
            values seen: ``(0, 1)`` when the trial's values and the completed trials'
            final values all lie in ``[0, 1]``, ``(0, 100)`` when they lie in
            ``[0, 100]`` (accuracy in percent), and no bounds otherwise. When a curve
            reports values outside the bounds given, the pruner says so once in the log
            and on the trial (user attribute ``optuna_nas:pruner_not_decided``). Curves
            are fitted in the unit interval of their bounds, so accuracy in percent gets
            the decisions it gets in ``[0, 1]``.
        interval_steps: Decide only every this many reports after ``min_steps``; fewer
            decisions cost less time.
        ramp_steps: The threshold ramps up over the first decisions: with ``n`` values
            reported it is ``threshold * min(1, (n - min_steps + 1) / ramp_steps) ** 2``,
            so with the default 6 the first decision needs a probability below
            ``threshold / 36``, the third below ``threshold / 4``, and from the sixth on
            ``threshold`` itself. Short curves are the hardest to extrapolate; ``1`` turns
            the ramp off.
        calibration_quantile: Which quantile of the completed trials' absolute
            standardised errors the widened prediction matches, in ``(0, 1)``. The
            default, the median, is the robust median-absolute-deviation estimate of the
            errors' scale (Hampel, 1974); higher quantiles weigh the worst misses more.
            ``None`` turns calibration off: predictions are used as fitted, and trials are
            extrapolated only when they can be pruned.
        predictor: What predicts the final value. ``"ensemble"``: the parametric curve
            models above. ``"pfn"``: a prior-fitted network (LC-PFN, Adriaensen et al.
            2023), a small transformer shipped with the package and trained on curves drawn
            from a prior (:class:`~optuna_nas.pruners.CurvePFN`); it predicts in one forward
            pass, in the unit interval of the bounds with higher being better, so accuracy,
            error and percent give the same decisions. Without bounds (a loss), the unit
            interval spans the trial's values and the completed trials' final values,
            widened by a tenth on each side. It never finds a curve degenerate, except
            for values that are not finite. Calibration and the recorded predictions work
            as for the ensemble.

    Raises:
        ValueError: For invalid arguments.

    References:
        Tobias Domhan, Jost Tobias Springenberg, Frank Hutter. "Speeding up Automatic
        Hyperparameter Optimization of Deep Neural Networks by Extrapolation of Learning
        Curves". IJCAI 2015.

        Steven Adriaensen, Herilalaina Rakotoarison, Samuel Müller, Frank Hutter. "Efficient
        Bayesian Learning Curve Extrapolation using Prior-Data Fitted Networks". NeurIPS 2023.

        Frank R. Hampel. "The Influence Curve and its Role in Robust Estimation". Journal
        of the American Statistical Association 69(346), 1974.
    """

    def __init__(
        self,
        max_step: int,
        threshold: float = 0.05,
        min_steps: int | None = None,
        n_startup_trials: int = STARTUP_TRIALS,
        bounds: tuple[float, float] | str | None = "auto",
        interval_steps: int = 1,
        ramp_steps: int = 6,
        calibration_quantile: float | None = 0.5,
        predictor: str = "ensemble",
    ) -> None:
        if not is_int(max_step) or max_step < 1:
            raise ValueError(f"max_step must be an integer >= 1, got {max_step!r}")
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold!r}")
        if min_steps is None:
            min_steps = max(4, (max_step + 1) // 8)
        elif not is_int(min_steps) or not 4 <= min_steps <= max_step:
            raise ValueError(
                f"min_steps must be an integer from 4 to max_step ({max_step}), got {min_steps!r}"
            )
        if not is_int(n_startup_trials) or n_startup_trials < 1:
            raise ValueError(f"n_startup_trials must be an integer >= 1, got {n_startup_trials!r}")
        if isinstance(bounds, str):
            if bounds != "auto":
                raise ValueError(f"bounds must be (lo, hi), None or 'auto', got {bounds!r}")
        elif bounds is not None:
            if len(bounds) != 2 or not float(bounds[0]) < float(bounds[1]):
                raise ValueError(f"bounds must be (lo, hi) with lo < hi or None, got {bounds!r}")
            bounds = (float(bounds[0]), float(bounds[1]))
        if not is_int(interval_steps) or interval_steps < 1:
            raise ValueError(f"interval_steps must be an integer >= 1, got {interval_steps!r}")
        if not is_int(ramp_steps) or ramp_steps < 1:
            raise ValueError(f"ramp_steps must be an integer >= 1, got {ramp_steps!r}")
        if calibration_quantile is not None and not 0.0 < calibration_quantile < 1.0:
            raise ValueError(
                f"calibration_quantile must lie in (0, 1) or be None, got {calibration_quantile!r}"
            )
        if predictor not in PREDICTORS:
            raise ValueError(
                f"predictor must be one of {', '.join(PREDICTORS)}, got {predictor!r}"
            )
        self._predictor = predictor
        self._max_step = int(max_step)
        self._threshold = float(threshold)
        self._min_steps = int(min_steps)
        self._n_startup_trials = int(n_startup_trials)
        self._bounds: tuple[float, float] | str | None = bounds
        self._said: set[str] = set()
        self._interval_steps = int(interval_steps)
        self._ramp_steps = int(ramp_steps)
        self._calibration_quantile = (
            None if calibration_quantile is None else float(calibration_quantile)
        )
        self._warm_starts: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial`` should stop; stores the prediction on it when one is made.

        Raises:
            ValueError: For a multi-objective study.
        """
        if len(study.directions) > 1:
            raise ValueError(
                "LearningCurvePruner needs a single-objective study; Optuna does not report "
                "intermediate values in multi-objective studies"
            )
        step = trial.last_step
        if step is None or step >= self._max_step:
            return False
        n_reported = len(trial.intermediate_values)
        if n_reported < self._min_steps:
            return False
        if (n_reported - self._min_steps) % self._interval_steps:
            return False

        completed = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.value is not None and math.isfinite(t.value)
        ]
        maximize = study.direction == StudyDirection.MAXIMIZE
        best: float | None = None
        if len(completed) >= self._n_startup_trials:
            finals = [t.value for t in completed if t.value is not None]
            best = max(finals) if maximize else min(finals)
        latest = trial.intermediate_values[step]
        decides = best is not None and ((latest < best) if maximize else (latest > best))
        if not decides and self._calibration_quantile is None:
            return False
        # A trial that cannot be pruned yet (before n_startup_trials, or while it reaches
        # the best) is still extrapolated when calibrating. Startup trials complete
        # whatever their early curve looks like, so their errors are the calibration's
        # unbiased sample, crossing curves included.

        steps = sorted(trial.intermediate_values)
        values = [trial.intermediate_values[s] for s in steps]
        bounds = self._bounds_for(values, completed)
        if self._predictor == "pfn":
            return self._prune_pfn(study, trial, steps, values, bounds, completed, best, decides)

        # Imported here, so that importing optuna_nas.pruners does not load SciPy's optimisers.
        from optuna_nas.pruners import _curves

        # The curve is fitted in the unit interval of its bounds, so that accuracy in
        # percent is fitted exactly as the same accuracy in [0, 1]; predictions are
        # mapped back to the metric's own units.
        lo, span = (0.0, 1.0) if bounds is None else (bounds[0], bounds[1] - bounds[0])
        fitted = _curves.fit_ensemble(
            steps,
            [(v - lo) / span for v in values],
            self._max_step,
            bounds=None if bounds is None else (0.0, 1.0),
            warm_start=self._warm_starts.get(trial_id(trial)),
        )
        if isinstance(fitted, _curves.Degenerate):
            outside = bounds is not None and any(
                not bounds[0] <= v <= bounds[1] for v in values if math.isfinite(v)
            )
            if outside and decides and bounds is not None:
                self._say_outside(study, trial, bounds)
            _logger.debug(
                "trial %d, step %d: not extrapolated (%s: %s)",
                trial.number,
                step,
                fitted.reason,
                fitted.detail,
            )
            return False
        self._remember(trial_id(trial), fitted.params)
        mean, std = lo + span * fitted.mean, span * fitted.std
        self._record(study, trial, n_reported, mean, std)
        if not decides or best is None:
            return False

        direction = "maximize" if maximize else "minimize"
        scale = self._scale(completed, n_reported)
        p_improve = _curves.prob_exceeds(fitted, (best - lo) / span, direction, scale=scale)
        return self._decide(study, trial, n_reported, mean, scale * std, scale, p_improve)

    def _prune_pfn(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        steps: Sequence[int],
        values: Sequence[float],
        bounds: tuple[float, float] | None,
        completed: Sequence[optuna.trial.FrozenTrial],
        best: float | None,
        decides: bool,
    ) -> bool:
        """The decision with the prior-fitted network as the predictor."""
        from optuna_nas.pruners import _pfn

        if not all(math.isfinite(v) for v in values):
            _logger.debug("trial %d: not extrapolated (non_finite)", trial.number)
            return False
        maximize = study.direction == StudyDirection.MAXIMIZE
        if bounds is None:
            bounds = _data_range(values, completed)
        elif any(not bounds[0] <= v <= bounds[1] for v in values):
            if decides:
                self._say_outside(study, trial, bounds)
            return False
        lo, hi = bounds
        span = hi - lo

        # The network's frame: the unit interval of the bounds, higher being better.
        def to_unit(v: float) -> float:
            return (v - lo) / span if maximize else (hi - v) / span

        model = _pfn.load()
        borders = model.borders.double().numpy()
        probs = _pfn.predict(model, steps, [to_unit(v) for v in values], self._max_step)
        unit_mean, unit_std = _pfn.bin_moments(probs, borders)
        mean = lo + span * unit_mean if maximize else hi - span * unit_mean
        std = span * unit_std
        n_reported = len(values)
        self._record(study, trial, n_reported, mean, std)
        if not decides or best is None:
            return False
        scale = self._scale(completed, n_reported)
        # Stretching the distribution about its mean by ``scale`` moves the threshold
        # towards the mean by the same factor.
        p_improve = _pfn.bin_survival(
            probs, borders, unit_mean + (to_unit(best) - unit_mean) / scale
        )
        return self._decide(study, trial, n_reported, mean, scale * std, scale, p_improve)

    def _say_outside(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        bounds: tuple[float, float],
    ) -> None:
        say_not_decided(
            study,
            trial,
            f"its values leave the bounds {bounds} it was given; pass the metric's "
            "real bounds, None for an unbounded metric, or 'auto'",
            self._said,
            _logger,
            "LearningCurvePruner",
        )

    def _record(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        n_reported: int,
        mean: float,
        std: float,
    ) -> None:
        """Appends the prediction to the trial's record, which the calibration reads."""
        if self._calibration_quantile is None:
            return
        recorded = _keys.read(trial.system_attrs, PREDICTIONS_ATTR, [])
        study_storage(study).set_trial_system_attr(
            trial_id(trial), PREDICTIONS_ATTR, [*recorded, [n_reported, mean, std]]
        )

    def _decide(
        self,
        study: optuna.study.Study,
        trial: optuna.trial.FrozenTrial,
        n_reported: int,
        mean: float,
        std: float,
        scale: float,
        p_improve: float,
    ) -> bool:
        """Stores the decision's prediction on the trial and compares ``p_improve`` with
        the threshold."""
        storage = study_storage(study)
        storage.set_trial_user_attr(trial_id(trial), PREDICTED_MEAN_ATTR, mean)
        storage.set_trial_user_attr(trial_id(trial), PREDICTED_STD_ATTR, std)
        storage.set_trial_user_attr(trial_id(trial), STD_SCALE_ATTR, scale)
        storage.set_trial_user_attr(trial_id(trial), P_IMPROVE_ATTR, p_improve)
        return p_improve < self._threshold_at(n_reported)

    def _scale(self, completed: Sequence[optuna.trial.FrozenTrial], n_reported: int) -> float:
        """The calibration's widening factor (1 without calibration)."""
        if self._calibration_quantile is None:
            return 1.0
        from optuna_nas.pruners import _curves

        errors = [_standardized_error(t, n_reported) for t in completed]
        return _curves.calibration_scale(
            [e for e in errors if e is not None], self._calibration_quantile
        )

    def _bounds_for(
        self, values: Sequence[float], completed: Sequence[optuna.trial.FrozenTrial]
    ) -> tuple[float, float] | None:
        """The bounds given, or with ``"auto"`` those the values seen so far fit: ``(0, 1)``
        if every value of this trial and of the completed trials lies in ``[0, 1]``,
        ``(0, 100)`` if they lie in ``[0, 100]``, and none otherwise."""
        if not isinstance(self._bounds, str):
            return self._bounds
        seen = [*values, *(t.value for t in completed if t.value is not None)]
        finite = [v for v in seen if math.isfinite(v)]
        if finite and 0.0 <= min(finite) and max(finite) <= 1.0:
            return (0.0, 1.0)
        if finite and 0.0 <= min(finite) and max(finite) <= 100.0:
            return (0.0, 100.0)
        return None

    def _threshold_at(self, n_reported: int) -> float:
        # The shortest curves are the least predictable: the Laplace uncertainty is too
        # narrow there, so the first decisions demand stronger evidence.
        ramp = min(1.0, (n_reported - self._min_steps + 1) / self._ramp_steps)
        return self._threshold * ramp**2

    def _remember(self, trial_id: int, params: dict[str, npt.NDArray[np.float64]]) -> None:
        self._warm_starts.pop(trial_id, None)
        self._warm_starts[trial_id] = params  # now the newest
        while len(self._warm_starts) > _WARM_START_TRIALS:
            self._warm_starts.popitem(last=False)


def _data_range(
    values: Sequence[float], completed: Sequence[optuna.trial.FrozenTrial]
) -> tuple[float, float]:
    """For an unbounded metric: the range of the trial's values and the completed trials'
    final values, widened by a tenth on each side (a unit range around a single value)."""
    seen = [*values, *(t.value for t in completed if t.value is not None)]
    lo, hi = min(seen), max(seen)
    margin = 0.1 * (hi - lo) if hi > lo else 0.5
    return lo - margin, hi + margin


def _standardized_error(trial: optuna.trial.FrozenTrial, n_reported: int) -> float | None:
    """``(final - mean) / std`` of the completed ``trial``'s latest prediction made from
    at most ``n_reported`` values, or ``None`` if it has none."""
    records: Sequence[Sequence[float]] = _keys.read(trial.system_attrs, PREDICTIONS_ATTR, ())
    at = bisect.bisect_right([r[0] for r in records], n_reported)
    if at == 0 or trial.value is None:
        return None
    _, mean, std = records[at - 1]
    return (trial.value - mean) / std if std > 0.0 else None


__all__ = ["LearningCurvePruner"]
