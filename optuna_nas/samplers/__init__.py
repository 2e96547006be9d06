"""Samplers for architecture search, created by name.

:func:`create` serves the CLI's ``--sampler`` flag and user code alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

_FACTORIES: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "random": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler,
}


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_FACTORIES)


def create(name: str, seed: int | None = None, **kwargs: Any) -> optuna.samplers.BaseSampler:
    """Creates a sampler by name.

    Args:
        name: ``random`` (Optuna's :class:`~optuna.samplers.RandomSampler`) or ``tpe``
            (Optuna's :class:`~optuna.samplers.TPESampler`, for comparison).
        seed: Seed of the sampler's random generator; the same seed gives the same sequence.
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
    try:
        return factory(seed=seed, **kwargs)
    except TypeError as err:
        raise ValueError(f"invalid argument for sampler {name!r}: {err}") from None


__all__ = ["available", "create"]
