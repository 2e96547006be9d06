"""Building blocks of the hierarchical space: primitives, DAG blocks and the network."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from optuna_nas.nn import _ops

PRIMITIVES = (
    "none",
    "identity",
    "conv1x1",
    "dwconv3x3",
    "sepconv3x3",
    "maxpool3x3",
    "avgpool3x3",
)
"""Level-1 operations; ``none`` cuts the edge. All keep channels and size."""

Rows = Sequence[Sequence[str]]
"""A DAG's edges: ``rows[i - 1][j]`` is the operation on edge ``j -> i`` (``j < i``)."""


def primitive(name: str, dim: int, channels: int) -> nn.Module:
    """The level-1 operation ``name`` for ``channels``-channel maps with ``dim`` spatial axes.

    Convolutions are ReLU, convolution, batch norm; pools are 3-wide with stride 1.

    Raises:
        ValueError: For ``none`` (an absent edge has no module) or an unknown name.
    """
    conv = _ops.conv(dim)
    if name == "identity":
        return nn.Identity()
    if name == "conv1x1":
        return _ops.ReLUConvBN(dim, channels, channels, 1)
    if name == "dwconv3x3":
        return nn.Sequential(
            nn.ReLU(inplace=False),
            conv(channels, channels, 3, padding=1, groups=channels, bias=False),
            _ops.batch_norm(dim, channels),
        )
    if name == "sepconv3x3":
        return nn.Sequential(
            nn.ReLU(inplace=False),
            conv(channels, channels, 3, padding=1, groups=channels, bias=False),
            conv(channels, channels, 1, bias=False),
            _ops.batch_norm(dim, channels),
        )
    if name in ("maxpool3x3", "avgpool3x3"):
        return _ops.pool(dim, name[:3], 3)
    raise ValueError(
        f"no module for primitive {name!r}; choose one of {', '.join(PRIMITIVES[1:])}"
    )


def live_nodes(rows: Rows) -> set[int]:
    """The nodes from which a path of non-``none`` edges reaches the output (the last node)."""
    output = len(rows)
    live = {output}
    for i in range(output, 0, -1):
        if i in live:
            live.update(j for j, op in enumerate(rows[i - 1]) if op != "none")
    return live


class DAGBlock(nn.Module):
    """A directed acyclic graph of operations with summing nodes.

    Node 0 is the block's input and the last node its output. Every other node is the sum
    of its incoming edges' outputs, or zeros when all of them are ``none``. Edges into nodes
    that cannot reach the output do not change it, so they get no module at all.

    Args:
        rows: ``rows[i - 1][j]`` names the operation on edge ``j -> i``; ``len(rows) + 1``
            nodes in all.
        make_op: Builds the module for a non-``none`` operation name.
    """

    def __init__(self, rows: Rows, make_op: Callable[[str], nn.Module]) -> None:
        super().__init__()
        for i, row in enumerate(rows, start=1):
            if len(row) != i:
                raise ValueError(f"node {i} needs {i} incoming edges, got {len(row)}")
        live = live_nodes(rows)
        self.edges = nn.ModuleDict()
        # incoming[i - 1] lists (source, edge key) of node i; None marks a node never computed.
        self.incoming: list[list[tuple[int, str]] | None] = []
        for i, row in enumerate(rows, start=1):
            if i not in live:
                self.incoming.append(None)
                continue
            edges = []
            for j, op in enumerate(row):
                if op != "none":
                    key = f"{i}_{j}"
                    self.edges[key] = make_op(op)
                    edges.append((j, key))
            self.incoming.append(edges)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps ``N x C x spatial`` to the output node's value of the same shape."""
        nodes: list[torch.Tensor | None] = [x]
        for edges in self.incoming:
            if edges is None:
                nodes.append(None)
            elif not edges:
                nodes.append(torch.zeros_like(x))
            else:
                outputs = []
                for j, key in edges:
                    source = nodes[j]
                    assert source is not None  # sources of live nodes are live
                    outputs.append(self.edges[key](source))
                nodes.append(torch.stack(outputs).sum(dim=0) if len(outputs) > 1 else outputs[0])
        out = nodes[-1]
        assert out is not None
        return out


class HierarchicalNet(nn.Module):
    """Stem, level-3 cells separated by reductions, global pooling and a linear classifier.

    The stem is a 3-wide convolution to ``channels``; each reduction between two cells is a
    stride-2 separable convolution that doubles the channels. Flat ``(D,)`` input is seen as
    a one-channel sequence.

    Args:
        input_shape: Shape of one example without the batch dimension.
        num_classes: Number of output logits.
        cell: The level-3 DAG; each edge names a motif (a key of ``motifs``) or ``none``.
        motifs: The level-2 DAGs by name; each edge names a primitive of :data:`PRIMITIVES`.
        channels: Channels after the stem, doubled at every reduction.
        cells: Number of cells.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        cell: Rows,
        motifs: Mapping[str, Rows],
        channels: int,
        cells: int,
    ) -> None:
        super().__init__()
        dim, shape = _ops.spatial_dim(input_shape)

        def make_cell(width: int) -> DAGBlock:
            return DAGBlock(
                cell,
                lambda motif: DAGBlock(motifs[motif], lambda op: primitive(op, dim, width)),
            )

        layers: list[nn.Module] = [
            _ops.ToFeatureMap(),
            _ops.ConvBNReLU(dim, shape[0], channels, 3),
        ]
        width = channels
        for k in range(cells):
            if k:
                layers.append(_ops.SeparableConv(dim, width, 2 * width, 3, stride=2))
                width *= 2
            layers.append(make_cell(width))
        self.features = nn.Sequential(*layers)
        self.classifier = _ops.Classifier(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps a batch of raw inputs to ``N x num_classes`` logits."""
        return self.classifier(self.features(x))
