"""The DARTS supernet: 14 mixed edges per cell, of which an architecture uses eight."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from optuna_nas.oneshot._mixed import EdgeLayout, MixedOp

if TYPE_CHECKING:
    from optuna_nas.nn._cells import DARTSCell
    from optuna_nas.spaces import SearchSpace

_CELLS = ("normal", "reduce")


class _MixedDARTSCell(nn.Module):
    """A DARTS cell whose every edge from an earlier state to a node is a :class:`MixedOp`.

    It keeps the stand-alone cell's preprocessing modules (and their names). On a path,
    node ``k`` sums the two edges the path activates; in a mixture, all its edges.
    """

    def __init__(self, cell: DARTSCell, edges: dict[str, MixedOp]) -> None:
        super().__init__()
        self.preprocess0 = cell.preprocess0
        self.preprocess1 = cell.preprocess1
        self.edges = nn.ModuleDict(edges)  # keys "k_i": from state i to node k

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        from optuna_nas.nn._cells import DARTS_NODES

        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(DARTS_NODES):
            outputs = []
            for i in range(k + 2):
                edge = self.edges[f"{k}_{i}"]
                assert isinstance(edge, MixedOp)
                if edge.active is not None or edge.weights is not None:
                    outputs.append(edge(states[i]))
            if not outputs:
                raise RuntimeError("the supernet has no path; call set_path(...) first")
            states.append(sum(outputs[1:], outputs[0]))
        return torch.cat(states[2:], dim=1)


def build_darts_supernet(
    space: SearchSpace, shape: tuple[int, ...], num_classes: int
) -> tuple[nn.Module, EdgeLayout]:
    """The space's evaluation network with every cell made a :class:`_MixedDARTSCell`."""
    from optuna_nas.nn._cells import DARTS_NODES, DARTS_OPS, DARTSCell, darts_op
    from optuna_nas.nn._ops import spatial_dim

    placeholder = space.from_params(
        {
            f"{cell}/node{k}/{key}": "none" if key.startswith("op") else "0,1"
            for cell in _CELLS
            for k in range(DARTS_NODES)
            for key in (("op0", "op1", "inputs") if k else ("op0", "op1"))
        }
    )
    network = placeholder.build(shape, num_classes)
    dim, _ = spatial_dim(shape)
    layers = int(space.config["layers"])
    channels = int(space.config["channels"])
    reductions = {layers // 3, 2 * layers // 3}
    edges: list[tuple[str, MixedOp]] = []
    cells = network.cells
    assert isinstance(cells, nn.ModuleList)
    for c, cell in enumerate(cells):
        assert isinstance(cell, DARTSCell)
        reduction = c in reductions
        if reduction:
            channels *= 2
        kind = "reduce" if reduction else "normal"
        mixed = {}
        for k in range(DARTS_NODES):
            for i in range(k + 2):
                stride = 2 if reduction and i < 2 else 1
                op = MixedOp({name: darts_op(name, dim, channels, stride) for name in DARTS_OPS})
                mixed[f"{k}_{i}"] = op
                edges.append((f"{kind}/node{k}/in{i}", op))
        cells[c] = _MixedDARTSCell(cell, mixed)
    return network, _DARTSLayout(space, network, edges, reductions)


class _DARTSLayout:
    """The DARTS space's decisions (an input pair and two ops per node) on 14 edges."""

    def __init__(
        self,
        space: SearchSpace,
        network: nn.Module,
        edges: list[tuple[str, MixedOp]],
        reductions: set[int],
    ) -> None:
        self.space = space
        self.edges = edges
        self.kinds = [
            "reduce" if c in reductions else "normal"
            for c in range(len(network.cells))  # type: ignore[arg-type]
        ]

    @staticmethod
    def _nodes(params: dict[str, Any], cell: str) -> list[tuple[tuple[str, int], tuple[str, int]]]:
        from optuna_nas.nn._cells import DARTS_NODES

        nodes = []
        for k in range(DARTS_NODES):
            pair = params.get(f"{cell}/node{k}/inputs", "0,1") if k else "0,1"
            try:
                first, second = (int(i) for i in str(pair).split(","))
            except ValueError:
                raise ValueError(
                    f"the supernet has no input pair {pair!r} for '{cell}/node{k}/inputs'"
                ) from None
            ops = (params.get(f"{cell}/node{k}/op0"), params.get(f"{cell}/node{k}/op1"))
            nodes.append(((str(ops[0]), first), (str(ops[1]), second)))
        return nodes

    def resolve(self, params: dict[str, Any]) -> dict[str, str | None]:
        active: dict[str, str | None] = {name: None for name, _ in self.edges}
        for cell in _CELLS:
            for k, node in enumerate(self._nodes(params, cell)):
                for op, source in node:
                    active[f"{cell}/node{k}/in{source}"] = op
        return active

    def standalone_edges(self, params: dict[str, Any]) -> dict[str, str]:
        mapping = {}
        for c, kind in enumerate(self.kinds):
            for k, node in enumerate(self._nodes(params, kind)):
                for slot, (_, source) in enumerate(node):
                    mapping[f"cells.{c}.ops.{2 * k + slot}"] = f"cells.{c}.edges.{k}_{source}"
        return mapping

    def sample(self, rng: np.random.Generator) -> dict[str, Any]:
        state = np.random.RandomState(int(rng.integers(2**32)))
        return dict(self.space.sample_params(state))

    def fair(self, rng: np.random.Generator) -> list[dict[str, Any]]:
        from optuna_nas.nn._cells import DARTS_NODES, DARTS_OPS

        op_names = [
            f"{cell}/node{k}/op{slot}"
            for cell in _CELLS
            for k in range(DARTS_NODES)
            for slot in (0, 1)
        ]
        orders = {name: rng.permutation(len(DARTS_OPS)) for name in op_names}
        paths = []
        for j in range(len(DARTS_OPS)):
            fixed = {name: DARTS_OPS[orders[name][j]] for name in op_names}
            state = np.random.RandomState(int(rng.integers(2**32)))
            paths.append(dict(self.space.sample_params(state, fixed)))
        return paths

    def derive(self, probabilities: dict[str, dict[str, float]]) -> dict[str, Any]:
        from optuna_nas.nn._cells import DARTS_NODES

        params: dict[str, Any] = {}
        for cell in _CELLS:
            for k in range(DARTS_NODES):
                strongest = {}
                for i in range(k + 2):
                    probs = probabilities[f"{cell}/node{k}/in{i}"]
                    op = max((o for o in probs if o != "none"), key=probs.__getitem__)
                    strongest[i] = (probs[op], op)
                first, second = sorted(
                    sorted(strongest, key=lambda i: strongest[i][0], reverse=True)[:2]
                )
                if k:
                    params[f"{cell}/node{k}/inputs"] = f"{first},{second}"
                params[f"{cell}/node{k}/op0"] = strongest[first][1]
                params[f"{cell}/node{k}/op1"] = strongest[second][1]
        return params
