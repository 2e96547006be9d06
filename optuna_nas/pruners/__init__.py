"""Pruners for architecture search, created by name.

:func:`create` serves the CLI's ``--pruner`` flag and user code alike. ``max_step`` is the
last step a trial reports; steps count from 0, so for :func:`optuna_nas.training.fit` it is
``epochs - 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from optuna_nas.pruners._fidelity import RANK_CORRELATION_ATTR, LowFidelityPruner, RungCorrelation
from optuna_nas.pruners._lce import LearningCurvePruner
from optuna_nas.pruners._objective import ObjectivePruner
from optuna_nas.pruners._pfn import CurvePFN
from optuna_nas.pruners._rank import RankPruner
from optuna_nas.spaces._registry import check_arguments


def _median(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(**kwargs)


def _sha(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.SuccessiveHalvingPruner(**kwargs)


def _hyperband(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    if max_step is not None:
        kwargs.setdefault("max_resource", max_step)
    return optuna.pruners.HyperbandPruner(**kwargs)


def _lce(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    if max_step is None:
        raise ValueError(
            "pruner 'lce' needs max_step, the last step trials report "
            "(epochs - 1 for optuna_nas.training.fit)"
        )
    return LearningCurvePruner(max_step=max_step, **kwargs)


def _fidelity(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    return LowFidelityPruner(max_step=max_step, **kwargs)


def _rank(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    return RankPruner(max_step=max_step, **kwargs)


def _none(max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner(**kwargs)


_TARGETS: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "fidelity": LowFidelityPruner,
    "hyperband": optuna.pruners.HyperbandPruner,
    "lce": LearningCurvePruner,
    "median": optuna.pruners.MedianPruner,
    "none": optuna.pruners.NopPruner,
    "rank": RankPruner,
    "sha": optuna.pruners.SuccessiveHalvingPruner,
}
"""The class behind each built-in name, whose signature the keyword arguments must fit
(``max_step`` aside, which each name passes on in its own way)."""

_FACTORIES: dict[str, Callable[..., optuna.pruners.BasePruner]] = {
    "fidelity": _fidelity,
    "hyperband": _hyperband,
    "lce": _lce,
    "median": _median,
    "none": _none,
    "rank": _rank,
    "sha": _sha,
}


def register(name: str, factory: Callable[..., optuna.pruners.BasePruner]) -> None:
    """Makes ``factory`` creatable as ``create(name, max_step=..., **kwargs)``; it must take
    ``max_step`` (the last step trials report, or ``None``)."""
    _FACTORIES[name] = factory


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_FACTORIES)


def create(name: str, max_step: int | None = None, **kwargs: Any) -> optuna.pruners.BasePruner:
    """Creates a pruner by name.

    Args:
        name: ``rank`` (:class:`RankPruner`, the rank among every trial at the same step
            and the median of the completed ones), ``median`` (Optuna's MedianPruner at
            Optuna's defaults; the CLI's default), ``sha``
            (SuccessiveHalvingPruner), ``hyperband`` (HyperbandPruner with
            ``max_resource=max_step``), ``lce`` (:class:`LearningCurvePruner`, which
            extrapolates each learning curve to ``max_step``; ``max_step`` is required),
            ``fidelity`` (:class:`LowFidelityPruner`, asynchronous successive halving
            after ``1, eta, eta**2, ...`` epochs, pruning only at rungs whose rank
            correlation with ``max_step`` is established; ``max_step`` or ``rung_steps`` is
            required) or ``none``.
        max_step: The last step trials report. Steps count from 0, so for
            :func:`optuna_nas.training.fit` it is ``epochs - 1`` (what the CLI passes).
        **kwargs: Passed to the pruner's constructor.

    Raises:
        ValueError: For an unknown name or invalid arguments.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown pruner {name!r}; choose one of: {', '.join(available())}"
        ) from None
    check_arguments(_TARGETS.get(name, factory), kwargs, f"pruner {name!r}", partial=True)
    return factory(max_step=max_step, **kwargs)


__all__ = [
    "register",
    "RANK_CORRELATION_ATTR",
    "CurvePFN",
    "LearningCurvePruner",
    "LowFidelityPruner",
    "ObjectivePruner",
    "RankPruner",
    "RungCorrelation",
    "available",
    "create",
]
