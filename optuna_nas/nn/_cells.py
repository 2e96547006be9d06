"""Cells and networks of the cell-based (micro) spaces: NAS-Bench-201 and DARTS.

Every module takes ``dim`` (1 for sequences, 2 for images) like those in
:mod:`optuna_nas.nn._ops`, and each network starts with :class:`~._ops.ToFeatureMap`, so flat
``N x D`` input runs as a one-channel sequence.

References:
    Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural Architecture
    Search", ICLR 2020.

    Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search", ICLR 2019.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from optuna_nas.nn import _ops

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""The operations an NAS-Bench-201 edge chooses from, in the benchmark's order."""

NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
"""The ``(to, from)`` node pairs of an NAS-Bench-201 cell, in the order of its arch string."""

DARTS_OPS = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""The operations a DARTS edge chooses from, in the paper's order."""

DARTS_NODES = 4
"""Intermediate nodes of a DARTS cell; the cell outputs all of them, concatenated."""

DARTSNode = tuple[tuple[str, int], tuple[str, int]]
"""One intermediate DARTS node: two ``(op, input)`` edges whose outputs are summed.

Input 0 and 1 are the outputs of the previous-but-one and the previous cell; input ``k + 2``
is intermediate node ``k``.
"""


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise convolution, pointwise convolution, batch norm (DARTS).

    Args:
        dim: Spatial dimensions, 1 or 2.
        c_in: Input channels.
        c_out: Output channels.
        kernel_size: Odd kernel size of the depthwise convolution.
        stride: Stride of the depthwise convolution.
        dilation: Dilation of the depthwise convolution.
    """

    def __init__(
        self, dim: int, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int
    ) -> None:
        super().__init__(
            # Not in place: a cell feeds the same tensor to several edges.
            nn.ReLU(inplace=False),
            *_ops.depthwise_pointwise(dim, c_in, c_out, kernel_size, stride, dilation),
            _ops.batch_norm(dim, c_out),
        )


class SepConv(nn.Sequential):
    """Two stacked undilated :class:`DilConv` blocks, the first one strided (DARTS).

    Args:
        dim: Spatial dimensions, 1 or 2.
        c_in: Input channels.
        c_out: Output channels.
        kernel_size: Odd kernel size of both depthwise convolutions.
        stride: Stride of the first block.
    """

    def __init__(self, dim: int, c_in: int, c_out: int, kernel_size: int, stride: int) -> None:
        super().__init__(
            DilConv(dim, c_in, c_in, kernel_size, stride, 1),
            DilConv(dim, c_in, c_out, kernel_size, 1, 1),
        )


def nb201_op(name: str, dim: int, channels: int) -> nn.Module:
    """The module of one NAS-Bench-201 edge; it keeps both channels and size.

    Args:
        name: One of :data:`NB201_OPS`.
        dim: Spatial dimensions, 1 or 2.
        channels: Channels in and out.
    """
    if name == "none":
        return _ops.Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return _ops.ReLUConvBN(dim, channels, channels, 1)
    if name == "nor_conv_3x3":
        return _ops.ReLUConvBN(dim, channels, channels, 3)
    if name == "avg_pool_3x3":
        return _ops.pool(dim, "avg", 3)
    raise ValueError(f"unknown NAS-Bench-201 op {name!r}; choose one of {', '.join(NB201_OPS)}")


def darts_op(name: str, dim: int, channels: int, stride: int) -> nn.Module:
    """The module of one DARTS edge; ``stride`` 2 halves the size and keeps the channels.

    Args:
        name: One of :data:`DARTS_OPS`.
        dim: Spatial dimensions, 1 or 2.
        channels: Channels in and out.
        stride: 1, or 2 on the edges that leave the inputs of a reduction cell.
    """
    if name == "none":
        return _ops.Zero(stride)
    if name == "max_pool_3x3":
        return _ops.pool(dim, "max", 3, stride)
    if name == "avg_pool_3x3":
        return _ops.pool(dim, "avg", 3, stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else _ops.FactorizedReduce(dim, channels, channels)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(dim, channels, channels, int(name[-1]), stride)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(dim, channels, channels, int(name[-1]), stride, 2)
    raise ValueError(f"unknown DARTS op {name!r}; choose one of {', '.join(DARTS_OPS)}")


def _stem(dim: int, c_in: int, c_out: int) -> nn.Sequential:
    """Flat input to a feature map, then a 3x3 convolution and batch norm."""
    return nn.Sequential(
        _ops.ToFeatureMap(),
        _ops.conv(dim)(c_in, c_out, 3, padding=1, bias=False),
        _ops.batch_norm(dim, c_out),
    )


class NB201Cell(nn.Module):
    """A cell of NAS-Bench-201: four nodes, each the sum of edges from all earlier nodes.

    Node 0 is the cell input and node 3 its output; the cell keeps channels and size.

    Args:
        dim: Spatial dimensions, 1 or 2.
        channels: Channels in and out.
        ops: Six op names, one per edge of :data:`NB201_EDGES`, in that order.
    """

    def __init__(self, dim: int, channels: int, ops: Sequence[str]) -> None:
        super().__init__()
        if len(ops) != len(NB201_EDGES):
            raise ValueError(f"an NAS-Bench-201 cell has {len(NB201_EDGES)} edges, got {ops!r}")
        self.edges = nn.ModuleList(nb201_op(op, dim, channels) for op in ops)
        # For nodes 1 to 3, the (edge index, source node) pairs that feed it.
        self.incoming = [
            [(e, source) for e, (to, source) in enumerate(NB201_EDGES) if to == target]
            for target in range(1, 4)
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for incoming in self.incoming:
            outputs = [self.edges[e](nodes[source]) for e, source in incoming]
            nodes.append(sum(outputs[1:], outputs[0]))
        return nodes[-1]


class ResidualReduction(nn.Module):
    """The ResNet basic block with stride 2 that NAS-Bench-201 puts between its stages.

    Two :class:`~._ops.ReLUConvBN` 3x3 units, the first strided, plus a shortcut of 2x2
    average pooling and a 1x1 convolution. The pooling rounds up, like the strided
    convolution, so odd sizes work too.

    Args:
        dim: Spatial dimensions, 1 or 2.
        c_in: Input channels.
        c_out: Output channels.

    References:
        He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
    """

    def __init__(self, dim: int, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = _ops.ReLUConvBN(dim, c_in, c_out, 3, stride=2)
        self.conv_b = _ops.ReLUConvBN(dim, c_out, c_out, 3)
        avg_pool = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
        self.shortcut = nn.Sequential(
            avg_pool(2, 2, ceil_mode=True), _ops.conv(dim)(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(self.conv_a(x)) + self.shortcut(x)


class NB201Network(nn.Module):
    """The NAS-Bench-201 skeleton around one searched cell.

    A 3x3 stem with ``channels`` outputs; three stages of ``cells_per_stage`` cells at
    ``channels``, ``2 * channels`` and ``4 * channels``, joined by a :class:`ResidualReduction`;
    then batch norm, ReLU, global average pooling and a linear classifier. With the defaults
    of the benchmark (16 channels, 5 cells per stage) the parameter count equals the one
    NAS-Bench-201 lists.

    Args:
        ops: Six op names, one per edge of :data:`NB201_EDGES`, in that order.
        dim: Spatial dimensions, 1 or 2.
        in_channels: Channels of the input (1 for flat input).
        num_classes: Number of output logits.
        channels: Channels of the first stage.
        cells_per_stage: Cells in each of the three stages.

    Input ``N x in_channels x L`` (or ``N x in_channels x H x W``, or ``N x D``), output
    ``N x num_classes``.
    """

    def __init__(
        self,
        ops: Sequence[str],
        dim: int,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        cells_per_stage: int = 5,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [_stem(dim, in_channels, channels)]
        width = channels
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(dim, width, 2 * width))
                width *= 2
            layers.extend(NB201Cell(dim, width, ops) for _ in range(cells_per_stage))
        layers += [_ops.batch_norm(dim, width), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = _ops.Classifier(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class DARTSCell(nn.Module):
    """A DARTS cell: two preprocessed inputs, four intermediate nodes, their concatenation.

    Args:
        dim: Spatial dimensions, 1 or 2.
        nodes: The four intermediate nodes, each two ``(op, input)`` edges (see
            :data:`DARTSNode`).
        c_prev_prev: Channels of input 0, the previous-but-one cell's output.
        c_prev: Channels of input 1, the previous cell's output.
        channels: Channels of every node; the cell outputs ``4 * channels``.
        reduction: Whether the edges that leave the inputs have stride 2.
        reduction_prev: Whether the previous cell reduced, so that input 0 is twice as large
            as input 1 and is brought down by :class:`~._ops.FactorizedReduce`.
    """

    def __init__(
        self,
        dim: int,
        nodes: Sequence[DARTSNode],
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.preprocess0: nn.Module = (
            _ops.FactorizedReduce(dim, c_prev_prev, channels)
            if reduction_prev
            else _ops.ReLUConvBN(dim, c_prev_prev, channels, 1)
        )
        self.preprocess1 = _ops.ReLUConvBN(dim, c_prev, channels, 1)
        self.inputs: list[int] = []
        ops: list[nn.Module] = []
        for node in nodes:
            for op, source in node:
                stride = 2 if reduction and source < 2 else 1
                ops.append(darts_op(op, dim, channels, stride))
                self.inputs.append(source)
        self.ops = nn.ModuleList(ops)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(0, len(self.ops), 2):
            a, b = self.inputs[k], self.inputs[k + 1]
            states.append(self.ops[k](states[a]) + self.ops[k + 1](states[b]))
        return torch.cat(states[2:], dim=1)


class DARTSNetwork(nn.Module):
    """The DARTS evaluation network: a stack of normal cells and two reduction cells.

    A 3x3 stem with ``3 * channels`` outputs, then ``layers`` cells; the cells at a third and
    at two thirds of the depth are reduction cells, which halve the size and double the
    channels. Each cell reads the outputs of the two cells before it. Global average pooling
    and a linear classifier end the network. The auxiliary head and drop-path of the paper's
    training recipe are left out.

    Args:
        normal: The four nodes of every normal cell.
        reduce: The four nodes of every reduction cell.
        dim: Spatial dimensions, 1 or 2.
        in_channels: Channels of the input (1 for flat input).
        num_classes: Number of output logits.
        channels: Node channels of the first cells.
        layers: Number of cells.

    Input ``N x in_channels x L`` (or ``N x in_channels x H x W``, or ``N x D``), output
    ``N x num_classes``.
    """

    def __init__(
        self,
        normal: Sequence[DARTSNode],
        reduce: Sequence[DARTSNode],
        dim: int,
        in_channels: int,
        num_classes: int,
        channels: int = 16,
        layers: int = 8,
    ) -> None:
        super().__init__()
        self.stem = _stem(dim, in_channels, 3 * channels)
        c_prev_prev, c_prev, c_cell = 3 * channels, 3 * channels, channels
        reductions = {layers // 3, 2 * layers // 3}
        reduction_prev = False
        cells = []
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_cell *= 2
            cells.append(
                DARTSCell(
                    dim,
                    reduce if reduction else normal,
                    c_prev_prev,
                    c_prev,
                    c_cell,
                    reduction,
                    reduction_prev,
                )
            )
            c_prev_prev, c_prev = c_prev, DARTS_NODES * c_cell
            reduction_prev = reduction
        self.cells = nn.ModuleList(cells)
        self.classifier = _ops.Classifier(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(s1)
