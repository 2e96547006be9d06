"""Pruning a multi-objective study on one of its objectives."""

from __future__ import annotations

import math
import numbers
from collections.abc import Container

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import _keys
from optuna_nas._compat import fresh_trial, study_storage, trial_id

INTERMEDIATE_ATTR_PREFIX = _keys.CURVE_PREFIX
"""Trial user attributes ``intermediate_values:<objective>`` hold the reported curves."""


class ObjectivePruner(BasePruner):
    """Lets any pruner prune a multi-objective study on one named objective.

    Optuna refuses ``trial.report`` and ``trial.should_prune`` when a study has several
    objectives, because a pruner compares one curve with others. This wrapper keeps the
    curve of one objective instead: :meth:`report` stores the values in the trial user
    attribute ``intermediate_values:<objective>`` (a dict from step to value, so it lives
    in any storage and the dashboard shows it), and :meth:`should_prune` asks the wrapped
    pruner with a single-objective view of the study. In that view the study has just
    this objective's direction, each trial's ``intermediate_values`` are the stored curve,
    and a completed trial's ``value`` is its value for this objective. Attributes the
    wrapped pruner writes (the learning-curve prediction, the fidelity correlations) land
    in the real study.

    :func:`optuna_nas.training.fit` reports through the wrapper by itself when it trains a
    trial of a multi-objective study whose pruner is an :class:`ObjectivePruner`.

    A trial without the attribute keeps Optuna's own intermediate values in the view, so
    in a single-objective study the wrapper, with ``objective=0``, also serves plain
    ``trial.report`` calls.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training
            from optuna_nas.pruners import LowFidelityPruner, ObjectivePruner

            dataset = data.load("digits")
            space = spaces.create("chain", max_layers=2)
            epochs = 9
            pruner = ObjectivePruner(LowFidelityPruner(max_step=epochs - 1), "accuracy")

            def objective(trial):
                model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
                result = training.fit(model, dataset, trial=trial, epochs=epochs)
                return result.valid_accuracy, result.n_params

            study = optuna.create_study(directions=["maximize", "minimize"], pruner=pruner)
            study.set_metric_names(["accuracy", "params"])
            study.optimize(objective, n_trials=20)

        Without :func:`~optuna_nas.training.fit`, report yourself:
        ``pruner.report(trial, value, step)`` and then
        ``if pruner.should_prune(trial): raise optuna.TrialPruned()``.

    Args:
        pruner: The pruner to ask, e.g. :class:`LowFidelityPruner` or
            :class:`LearningCurvePruner`.
        objective: The objective to prune on: a name set with
            ``study.set_metric_names`` or an index into ``study.directions``.

    Raises:
        ValueError: If ``pruner`` is not a pruner or ``objective`` is neither a name nor
            an index.
    """

    def __init__(self, pruner: BasePruner, objective: str | int) -> None:
        if not isinstance(pruner, BasePruner):
            raise ValueError(f"pruner must be an optuna BasePruner, got {type(pruner).__name__}")
        if isinstance(objective, bool) or not isinstance(objective, (str, numbers.Integral)):
            raise ValueError(
                f"objective must be a metric name or an objective index, got {objective!r}"
            )
        if isinstance(objective, numbers.Integral) and objective < 0:
            raise ValueError(f"objective index must be >= 0, got {objective!r}")
        self._pruner = pruner
        self._objective = objective if isinstance(objective, str) else int(objective)
        self._attr = f"{INTERMEDIATE_ATTR_PREFIX}{self._objective}"

    @property
    def pruner(self) -> BasePruner:
        """The wrapped pruner."""
        return self._pruner

    @property
    def attr_key(self) -> str:
        """The trial user attribute that holds the reported values."""
        return self._attr

    def report(self, trial: optuna.trial.Trial, value: float, step: int) -> None:
        """Stores ``value`` at ``step`` of this objective's curve on ``trial``.

        Like ``trial.report``, a step reported twice keeps its first value.

        Raises:
            ValueError: If ``step`` is negative, ``value`` is not a number, or the study
                has no such objective.
        """
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"step must be an integer >= 0, got {step!r}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"the reported value must be a number, got {value!r}") from None
        self._index(trial.study)
        curve = dict(_keys.read(trial.user_attrs, self._attr, {}))
        if str(int(step)) in curve:
            return
        # JSON turns NaN into a non-standard token some storages refuse; None stands in.
        curve[str(int(step))] = value if math.isfinite(value) else None
        trial.set_user_attr(self._attr, curve)

    def should_prune(self, trial: optuna.trial.Trial) -> bool:
        """Whether the wrapped pruner would stop ``trial`` now, judged on this objective."""
        study = trial.study
        return self.prune(study, fresh_trial(trial))

    def prune(self, study: optuna.study.Study, trial: FrozenTrial) -> bool:
        """Asks the wrapped pruner with a single-objective view of ``study`` and ``trial``."""
        index = self._index(study)
        view = _ObjectiveStudy(study, index, self._attr)
        return self._pruner.prune(view, _project(trial, index, self._attr))

    def _index(self, study: optuna.study.Study) -> int:
        n_objectives = len(study.directions)
        if isinstance(self._objective, int):
            if self._objective >= n_objectives:
                raise ValueError(
                    f"objective index {self._objective} is out of range for a study with "
                    f"{n_objectives} objective(s); pass 0 to {n_objectives - 1}"
                )
            return self._objective
        names = study.metric_names
        if names is None or self._objective not in names:
            raise ValueError(
                f"objective {self._objective!r} is not a metric name of study "
                f"{study.study_name!r} (names: {names}); call study.set_metric_names([...]) "
                "before optimizing, or pass the objective's index"
            )
        return names.index(self._objective)


class _ObjectiveStudy(optuna.study.Study):
    """The study as a single-objective one: one direction, curves from user attributes.

    Only public methods are overridden (``directions`` and ``get_trials``, through which
    ``direction`` and ``trials`` read), which is all a pruner uses.
    """

    def __init__(self, study: optuna.study.Study, index: int, attr: str) -> None:
        super().__init__(
            study_name=study.study_name,
            storage=study_storage(study),
            sampler=study.sampler,
            pruner=optuna.pruners.NopPruner(),
        )
        self._view_direction = study.directions[index]
        self._view_index = index
        self._view_attr = attr

    @property
    def directions(self) -> list[optuna.study.StudyDirection]:
        return [self._view_direction]

    def get_trials(
        self,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        trials = super().get_trials(deepcopy=False, states=states)
        return [_project(t, self._view_index, self._view_attr) for t in trials]


def _project(trial: FrozenTrial, index: int, attr: str) -> FrozenTrial:
    """A copy of ``trial`` with one objective's value and curve."""
    curve = _keys.read(trial.user_attrs, attr)
    intermediate = (
        trial.intermediate_values
        if curve is None
        else {int(step): math.nan if v is None else float(v) for step, v in curve.items()}
    )
    values = trial.values
    value = values[index] if values is not None and index < len(values) else None
    if trial.state == TrialState.COMPLETE and value is None:
        value = math.nan  # a completed trial needs a value; NaN counts as no result
    return FrozenTrial(
        number=trial.number,
        state=trial.state,
        value=value,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        params=trial.params,
        distributions=trial.distributions,
        user_attrs=trial.user_attrs,
        system_attrs=trial.system_attrs,
        intermediate_values=intermediate,
        trial_id=trial_id(trial),
    )


__all__ = ["INTERMEDIATE_ATTR_PREFIX", "ObjectivePruner"]
