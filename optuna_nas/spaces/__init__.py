"""Architecture search spaces expressed as conditional Optuna trial parameters.

Each space turns ``trial.suggest_*`` calls into an :class:`Architecture`, which builds a
``torch.nn.Module``. Use :func:`create` to get a space by name, as the CLI does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from optuna_nas.spaces._base import ARCH_ATTR, SPACE_ATTR, Architecture, Chooser, SearchSpace
from optuna_nas.spaces._cell import CellSpace, DARTSGenotype, DARTSSpace, NB201Space
from optuna_nas.spaces._chain import ChainSpace
from optuna_nas.spaces._draw import draw_architecture
from optuna_nas.spaces._hierarchical import HierarchicalSpace
from optuna_nas.spaces._layers import LayerSpec
from optuna_nas.spaces._multibranch import MultiBranchSpace

_REGISTRY: dict[str, type[SearchSpace]] = {}


def register(cls: type[SearchSpace]) -> type[SearchSpace]:
    """Adds a space class to the registry under ``cls.name`` (usable as a decorator)."""
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """The names :func:`create` accepts, sorted."""
    return sorted(_REGISTRY)


def parse_space_args(items: Iterable[str]) -> dict[str, Any]:
    """Turns ``KEY=VALUE`` strings (as given to ``--space-arg``) into keyword arguments.

    Each VALUE is read as JSON (``4``, ``[16, 32]``, ``true``) and kept as a string when it
    is not JSON (``ops=conv``).

    Raises:
        ValueError: For an item without ``=`` or without a key.
    """
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--space-arg {item!r} must look like KEY=VALUE, e.g. max_layers=4")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


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
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ValueError(f"invalid argument for space {name!r}: {err}") from None


register(ChainSpace)
register(DARTSSpace)
register(NB201Space)
register(HierarchicalSpace)
register(MultiBranchSpace)

__all__ = [
    "ARCH_ATTR",
    "SPACE_ATTR",
    "Architecture",
    "CellSpace",
    "ChainSpace",
    "Chooser",
    "DARTSGenotype",
    "DARTSSpace",
    "HierarchicalSpace",
    "LayerSpec",
    "MultiBranchSpace",
    "NB201Space",
    "SearchSpace",
    "available",
    "create",
    "draw_architecture",
    "parse_space_args",
    "register",
]
