"""How :func:`optuna_nas.training.fit` reports a learning curve to its trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import optuna


@runtime_checkable
class CurveReporter(Protocol):
    """A pruner that keeps one objective's curve itself, for multi-objective studies.

    Optuna refuses ``trial.report`` when a study has several objectives. A pruner with
    these two methods (:class:`optuna_nas.pruners.ObjectivePruner`) takes the report
    instead; training knows only this protocol, not the pruner.
    """

    def report(self, trial: optuna.trial.Trial, value: float, step: int) -> None: ...

    def should_prune(self, trial: optuna.trial.Trial) -> bool: ...


def report_and_check(trial: optuna.trial.BaseTrial, value: float, step: int) -> bool:
    """Reports ``value`` at ``step`` and says whether the study's pruner stops ``trial``.

    A single-objective study gets ``trial.report`` and ``trial.should_prune``. A
    multi-objective study reports through its pruner when that is a
    :class:`CurveReporter`, and otherwise is not reported to, since Optuna cannot.
    """
    import optuna

    study = getattr(trial, "study", None)
    if study is None or len(study.directions) == 1:
        trial.report(value, step)
        return trial.should_prune()
    pruner = study.pruner
    if not isinstance(pruner, CurveReporter) or not isinstance(trial, optuna.trial.Trial):
        return False
    pruner.report(trial, value, step)
    return pruner.should_prune(trial)
