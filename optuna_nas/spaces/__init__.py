"""Architecture search spaces expressed as conditional Optuna trial parameters.

Each space turns ``trial.suggest_*`` calls into an :class:`Architecture`, which builds a
``torch.nn.Module``. Use :func:`create` to get a space by name, as the CLI does.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from optuna_nas.spaces._base import (
    ARCH_ATTR,
    SPACE_ATTR,
    Architecture,
    Chooser,
    SearchSpace,
)
from optuna_nas.spaces._cell import CellSpace, DARTSGenotype, DARTSSpace, NB201Space
from optuna_nas.spaces._chain import ChainSpace
from optuna_nas.spaces._hierarchical import HierarchicalSpace
from optuna_nas.spaces._layers import LayerSpec
from optuna_nas.spaces._multibranch import MultiBranchSpace
from optuna_nas.spaces._registry import available, create, register
from optuna_nas.spaces._svg import Drawing, draw_architecture


def parse_space_args(items: Iterable[str], option: str = "--space-arg") -> dict[str, Any]:
    """Turns ``KEY=VALUE`` strings (as given to ``--space-arg``) into keyword arguments.

    ``option`` names the command-line option in the error (``--sampler-arg``, ...).

    Each VALUE is read as JSON (``4``, ``[16, 32]``, ``true``) and kept as a string when it
    is not JSON (``ops=conv``).

    Raises:
        ValueError: For an item without ``=`` or without a key.
    """
    kwargs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} {item!r} must look like KEY=VALUE, e.g. max_layers=4")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


register(ChainSpace)
register(DARTSSpace)
register(NB201Space)
register(HierarchicalSpace)
register(MultiBranchSpace)

__all__ = [
    "Drawing",
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
