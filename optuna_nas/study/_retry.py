"""Retrying failed trials once: after running out of GPU memory, or after an interruption."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import _keys
from optuna_nas._compat import retried_trial_number, retry_history

_logger = logging.getLogger(__name__)


class OOMRetryCallback:
    """Re-queues a trial that ran out of GPU memory, once, with a smaller batch size.

    :func:`optuna_nas.training.fit` fails such a trial with the user attribute
    ``fail_reason="oom"``. This study callback then enqueues the same parameters with the
    batch size scaled by ``factor`` in the ``batch_size`` user attribute, which
    :class:`optuna_nas.ArchitectureObjective` honours. The retry carries ``retry_of`` (the
    failed trial's number) and ``retry_reason="oom"``; a retry is never retried again.

    Args:
        factor: Batch-size multiplier for the retry, in ``(0, 1)``.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import ArchitectureObjective, OOMRetryCallback, data, spaces

            space = spaces.create("chain", max_layers=2)
            objective = ArchitectureObjective(space, data.load("digits"))
            study = optuna.create_study(direction="maximize")
            study.optimize(objective, n_trials=2, callbacks=[OOMRetryCallback()])
    """

    def __init__(self, factor: float = 0.5) -> None:
        if not 0 < factor < 1:
            raise ValueError(f"factor must be in (0, 1), got {factor}")
        self.factor = factor

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if (
            trial.state != TrialState.FAIL
            or _keys.read(trial.user_attrs, _keys.FAIL_REASON) != "oom"
        ):
            return
        batch_size = _keys.read(trial.user_attrs, _keys.BATCH_SIZE)
        if not isinstance(batch_size, int) or batch_size <= 1 or is_retry(trial):
            return
        smaller = max(1, int(batch_size * self.factor))
        enqueue_retry(study, trial, "oom", batch_size=smaller)
        _logger.warning(
            "trial %d ran out of GPU memory at batch size %d; queued once more at %d",
            trial.number,
            batch_size,
            smaller,
        )


def enqueue_retry(
    study: optuna.Study, trial: FrozenTrial, reason: str, *, batch_size: int | None = None
) -> bool:
    """Enqueues one retry of a failed trial with the same parameters.

    Args:
        study: The trial's study.
        trial: The failed trial.
        reason: Stored in the retry's ``retry_reason`` user attribute.
        batch_size: Batch size for the retry; default: the trial's own.

    Returns:
        ``False`` without enqueuing when ``trial`` is itself a retry.
    """
    if is_retry(trial):
        return False
    attrs: dict[str, Any] = {_keys.RETRY_OF: trial.number, _keys.RETRY_REASON: reason}
    size = batch_size if batch_size is not None else _keys.read(trial.user_attrs, _keys.BATCH_SIZE)
    if size is not None:
        attrs[_keys.BATCH_SIZE] = size
    study.enqueue_trial(trial.params, user_attrs=attrs)
    return True


def is_retry(trial: FrozenTrial) -> bool:
    """Whether ``trial`` retries a failed one: queued here, or by the stale-trial rule."""
    if _keys.has(trial.user_attrs, _keys.RETRY_OF):
        return True
    return retried_trial_number(trial) is not None


def trials_counted(trials: Sequence[FrozenTrial]) -> int:
    """Trials that count against a study-wide ``n_trials``.

    Every trial counts, whatever its state, except a failed trial that has a retry: the
    retry counts in its place.
    """
    replaced: set[int] = set()
    for t in trials:
        replaced.update(retry_history(t))
        origin = _keys.read(t.user_attrs, _keys.RETRY_OF)
        if isinstance(origin, int):
            replaced.add(origin)
    return sum(1 for t in trials if t.number not in replaced)
