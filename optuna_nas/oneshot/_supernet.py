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

from optuna_nas.oneshot._darts import build_darts_supernet
from optuna_nas.oneshot._mixed import EdgeLayout, MixedOp

if TYPE_CHECKING:
    from optuna_nas.spaces import Architecture, SearchSpace


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
        layout: EdgeLayout,
        input_shape: tuple[int, ...],
        num_classes: int,
    ) -> None:
        super().__init__()
        self.space = space
        self.network = network
        self.input_shape = input_shape
        self.num_classes = num_classes
        self._layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    @property
    def decisions(self) -> dict[str, tuple[str, ...]]:
        """Each mixed edge's name and its candidate operations.

        Edges of the same name in different cells share their choice (and, in a gradient
        search, their architecture weights). In ``nb201`` an edge is a decision of the
        space; in ``darts`` it is ``{cell}/node{k}/in{i}``, the edge from state ``i`` to
        intermediate node ``k``, of which an architecture uses two per node.
        """
        return {name: tuple(op.candidates) for name, op in self._layout.edges}

    def set_path(self, arch: Architecture | dict[str, Any]) -> None:
        """Makes the subnetwork of ``arch`` (or of its parameters) the active one.

        Raises:
            ValueError: For an architecture of another space, or a parameter the supernet
                has no candidate for.
        """
        params = arch if isinstance(arch, dict) else self._params_of(arch)
        active = self._layout.resolve(params)
        for name, op in self._layout.edges:
            choice = active[name]
            if choice is not None and choice not in op.candidates:
                raise ValueError(
                    f"the supernet has no candidate {choice!r} for {name!r}; choose one of "
                    f"{', '.join(op.candidates)}"
                )
            op.active, op.weights = choice, None

    def set_mixture(self, weights: dict[str, torch.Tensor], *, hard: bool = False) -> None:
        """Makes every edge compute the mixture of its candidates with ``weights``.

        Args:
            weights: Per edge name of :attr:`decisions`, one weight per candidate (in
                order). Edges of the same name in different cells share them.
            hard: The weights are one-hot in value (a straight-through sample), so each
                edge runs only its chosen candidate.

        Raises:
            ValueError: For a missing edge or a wrong number of weights.
        """
        # One host synchronisation per decision, not one per edge and forward pass.
        chosen = {name: int(w.argmax()) for name, w in weights.items()} if hard else {}
        for name, op in self._layout.edges:
            w = weights.get(name)
            if w is None or w.shape != (len(op.candidates),):
                raise ValueError(
                    f"{name!r} needs {len(op.candidates)} weights, one per candidate, got "
                    f"{None if w is None else tuple(w.shape)}"
                )
            op.weights, op.hard, op.active = w, hard, None
            op.chosen = chosen.get(name, 0)

    def sample_path(self, rng: np.random.Generator) -> dict[str, Any]:
        """Activates an architecture drawn uniformly (SPOS's sampling) and returns its
        parameters."""
        params = self._layout.sample(rng)
        self.set_path(params)
        return params

    def fair_paths(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        """Architectures that, together, use every candidate operation of every decision
        once (FairNAS's strict fairness): one permutation of the candidates per decision,
        and path ``k`` takes each permutation's ``k``-th candidate."""
        return self._layout.fair(rng)

    def derive(self, probabilities: dict[str, dict[str, float]]) -> dict[str, Any]:
        """The architecture a gradient search derives from its edge distributions.

        ``nb201`` takes each edge's most probable operation. ``darts`` keeps, for each
        node, the two incoming edges whose strongest operation other than ``none`` is
        strongest, each with that operation (the DARTS paper's rule).

        Args:
            probabilities: Per edge name of :attr:`decisions`, each candidate's probability.

        Returns:
            The derived architecture's parameters.
        """
        return self._layout.derive(probabilities)

    def path(self) -> dict[str, str | None]:
        """The active operation of each edge (``None`` for an edge the path leaves out)."""
        return {name: op.active for name, op in self._layout.edges}

    def subnet(self, arch: Architecture) -> nn.Module:
        """The stand-alone network of ``arch`` with the weights it has in the supernet.

        Returns:
            ``arch.build(...)`` with its state loaded from the supernet: every tensor of
            the subnetwork is inherited, none is fresh.
        """
        self.set_path(arch)
        model = arch.build(self.input_shape, self.num_classes)
        state = self.network.state_dict()
        modules = dict(self.network.named_modules())
        mixed = self._layout.standalone_edges(arch.param_dict)
        inherited = {}
        for key in model.state_dict():
            inherited[key] = state[_supernet_key(key, mixed, modules)].clone()
        model.load_state_dict(inherited)
        return model

    def _params_of(self, arch: Architecture) -> dict[str, Any]:
        if arch.space != self.space.name or arch.space_config != self.space.config:
            raise ValueError(
                f"architecture of space {arch.space!r} {arch.space_config} does not belong to "
                f"this supernet's space {self.space.name!r} {self.space.config}"
            )
        return arch.param_dict


def _supernet_key(key: str, mixed: dict[str, str], modules: dict[str, nn.Module]) -> str:
    """The supernet's name of a stand-alone network's tensor: a tensor under a searched
    edge lives under the supernet edge's active candidate."""
    for prefix, edge in mixed.items():
        if key.startswith(prefix + "."):
            op = modules[edge]
            assert isinstance(op, MixedOp)
            return f"{edge}.candidates.{op.active}.{key[len(prefix) + 1 :]}"
    return key


class _NB201Layout:
    """NAS-Bench-201: each of the six decisions is one mixed edge in every cell."""

    def __init__(self, network: nn.Module, edges: list[tuple[str, MixedOp]]) -> None:
        self.edges = edges
        self._names = {id(op): n for n, op in network.named_modules() if isinstance(op, MixedOp)}

    def resolve(self, params: dict[str, Any]) -> dict[str, str | None]:
        active: dict[str, str | None] = {}
        for name, op in self.edges:
            choice = params.get(name)
            if not isinstance(choice, str):
                raise ValueError(
                    f"the supernet has no candidate {choice!r} for {name!r}; choose one of "
                    f"{', '.join(op.candidates)}"
                )
            active[name] = choice
        return active

    def standalone_edges(self, params: dict[str, Any]) -> dict[str, str]:
        # The stand-alone cell keeps the supernet's module names: edges.0 to edges.5.
        return {self._names[id(op)]: self._names[id(op)] for _, op in self.edges}

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        decisions = {name: tuple(op.candidates) for name, op in self.edges}
        return {name: str(rng.choice(ops)) for name, ops in decisions.items()}

    def fair(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        decisions = {name: tuple(op.candidates) for name, op in self.edges}
        width = max(len(ops) for ops in decisions.values())
        orders = {name: rng.permutation(len(ops)) for name, ops in decisions.items()}
        return [
            {name: ops[orders[name][k % len(ops)]] for name, ops in decisions.items()}
            for k in range(width)
        ]

    def derive(self, probabilities: dict[str, dict[str, float]]) -> dict[str, Any]:
        return {name: max(probs, key=probs.__getitem__) for name, probs in probabilities.items()}


_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

SUPERNET_SPACES = ("nb201", "darts")
"""The spaces :func:`build_supernet` makes supernets of."""


def build_supernet(space: SearchSpace, input_shape: Sequence[int], num_classes: int) -> Supernet:
    """The supernet of a cell space: its network with every searched edge mixed.

    In ``nb201`` every edge of every cell becomes a :class:`MixedOp` of the five
    operations. In ``darts`` every cell gets the 14 edges of the DARTS supernet, from each
    earlier state to each intermediate node, each a :class:`MixedOp` of the eight
    operations; an architecture uses two incoming edges per node, and the stand-alone
    network of any architecture is a subnetwork.

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
            arch = space.from_params(supernet.sample_path(np.random.default_rng(0)))
            standalone = supernet.subnet(arch)  # the same function, as an ordinary module

    References:
        G. Bender, P.-J. Kindermans, B. Zoph, V. Vasudevan and Q. Le. Understanding and
        Simplifying One-Shot Architecture Search. ICML 2018.

        H. Liu, K. Simonyan and Y. Yang. DARTS: Differentiable Architecture Search. ICLR
        2019 (the DARTS supernet).
    """
    if space.name not in SUPERNET_SPACES:
        raise ValueError(
            f"space {space.name!r} has no supernet; one-shot search supports "
            f"{', '.join(SUPERNET_SPACES)}"
        )
    shape = tuple(int(s) for s in input_shape)
    if space.name == "darts":
        network, layout = build_darts_supernet(space, shape, num_classes)
        return Supernet(space, network, layout, shape, num_classes)
    from optuna_nas.nn._cells import NB201_EDGES, NB201Cell, ResidualReduction, nb201_op
    from optuna_nas.nn._ops import spatial_dim

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
    return Supernet(space, network, _NB201Layout(network, edges), shape, num_classes)
