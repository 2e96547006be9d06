"""Small helpers the pruners share."""

from __future__ import annotations

import logging
import math
import numbers

import optuna

from optuna_nas import _keys
from optuna_nas._compat import study_storage, trial_id


def is_int(value: object) -> bool:
    """Whether ``value`` is an integer and not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def rank_key(value: float, maximize: bool) -> float:
    """``value`` turned so that larger is better; values that are not finite rank last."""
    if not math.isfinite(value):
        return -math.inf
    return value if maximize else -value


def say_not_decided(
    study: optuna.study.Study,
    trial: optuna.trial.FrozenTrial,
    why: str,
    said: set[str],
    logger: logging.Logger,
    who: str,
) -> None:
    """Records on ``trial`` (user attribute ``optuna_nas:pruner_not_decided``) why its pruner
    could not decide, and logs it the first time the pruner meets the reason (``said``
    holds the reasons already logged); ``who`` names the pruner in the log."""
    study_storage(study).set_trial_user_attr(trial_id(trial), _keys.PRUNER_NOT_DECIDED, why)
    if why not in said:
        said.add(why)
        logger.warning("%s cannot decide for trial %d: %s", who, trial.number, why)
