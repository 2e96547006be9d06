"""Samplers for architecture search, created by name.

:func:`create` serves the CLI's ``--sampler`` flag and user code alike.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas.samplers._evolution import RegularizedEvolutionSampler
from optuna_nas.samplers._gp import ConditionalGPSampler
from optuna_nas.samplers._random import DeduplicatingRandomSampler, nb201_canonical
from optuna_nas.samplers._reinforce import REINFORCESampler
from optuna_nas.spaces._registry import check_arguments

if TYPE_CHECKING:
    from optuna_nas.spaces import SearchSpace

_FACTORIES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {}


def register(name: str, factory: Callable[..., optuna.samplers.BaseSampler]) -> None:
    """Makes ``factory`` (a sampler class, or a function returning a sampler) creatable as
    ``create(name, seed=..., **kwargs)``. It must take ``seed``; it receives ``space``
    when its signature names it."""
    _FACTORIES[name] = factory


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_FACTORIES)


def create(
    name: str,
    seed: int | None = None,
    *,
    space: SearchSpace | None = None,
    **kwargs: Any,
) -> optuna.samplers.BaseSampler:
    """Creates a sampler by name.

    Args:
        name: Ours: ``evolution`` (:class:`RegularizedEvolutionSampler`), ``gp``
            (:class:`ConditionalGPSampler`), ``random``
            (:class:`DeduplicatingRandomSampler`) and ``reinforce``
            (:class:`REINFORCESampler`). Optuna's, at their defaults, for comparison:
            ``tpe`` (:class:`~optuna.samplers.TPESampler`), ``optuna-random``
            (:class:`~optuna.samplers.RandomSampler`), ``optuna-gp``
            (:class:`~optuna.samplers.GPSampler`) and ``optuna-cmaes``
            (:class:`~optuna.samplers.CmaEsSampler`, numeric parameters only).
        seed: Seed of the sampler's random generator; the same seed gives the same sequence.
        space: The search space the objective uses. Samplers that can use it receive it:
            ``gp`` and ``random`` draw fresh architectures from it, and all four of ours
            use it to tell repeats by their active parameters (and for ``canonicalize``);
            Optuna's ignore it.
        **kwargs: Passed to the sampler's constructor.

    Raises:
        ValueError: For an unknown name, or arguments the sampler does not take (the
            message lists the ones it does).

    Example:
        .. code-block:: python

            from optuna_nas import samplers, spaces

            sampler = samplers.create("evolution", seed=0, space=spaces.create("nb201"))
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of: {', '.join(available())}"
        ) from None
    if space is not None and "space" in inspect.signature(factory).parameters:
        kwargs["space"] = space
    check_arguments(factory, {"seed": seed, **kwargs}, f"sampler {name!r}")
    with warnings.catch_warnings():
        # Optuna's GPSampler is experimental; asking for it by name is the choice.
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return factory(seed=seed, **kwargs)


register("evolution", RegularizedEvolutionSampler)
register("gp", ConditionalGPSampler)
register("random", DeduplicatingRandomSampler)
register("reinforce", REINFORCESampler)
register("tpe", optuna.samplers.TPESampler)
register("optuna-random", optuna.samplers.RandomSampler)
register("optuna-gp", optuna.samplers.GPSampler)
register("optuna-cmaes", optuna.samplers.CmaEsSampler)

__all__ = [
    "register",
    "ConditionalGPSampler",
    "DeduplicatingRandomSampler",
    "REINFORCESampler",
    "RegularizedEvolutionSampler",
    "available",
    "create",
    "nb201_canonical",
]
