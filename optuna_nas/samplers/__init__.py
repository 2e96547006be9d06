"""Samplers for architecture search, created by name.

:func:`create` serves the CLI's ``--sampler`` flag and user code alike.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas.samplers._evolution import RegularizedEvolutionSampler
from optuna_nas.samplers._gp import ConditionalGPSampler
from optuna_nas.samplers._random import DeduplicatingRandomSampler, nb201_canonical
from optuna_nas.samplers._reinforce import REINFORCESampler

if TYPE_CHECKING:
    from optuna_nas.spaces import SearchSpace

_FACTORIES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "evolution": RegularizedEvolutionSampler,
    "gp": ConditionalGPSampler,
    "random": DeduplicatingRandomSampler,
    "reinforce": REINFORCESampler,
    "tpe": optuna.samplers.TPESampler,
}


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
        name: ``evolution`` (:class:`RegularizedEvolutionSampler`), ``gp``
            (:class:`ConditionalGPSampler`), ``random``
            (:class:`DeduplicatingRandomSampler`), ``reinforce``
            (:class:`REINFORCESampler`) or ``tpe`` (Optuna's
            :class:`~optuna.samplers.TPESampler`, for comparison).
        seed: Seed of the sampler's random generator; the same seed gives the same sequence.
        space: The search space the objective uses. Samplers that can use it receive it:
            ``gp`` and ``random`` draw fresh architectures from it, and all four of ours
            use it to tell repeats by their active parameters (and for ``canonicalize``);
            ``tpe`` ignores it.
        **kwargs: Passed to the sampler's constructor.

    Raises:
        ValueError: For an unknown name or invalid arguments.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(
            f"unknown sampler {name!r}; choose one of: {', '.join(available())}"
        ) from None
    if space is not None and "space" in inspect.signature(factory).parameters:
        kwargs["space"] = space
    try:
        return factory(seed=seed, **kwargs)
    except TypeError as err:
        raise ValueError(f"invalid argument for sampler {name!r}: {err}") from None


__all__ = [
    "ConditionalGPSampler",
    "DeduplicatingRandomSampler",
    "REINFORCESampler",
    "RegularizedEvolutionSampler",
    "available",
    "create",
    "nb201_canonical",
]
