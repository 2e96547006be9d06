"""The building blocks of supernets: the mixed edge, and how a space maps onto edges."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch
from torch import nn


class MixedOp(nn.Module):
    """One searched edge: every candidate operation, of which the active one runs.

    With :attr:`weights` set (one weight per candidate, in order), the edge computes the
    weighted sum of all candidates instead, as DARTS does. With :attr:`hard` set too, the
    weights are one-hot in value (GDAS's straight-through Gumbel sample): only the
    candidate at index :attr:`chosen` runs, and the others add their zero weights, which
    carry the gradient. :meth:`optuna_nas.oneshot.Supernet.set_mixture` sets all three.

    Args:
        candidates: The operations by name, each mapping the edge's input to its output.
    """

    def __init__(self, candidates: dict[str, nn.Module]) -> None:
        super().__init__()
        self.candidates = nn.ModuleDict(candidates)
        self.active: str | None = None
        self.weights: torch.Tensor | None = None
        self.hard = False
        self.chosen = 0  # with hard weights: the index of the one-hot entry

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is not None:
            ops = list(self.candidates.values())
            if self.hard:
                chosen = self.chosen
                out = ops[chosen](x) * self.weights[chosen]
                return out + (self.weights.sum() - self.weights[chosen])
            return sum(w * op(x) for w, op in zip(self.weights, ops, strict=True))
        if self.active is None:
            raise RuntimeError("the supernet has no path; call set_path(...) or sample_path(...)")
        return self.candidates[self.active](x)


class EdgeLayout(Protocol):
    """How a space's decisions map onto a supernet's mixed edges (one class per space)."""

    edges: list[tuple[str, MixedOp]]

    def resolve(self, params: dict[str, Any]) -> dict[str, str | None]:
        """The active candidate of each edge name (``None``: the path leaves it out)."""
        ...

    def standalone_edges(self, params: dict[str, Any]) -> dict[str, str]:
        """Module name of each searched edge in the stand-alone network, to the module
        name of the supernet edge it inherits from."""
        ...

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        """An architecture's parameters drawn uniformly (SPOS)."""
        ...

    def fair(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Paths that together use every candidate of every decision once (FairNAS)."""
        ...

    def derive(self, probabilities: dict[str, dict[str, float]]) -> dict[str, Any]:
        """The architecture a gradient search's edge distributions derive."""
        ...
