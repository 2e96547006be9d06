"""Pruning by rank among every trial at the same step."""

from __future__ import annotations

import logging
import math
import numbers
import warnings

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import _keys
from optuna_nas._compat import study_storage, trial_id
from optuna_nas.pruners._common import is_int, rank_key, say_not_decided
from optuna_nas.pruners._lce import STARTUP_TRIALS, LearningCurvePruner

_logger = logging.getLogger(__name__)

RANK_ATTR = _keys.RANK_FRACTION_BETTER
"""Trial user attribute: at the latest decision, the fraction of the study's trials that were
better at the same step (the quantity the rank rule compares with ``top_fraction``)."""

NOT_DECIDED_ATTR = _keys.PRUNER_NOT_DECIDED
"""Trial user attribute set when a pruner could not decide for a reason other than its
documented waiting rules, with the reason."""


class RankPruner(BasePruner):
    """Prunes a trial that is not among the best of all trials at the same step.

    Three rules, any of which prunes, after ``n_startup_trials`` trials have completed and
    the trial has reported more than ``n_warmup_steps`` steps:

    * **Rank among all trials, stricter as training goes on.** At the trial's latest step
      ``t`` the pruner compares the trial's best value so far with the best value so far
      at ``t`` of every other trial: completed, pruned and running trials that reached
      ``t``, and trials pruned before ``t``, which count as worse. The trial is pruned when
      at least ``n_keep`` trials, and more than a fraction ``q`` of them, were better. At
      the trial's first reported step ``q`` is ``first_fraction``; it halves every
      ``halving_steps`` steps the trial reports (smoothly, a little at every step), down to
      ``top_fraction``. Because pruned trials count, this is the trial's rank in the whole
      population of architectures tried, not among the survivors. The first epochs, whose
      ranks hold least, get the widest margin, as in successive halving (Jamieson and
      Talwalkar 2016), but at every step instead of at rungs.
    * **Percentile of completed trials** (Optuna's ``PercentilePruner`` rule), from step
      ``percentile_warmup_steps`` on: the trial's best value so far is below the
      ``completed_percentile`` of the completed trials' values at ``t``, counted from the
      worst (75 keeps the top quarter; the percentile is the reported value at or below
      it, not an interpolation). ``None`` turns it off.
    * **Extrapolation**, off by default (``pfn_threshold``): the learning-curve network of
      :class:`LearningCurvePruner` with ``predictor="pfn"`` (LC-PFN, Adriaensen et al. 2023)
      predicts the distribution of the trial's value at ``max_step``, and the trial is
      pruned when the probability that it beats the best completed trial is below
      ``pfn_threshold``. At 0.005 it acts only where a curve leaves no doubt, mostly in the
      first epochs, before the ranks are trusted. It waits for at least 5 completed trials
      and for an eighth of the curve, and records its prediction on the trial as that
      pruner does (``optuna_nas:lce_p_improve`` and the rest). It is off by default
      because, on the replay's curves, it saves at most 3 points more and a threshold
      only twice as high loses the best network of a source it was not chosen on (the
      benchmarks page), and because it makes the decisions depend on the metric's scale.

    Neither rank rule prunes at a step whose values do not foretell later ones. The pruner
    takes every trial that reached a later *horizon*, twice as many steps as the decision
    (at least 2 steps more, at most the completed trials' last step), and computes the
    Spearman rank correlation between their values at the step and at the horizon. With
    fewer than ``min_pairs`` such trials, or a correlation whose estimate one standard
    error down (Fisher's z-transform, error ``1 / sqrt(n - 3)``) is below
    ``min_correlation``, nothing is pruned at that step. By default the correlation must
    be positive at one standard error: a weak test, because every trial it lets run costs
    epochs, but one that stops most pruning at steps whose ranks are noise (every network
    at chance level, say). ``min_correlation=None`` turns it off.

    The rank rules compare ranks only, so their decisions are the same whatever the
    metric's scale: accuracy in ``[0, 1]`` or in percent, an error or a loss (with
    ``direction="minimize"``), negative or unbounded values. The extrapolation rule works
    in the unit interval of the metric's bounds (inferred as :class:`LearningCurvePruner`
    infers them), so it decides alike on accuracy in ``[0, 1]``, in percent and on the
    error, but not on a non-linear transform such as a loss. A NaN or infinite value counts
    as worse than any finite one. A trial that reports a step no other trial reached is
    not pruned; if that happens because the trials' steps never match (each trial
    reporting its own step numbers, such as timestamps), the pruner says so once in the
    log and on the trial (user attribute ``optuna_nas:pruner_not_decided``).

    Nothing is pruned at ``max_step``, when it is known. The defaults were chosen on the
    curve banks of ``benchmarks/pruner_replay.py``, leaving one source out at a time, and
    checked on sources no choice had seen. The benchmarks page of the documentation has
    the held-out results beside Optuna's pruners, and the tuning disclosure.

    Each decision's fraction of better trials is stored on the trial as the user attribute
    ``optuna_nas:rank_fraction_better``; the state is the study's own trials, so every
    worker of a distributed study decides alike.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training
            from optuna_nas.pruners import RankPruner

            dataset = data.load("digits")
            space = spaces.create("chain", max_layers=2)

            def objective(trial):
                model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
                return training.fit(model, dataset, trial=trial, epochs=5).valid_accuracy

            study = optuna.create_study(direction="maximize", pruner=RankPruner())
            study.optimize(objective, n_trials=12)

    Args:
        top_fraction: The fraction of the population at a step that the rank rule never
            prunes once the halving has reached it, in ``(0, 1)``.
        first_fraction: The fraction kept at the trial's first reported step, in ``(0, 1)``; it
            halves every ``halving_steps`` steps, and the rule never keeps less than
            ``top_fraction``.
        halving_steps: Steps over which the kept fraction halves, at least 1. Larger
            values wait longer for networks that start slowly.
        n_keep: The rank rule prunes only a trial that at least this many trials beat at
            the step, at least 1. It protects the first decisions of a study, when few
            trials have run and a fraction of them is less than one trial.
        completed_percentile: The percentile (0-100) of the completed trials' values at
            the step that the trial's best value so far must reach, counted from the worst
            (so 50 is the median and 75 keeps the top quarter); ``None`` turns the rule off.
        percentile_warmup_steps: The first step at which the percentile rule applies.
        n_startup_trials: Completed trials needed before anything is pruned, at least 1.
        n_warmup_steps: Steps a trial reports before it can be pruned: the first decision
            is at step ``n_warmup_steps``, counting from 0.
        interval_steps: Decide every this many steps after the warm-up.
        min_correlation: The rank correlation, in ``[-1, 1]``, between the values at a step
            and at its horizon below which nothing is pruned at that step; ``None`` turns
            the test off.
        min_pairs: Trials that must have reached the horizon before the test can pass, at
            least 4 (the standard error needs 4).
        max_step: The last step a trial reports, if known (:func:`optuna_nas.pruners.create`
            passes ``epochs - 1``). Nothing is pruned there: stopping after the last epoch
            saves nothing and would lose the trial's value. Without it, the extrapolation
            rule predicts the last step that the completed trials reached.
        pfn_threshold: The extrapolation rule prunes a trial whose probability of beating
            the best completed trial is below this, in ``(0, 1)``; ``None`` (the default)
            turns the rule off. 0.005 is the value measured on the benchmarks page.

    Raises:
        ValueError: For invalid arguments.

    References:
        Steven Adriaensen, Herilalaina Rakotoarison, Samuel Müller, Frank Hutter. "Efficient
        Bayesian Learning Curve Extrapolation using Prior-Data Fitted Networks". NeurIPS 2023.

        Kevin Jamieson, Ameet Talwalkar. "Non-stochastic Best Arm Identification and
        Hyperparameter Optimization". AISTATS 2016 (ranking configurations at equal
        budget).

        Daniel Golovin, Benjamin Solnik, Subhodeep Moitra, Greg Kochanski, John Karro,
        D. Sculley. "Google Vizier: A Service for Black-Box Optimization". KDD 2017 (the
        median stopping rule).
    """

    def __init__(
        self,
        top_fraction: float = 0.04,
        first_fraction: float = 0.35,
        halving_steps: float = 3.0,
        n_keep: int = 2,
        completed_percentile: float | None = 75.0,
        percentile_warmup_steps: int = 10,
        n_startup_trials: int = 3,
        n_warmup_steps: int = 0,
        interval_steps: int = 1,
        min_correlation: float | None = 0.0,
        min_pairs: int = 4,
        max_step: int | None = None,
        pfn_threshold: float | None = None,
    ) -> None:
        if not isinstance(top_fraction, numbers.Real) or not 0.0 < top_fraction < 1.0:
            raise ValueError(f"top_fraction must lie in (0, 1), got {top_fraction!r}")
        if not isinstance(first_fraction, numbers.Real) or not 0.0 < first_fraction < 1.0:
            raise ValueError(f"first_fraction must lie in (0, 1), got {first_fraction!r}")
        if (
            not isinstance(halving_steps, numbers.Real)
            or isinstance(halving_steps, bool)
            or not halving_steps >= 1.0
        ):
            raise ValueError(f"halving_steps must be a number >= 1, got {halving_steps!r}")
        if not is_int(n_keep) or n_keep < 1:
            raise ValueError(f"n_keep must be an integer >= 1, got {n_keep!r}")
        if completed_percentile is not None and not (
            isinstance(completed_percentile, numbers.Real) and 0.0 <= completed_percentile <= 100.0
        ):
            raise ValueError(
                "completed_percentile must lie in [0, 100] or be None, got "
                f"{completed_percentile!r}"
            )
        for name, value, low in (
            ("percentile_warmup_steps", percentile_warmup_steps, 0),
            ("n_startup_trials", n_startup_trials, 1),
            ("n_warmup_steps", n_warmup_steps, 0),
            ("interval_steps", interval_steps, 1),
            ("min_pairs", min_pairs, 4),
        ):
            if not is_int(value) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if min_correlation is not None and not (
            isinstance(min_correlation, numbers.Real) and -1.0 <= min_correlation <= 1.0
        ):
            raise ValueError(
                f"min_correlation must lie in [-1, 1] or be None, got {min_correlation!r}"
            )
        self._top_fraction: float = float(top_fraction)
        self._first_fraction: float = float(first_fraction)
        self._halving_steps: float = float(halving_steps)
        self._n_keep: int = int(n_keep)
        self._percentile: float | None = (
            None if completed_percentile is None else float(completed_percentile)
        )
        self._percentile_warmup: int = int(percentile_warmup_steps)
        self._n_startup_trials: int = int(n_startup_trials)
        self._n_warmup_steps: int = int(n_warmup_steps)
        self._interval_steps: int = int(interval_steps)
        self._min_correlation: float | None = (
            None if min_correlation is None else float(min_correlation)
        )
        self._min_pairs: int = int(min_pairs)
        if max_step is not None and (not is_int(max_step) or max_step < 0):
            raise ValueError(f"max_step must be an integer >= 0 or None, got {max_step!r}")
        self._max_step: int | None = None if max_step is None else int(max_step)
        if pfn_threshold is not None and not (
            isinstance(pfn_threshold, numbers.Real) and 0.0 < pfn_threshold < 1.0
        ):
            raise ValueError(f"pfn_threshold must lie in (0, 1) or be None, got {pfn_threshold!r}")
        self._pfn_threshold: float | None = None if pfn_threshold is None else float(pfn_threshold)
        self._extrapolators: dict[int, LearningCurvePruner] = {}
        self._said: set[str] = set()

    def _extrapolates(
        self, study: optuna.study.Study, trial: FrozenTrial, completed: list[FrozenTrial]
    ) -> bool:
        """The extrapolation rule: whether the learning-curve network prunes ``trial``."""
        if self._pfn_threshold is None:
            return False
        max_step = self._max_step
        if max_step is None:  # the last step the completed trials reached
            steps = [t.last_step for t in completed if t.last_step is not None]
            if not steps or max(steps) < 1:
                return False
            max_step = max(steps)
        pruner = self._extrapolators.get(max_step)
        if pruner is None:
            pruner = LearningCurvePruner(
                max_step=max_step,
                threshold=self._pfn_threshold,
                predictor="pfn",
                n_startup_trials=max(self._n_startup_trials, STARTUP_TRIALS),
            )
            self._extrapolators[max_step] = pruner
        return pruner.prune(study, trial)

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Whether ``trial`` should stop; stores its rank on it when one is computed.

        Raises:
            ValueError: For a multi-objective study.
        """
        if len(study.directions) > 1:
            raise ValueError(
                "RankPruner needs a single-objective study; Optuna does not report "
                "intermediate values in multi-objective studies"
            )
        step = trial.last_step
        if step is None or step < self._n_warmup_steps:
            return False
        if self._max_step is not None and step >= self._max_step:
            return False
        if (step - self._n_warmup_steps) % self._interval_steps:
            return False
        trials = study.get_trials(deepcopy=False)
        completed = [t for t in trials if t.state == TrialState.COMPLETE]
        if len(completed) < self._n_startup_trials:
            return False
        # The network waits for at least as many completed trials as the rank rules.
        if self._extrapolates(study, trial, completed):
            return True
        maximize = study.direction == StudyDirection.MAXIMIZE
        mine = _best_until(trial, step, maximize)
        assert mine is not None  # the trial reported ``step``

        better = population = 0
        for other in trials:
            if other.number == trial.number or other.state not in _POPULATION:
                continue
            value = _best_until(other, step, maximize)
            if value is not None:
                population += 1
                better += value > mine
            elif other.state == TrialState.PRUNED and other.last_step is not None:
                population += 1  # pruned before this step: worse
        if population == 0:
            say_not_decided(
                study,
                trial,
                f"no other trial reported step {step} or an earlier one; trials must report "
                "the same step numbers (e.g. epochs) for their ranks to be compared",
                self._said,
                _logger,
                "RankPruner",
            )
            return False
        fraction = better / population
        study_storage(study).set_trial_user_attr(trial_id(trial), RANK_ATTR, fraction)
        completed_at_step = [
            rank_key(v, maximize) for t in completed if (v := _value_at(t, step)) is not None
        ]
        if len(completed_at_step) < max(3, self._n_startup_trials):
            return False
        decision = sum(1 for s in trial.intermediate_values if s < step)
        kept = max(
            self._top_fraction, self._first_fraction * 0.5 ** (decision / self._halving_steps)
        )
        hit = better >= self._n_keep and fraction > kept
        if not hit and self._percentile is not None and step >= self._percentile_warmup:
            # An order statistic, not an interpolation between two values: the comparison
            # then involves reported values only, so it is the same on any scale.
            cut = np.percentile(np.asarray(completed_at_step), self._percentile, method="lower")
            hit = mine < float(cut)
        if not hit:
            return False
        return self._min_correlation is None or self._foretells(
            trials, completed, step, maximize, self._min_correlation
        )

    def _foretells(
        self,
        trials: list[FrozenTrial],
        completed: list[FrozenTrial],
        step: int,
        maximize: bool,
        min_correlation: float,
    ) -> bool:
        """Whether the values at ``step`` foretell later ones: the rank correlation between
        them and the values at a later ``horizon``, over at least ``min_pairs`` trials that
        reached it, is at least ``min_correlation`` one standard error down."""
        last = max(t.last_step for t in completed if t.last_step is not None)
        horizon = min(max(2 * step + 1, step + 3), last)
        pairs = [
            (rank_key(a, maximize), rank_key(b, maximize))
            for t in trials
            if t.state in _POPULATION
            and (a := _value_at(t, step)) is not None
            and (b := _value_at(t, horizon)) is not None
        ]
        if len(pairs) < self._min_pairs:
            return False
        rho = _spearman([a for a, _ in pairs], [b for _, b in pairs])
        z = math.atanh(min(max(rho, -0.999999), 0.999999))
        return math.tanh(z - 1.0 / math.sqrt(len(pairs) - 3)) >= min_correlation


_POPULATION = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


def _value_at(trial: FrozenTrial, step: int) -> float | None:
    """The trial's value at ``step``, or at its latest earlier step if it went past
    ``step`` without reporting it; ``None`` if it has not reached ``step``."""
    values = trial.intermediate_values
    if step in values:
        return values[step]
    if trial.last_step is None or trial.last_step < step:
        return None
    earlier = [s for s in values if s < step]
    return values[max(earlier)] if earlier else None


def _best_until(trial: FrozenTrial, step: int, maximize: bool) -> float | None:
    """The trial's best value (as :func:`rank_key`) over its steps up to ``step``, or
    ``None`` if it has not reached ``step``."""
    if trial.last_step is None or trial.last_step < step:
        return None
    keys = [rank_key(v, maximize) for s, v in trial.intermediate_values.items() if s <= step]
    return max(keys) if keys else None


def _spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation of ``a`` and ``b``; ``-1`` when it is undefined (a
    constant input)."""
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant input: NaN, handled below
        rho = float(spearmanr(a, b).statistic)
    return rho if math.isfinite(rho) else -1.0


__all__ = ["NOT_DECIDED_ATTR", "RANK_ATTR", "RankPruner"]
