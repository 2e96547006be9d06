"""Supernets: one network that holds every architecture of a space as a subnetwork.

A supernet is built from the same :class:`~optuna_nas.spaces.SearchSpace` as the trials:
its skeleton is the space's own network, and each searched edge is a :class:`MixedOp`
holding every candidate operation. Choosing one operation per edge (a *path*) gives a
subnetwork whose modules and parameter names are those of the stand-alone network of that
architecture, so :meth:`Supernet.subnet` can take it out with its inherited weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from optuna_nas.spaces import Architecture, SearchSpace


class MixedOp(nn.Module):
    """One searched edge: every candidate operation, of which the active one runs.

    With :attr:`weights` set (one weight per candidate, in order), the edge computes the
    weighted sum of all candidates instead, as DARTS does. With :attr:`hard` set too, the
    weights are one-hot in value (GDAS's straight-through Gumbel sample): only the chosen
    candidate runs, and the others add their zero weights, which carry the gradient.

    Args:
        candidates: The operations by name, each mapping the edge's input to its output.
    """

    def __init__(self, candidates: dict[str, nn.Module]) -> None:
        super().__init__()
        self.candidates = nn.ModuleDict(candidates)
        self.active: str | None = None
        self.weights: torch.Tensor | None = None
        self.hard = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weights is not None:
            ops = list(self.candidates.values())
            if self.hard:
                chosen = int(self.weights.argmax())
                out = ops[chosen](x) * self.weights[chosen]
                return out + (self.weights.sum() - self.weights[chosen])
            return sum(w * op(x) for w, op in zip(self.weights, ops, strict=True))
        if self.active is None:
            raise RuntimeError("the supernet has no path; call set_path(...) or sample_path(...)")
        return self.candidates[self.active](x)


class Supernet(nn.Module):
    """A space's network with a :class:`MixedOp` on every searched edge.

    Use :func:`build_supernet` to make one. Call :meth:`set_path` with an architecture (or
    :meth:`sample_path`) before each forward pass: the network then computes exactly what
    that architecture's stand-alone network computes with the same weights.

    Attributes:
        space: The search space.
        input_shape: Shape of one input.
        num_classes: Number of logits.
        network: The skeleton, with mixed edges.
    """

    def __init__(
        self,
        space: SearchSpace,
        network: nn.Module,
        edges: list[tuple[str, MixedOp]],
        input_shape: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.space = space
        self.network = network
        self.input_shape = input_shape
        self.num_classes = num_classes
        self._edges = edges  # (the name of the edge's decision, its mixed op)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    @property
    def decisions(self) -> dict[str, tuple[str, ...]]:
        """Each searched decision and its candidate operations."""
        return {name: tuple(op.candidates) for name, op in self._edges}

    def set_path(self, arch: Architecture | dict[str, Any]) -> None:
        """Makes the subnetwork of ``arch`` (or of its parameters) the active one.

        Raises:
            ValueError: For an architecture of another space, or a parameter the supernet
                has no candidate for.
        """
        params = arch if isinstance(arch, dict) else self._params_of(arch)
        for name, op in self._edges:
            choice = params.get(name)
            if not isinstance(choice, str) or choice not in op.candidates:
                raise ValueError(
                    f"the supernet has no candidate {choice!r} for {name!r}; choose one of "
                    f"{', '.join(op.candidates)}"
                )
            op.active = str(choice)
            op.weights = None

    def set_mixture(self, weights: dict[str, torch.Tensor], *, hard: bool = False) -> None:
        """Makes every edge compute the mixture of its candidates with ``weights``.

        Args:
            weights: Per decision, one weight per candidate (in :attr:`decisions` order).
                Edges of the same decision in different cells share them.
            hard: The weights are one-hot in value (a straight-through sample), so each
                edge runs only its chosen candidate.

        Raises:
            ValueError: For a missing decision or a wrong number of weights.
        """
        for name, op in self._edges:
            w = weights.get(name)
            if w is None or w.shape != (len(op.candidates),):
                raise ValueError(
                    f"{name!r} needs {len(op.candidates)} weights, one per candidate, got "
                    f"{None if w is None else tuple(w.shape)}"
                )
            op.weights, op.hard, op.active = w, hard, None

    def sample_path(self, rng: np.random.Generator) -> dict[str, str]:
        """Activates a path drawn uniformly, one operation per decision, and returns it."""
        params = {name: str(rng.choice(list(op.candidates))) for name, op in self._edges}
        self.set_path(params)
        return params

    def path(self) -> dict[str, str | None]:
        """The active operation of each decision."""
        return {name: op.active for name, op in self._edges}

    def subnet(self, arch: Architecture) -> nn.Module:
        """The stand-alone network of ``arch`` with the weights it has in the supernet.

        Returns:
            ``arch.build(...)`` with its state loaded from the supernet: every tensor of
            the subnetwork is inherited, none is fresh.
        """
        self.set_path(arch)
        model = arch.build(self.input_shape, self.num_classes)
        state = self.network.state_dict()
        mixed = {name: op.active for name, op in self._named_mixed()}
        inherited = {}
        for key in model.state_dict():
            inherited[key] = state[_supernet_key(key, mixed)].clone()
        model.load_state_dict(inherited)
        return model

    def _named_mixed(self) -> list[tuple[str, MixedOp]]:
        return [(n, m) for n, m in self.network.named_modules() if isinstance(m, MixedOp)]

    def _params_of(self, arch: Architecture) -> dict[str, Any]:
        if arch.space != self.space.name or arch.space_config != self.space.config:
            raise ValueError(
                f"architecture of space {arch.space!r} {arch.space_config} does not belong to "
                f"this supernet's space {self.space.name!r} {self.space.config}"
            )
        return arch.param_dict


def _supernet_key(key: str, mixed: dict[str, str | None]) -> str:
    """The supernet's name of a stand-alone network's tensor: a tensor under a mixed edge
    lives under the edge's active candidate."""
    for prefix, active in mixed.items():
        if key.startswith(prefix + "."):
            return f"{prefix}.candidates.{active}.{key[len(prefix) + 1 :]}"
    return key


_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

SUPERNET_SPACES = ("nb201",)
"""The spaces :func:`build_supernet` makes supernets of."""


def build_supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> Supernet:
    """The supernet of a cell space: its network with every searched edge mixed.

    Args:
        space: A space of :data:`SUPERNET_SPACES`, with the size arguments the subnetworks
            should have.
        input_shape: Shape of one input.
        num_classes: Number of logits.

    Raises:
        ValueError: For a space without a supernet.

    Example:
        .. code-block:: python

            import numpy as np
            from optuna_nas import oneshot, spaces

            space = spaces.create("nb201", channels=8, cells_per_stage=1)
            supernet = oneshot.build_supernet(space, (1, 40), 10)
            supernet.sample_path(np.random.default_rng(0))
            arch = space.from_params(supernet.path())
            standalone = supernet.subnet(arch)  # the same function, as an ordinary module

    References:
        G. Bender, P.-J. Kindermans, B. Zoph, V. Vasudevan and Q. Le. Understanding and
        Simplifying One-Shot Architecture Search. ICML 2018.
    """
    from optuna_nas.nn._cells import NB201_EDGES, NB201Cell, ResidualReduction, nb201_op
    from optuna_nas.nn._ops import spatial_dim

    if space.name not in SUPERNET_SPACES:
        raise ValueError(
            f"space {space.name!r} has no supernet; one-shot search supports "
            f"{', '.join(SUPERNET_SPACES)}"
        )
    shape = tuple(int(s) for s in input_shape)
    # The skeleton is the space's own network; its edges are then replaced by mixed ones.
    placeholder = space.from_params({f"node{i}/in{j}": "none" for i, j in NB201_EDGES})
    network = placeholder.build(shape, num_classes)
    dim, _ = spatial_dim(shape)
    names = [f"node{i}/in{j}" for i, j in NB201_EDGES]
    edges: list[tuple[str, MixedOp]] = []
    channels = int(space.config["channels"])
    for module in network.features:  # type: ignore[union-attr]
        if isinstance(module, ResidualReduction):
            channels *= 2
        if isinstance(module, NB201Cell):
            mixed = [MixedOp({op: nb201_op(op, dim, channels) for op in _OPS}) for _ in names]
            module.edges = nn.ModuleList(mixed)
            edges += list(zip(names, mixed, strict=True))
    return Supernet(space, network, edges, shape, num_classes)
