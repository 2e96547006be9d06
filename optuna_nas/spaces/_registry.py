"""The registry of search spaces, and the argument check every ``create`` shares."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna_nas.spaces._base import SearchSpace


_REGISTRY: dict[str, type[SearchSpace]] = {}


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Adds a space class to the registry under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_REGISTRY)


def create(name: str, **kwargs: Any) -> SearchSpace:
    """Creates a search space by registry name.

    Args:
        name: One of ``chain``, ``darts``, ``hierarchical``, ``multibranch`` and ``nb201``.
        **kwargs: The space's own arguments (see each class).

    Raises:
        ValueError: For an unknown name or invalid arguments; the message says what to fix.

    Example:
        .. code-block:: python

            from optuna_nas import spaces

            space = spaces.create("nb201", channels=8, cells_per_stage=1)
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown space {name!r}; choose one of: {', '.join(available())}"
        ) from None
    check_arguments(cls, kwargs, f"space {name!r}")
    return cls(**kwargs)


def check_arguments(
    factory: Any, kwargs: Mapping[str, Any], what: str, *, partial: bool = False
) -> None:
    """Checks that ``factory`` accepts ``kwargs`` by its signature, before calling it.

    Binding the signature, rather than catching ``TypeError`` from the call, keeps a
    ``TypeError`` raised inside a constructor from being reported as a bad argument.

    Args:
        factory: A class or function.
        kwargs: The keyword arguments it is to be called with.
        what: How the error names it, e.g. ``"sampler 'gp'"``.
        partial: Check only that every argument is known; the caller adds the rest.

    Raises:
        ValueError: Naming the argument that is unknown or missing, and the ones that exist.
    """
    signature = inspect.signature(factory)
    try:
        if partial:
            signature.bind_partial(**kwargs)
        else:
            signature.bind(**kwargs)
    except TypeError as err:
        names = [
            p.name
            for p in signature.parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        ]
        raise ValueError(
            f"invalid argument for {what}: {err}; its arguments are: {', '.join(names) or 'none'}"
        ) from None
