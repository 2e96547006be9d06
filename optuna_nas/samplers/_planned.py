"""A base for samplers that decide a whole assignment up front, in ``before_trial``.

In a define-by-run, conditional space a sampler cannot know the parameters of a trial
before the objective asks for them. Architecture samplers (evolution, policy gradient,
Bayesian optimisation over observed structures) all work the same way: they pick a
*plan*, a full assignment built from earlier trials, when the trial starts, and then
answer each ``suggest_*`` call from the plan. A parameter the plan does not hold (one a
mutation newly activated, or any in a fresh space) is drawn at random.

The plan is also written to the trial's system attributes, so every decision can be
traced in storage and the dashboard; samplers keep no state that another worker could
not rebuild from the study's trials.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import _keys
from optuna_nas._compat import enqueued_params, study_storage, study_trials, trial_id

PLAN_ATTR_PREFIX = _keys.PLAN_PREFIX
PENDING_STATES = (TrialState.RUNNING, TrialState.WAITING)
"""States of trials that have yet to evaluate their architecture (see :func:`planned_genome`)."""
HELD_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
"""States of finished trials whose architecture counts as taken: a failed one is not retried."""


class PlannedSampler(BaseSampler, abc.ABC):
    """Samples each trial from a plan made when the trial starts.

    Subclasses implement :meth:`make_plan`. They may also override :meth:`after_trial`,
    but must call this class's version, which forgets the finished trial's plan.

    Args:
        seed: Seed of the sampler's random generator.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)
        self._plans: dict[int, dict[str, Any]] = {}

    @property
    def plan_attr(self) -> str:
        """The trial system-attribute key under which plans are stored."""
        return PLAN_ATTR_PREFIX + type(self).__name__

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()

    def infer_relative_search_space(
        self, study: Study, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        plan = self.make_plan(study, trial)
        if plan is None:
            return
        self._plans[trial_id(trial)] = plan
        study_storage(study).set_trial_system_attr(trial_id(trial), self.plan_attr, plan)

    def sample_independent(
        self,
        study: Study,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        plan = self._plans.get(trial_id(trial))
        if plan is None:
            plan = trial.system_attrs.get(self.plan_attr)
        if plan is not None and param_name in plan:
            value = plan[param_name]
            try:
                internal = param_distribution.to_internal_repr(value)
            except (ValueError, TypeError):
                internal = None
            if internal is not None and param_distribution._contains(internal):
                return value
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._plans.pop(trial_id(trial), None)

    @abc.abstractmethod
    def make_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """The assignment to follow in ``trial``, or ``None`` to sample it at random."""


def finished_trials(
    study: Study, states: Sequence[TrialState] = (TrialState.COMPLETE, TrialState.PRUNED)
) -> list[FrozenTrial]:
    """Trials of ``study`` in the given states, ordered by trial number."""
    trials = study_trials(study, states=tuple(states), use_cache=True)
    return sorted(trials, key=lambda t: t.number)


def trial_score(study: Study, trial: FrozenTrial, objective: int = 0) -> float | None:
    """A trial's value as "higher is better", or ``None`` when it has none.

    Completed trials use their value. Pruned trials use, in order of preference, the
    final value a learning-curve pruner predicted (user attribute
    ``optuna_nas:lce_predicted_mean``) or their last reported intermediate value.
    """
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        value: float | None = trial.values[objective]
    elif trial.state == TrialState.PRUNED:
        predicted = _keys.read(trial.user_attrs, _keys.LCE_PREDICTED_MEAN)
        if isinstance(predicted, (int, float)):
            value = float(predicted)
        elif trial.intermediate_values:
            value = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            value = None
    else:
        value = None
    if value is None or not np.isfinite(value):
        return None
    direction = study.directions[objective]
    return float(value) if direction == optuna.study.StudyDirection.MAXIMIZE else -float(value)


def planned_genome(trial: FrozenTrial, plan_attr: str) -> dict[str, Any]:
    """What a trial evaluates: its parameters, or for an unfinished one also its plan or
    enqueued values, which it will be asked for."""
    if trial.state.is_finished():
        return dict(trial.params)
    genome: dict[str, Any] = {}
    for source in (trial.system_attrs.get(plan_attr), enqueued_params(trial)):
        if isinstance(source, Mapping):
            genome.update(source)
    genome.update(trial.params)
    return genome
