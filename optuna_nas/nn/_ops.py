"""Dimension-generic building blocks shared by every space.

Every block takes ``dim`` (1 for sequences ``N x C x L``, 2 for images ``N x C x H x W``),
so one space definition serves MNIST-1D and CIFAR alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv(dim: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    """``nn.Conv1d`` or ``nn.Conv2d``."""
    return nn.Conv1d if dim == 1 else nn.Conv2d


def batch_norm(dim: int, channels: int, affine: bool = True) -> nn.Module:
    """Batch normalisation for ``dim``-dimensional feature maps."""
    return (nn.BatchNorm1d if dim == 1 else nn.BatchNorm2d)(channels, affine=affine)


def pool(dim: int, kind: str, kernel_size: int, stride: int = 1) -> nn.Module:
    """A ``max`` or ``avg`` pooling layer that keeps the size when ``stride`` is 1."""
    padding = kernel_size // 2
    if kind == "max":
        return (nn.MaxPool1d if dim == 1 else nn.MaxPool2d)(kernel_size, stride, padding)
    if kind == "avg":
        cls = nn.AvgPool1d if dim == 1 else nn.AvgPool2d
        return cls(kernel_size, stride, padding, count_include_pad=False)
    raise ValueError(f"unknown pooling type {kind!r}; choose 'max' or 'avg'")


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, batch norm: the pre-activation unit of NAS-Bench-201 and DARTS."""

    def __init__(
        self,
        dim: int,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            conv(dim)(c_in, c_out, kernel_size, stride, padding, dilation=dilation, bias=False),
            batch_norm(dim, c_out, affine),
        )


class ConvBNReLU(nn.Sequential):
    """Convolution, batch norm, ReLU: the post-activation unit of chain-structured nets."""

    def __init__(
        self,
        dim: int,
        c_in: int,
        c_out: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            conv(dim)(
                c_in,
                c_out,
                kernel_size,
                stride,
                padding,
                dilation=dilation,
                groups=groups,
                bias=False,
            ),
            batch_norm(dim, c_out),
            nn.ReLU(inplace=True),
        )


def depthwise_pointwise(
    dim: int, c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1
) -> tuple[nn.Module, nn.Module]:
    """A size-keeping depthwise convolution and the pointwise one that mixes its channels."""
    padding = dilation * (kernel_size - 1) // 2
    depthwise = conv(dim)(
        c_in, c_in, kernel_size, stride, padding, dilation=dilation, groups=c_in, bias=False
    )
    return depthwise, conv(dim)(c_in, c_out, 1, bias=False)


class SeparableConv(nn.Sequential):
    """Depthwise convolution followed by a pointwise one, then batch norm and ReLU.

    References:
        Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017.
    """

    def __init__(
        self, dim: int, c_in: int, c_out: int, kernel_size: int, stride: int = 1, dilation: int = 1
    ) -> None:
        super().__init__(
            *depthwise_pointwise(dim, c_in, c_out, kernel_size, stride, dilation),
            batch_norm(dim, c_out),
            nn.ReLU(inplace=True),
        )


class Zero(nn.Module):
    """The ``none`` operation: outputs zeros of the right shape, so an edge can be cut."""

    def __init__(self, stride: int = 1, c_out: int | None = None) -> None:
        super().__init__()
        self.stride = stride
        self.c_out = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)
            x = x[index]
        if self.c_out is not None and self.c_out != x.shape[1]:
            shape = (x.shape[0], self.c_out, *x.shape[2:])
            return x.new_zeros(shape)
        return x.mul(0.0)


class FactorizedReduce(nn.Module):
    """Halves the resolution with two offset stride-2 1x1 convolutions (DARTS)."""

    def __init__(self, dim: int, c_in: int, c_out: int, affine: bool = True) -> None:
        super().__init__()
        half = c_out // 2
        self.dim = dim
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = conv(dim)(c_in, half, 1, stride=2, bias=False)
        self.conv_b = conv(dim)(c_in, c_out - half, 1, stride=2, bias=False)
        self.bn = batch_norm(dim, c_out, affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = x[(slice(None), slice(None)) + (slice(1, None),) * self.dim]
        pad = (0, 1) * self.dim
        a = self.conv_a(x)
        b = self.conv_b(F.pad(shifted, pad))
        crop = (Ellipsis, *[slice(0, s) for s in a.shape[2:]])
        return self.bn(torch.cat([a, b[crop]], dim=1))


class Classifier(nn.Module):
    """Global average pooling (for feature maps) followed by a linear layer."""

    def __init__(self, c_in: int, num_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() > 2:
            x = x.mean(dim=tuple(range(2, x.dim())))
        return self.linear(x)


class ToFeatureMap(nn.Module):
    """Reshapes flat ``N x D`` input to ``N x 1 x D`` so convolutional spaces accept it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1) if x.dim() == 2 else x


def spatial_dim(input_shape: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """The number of spatial dimensions a convolutional net uses for ``input_shape``.

    Returns ``(dim, shape)`` where ``shape`` is the channel-first shape the convolutions see:
    flat ``(D,)`` input is treated as a one-channel sequence ``(1, D)``.

    Raises:
        ValueError: For shapes of more than three dimensions or with non-positive sizes.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s <= 0 for s in shape) or len(shape) > 3:
        raise ValueError(
            f"input_shape {shape} is not supported; pass (D,) for flat features, (C, L) for "
            "sequences or (C, H, W) for images, without the batch dimension"
        )
    if len(shape) == 1:
        return 1, (1, shape[0])
    return len(shape) - 1, shape


def count_params(model: nn.Module) -> int:
    """Number of trainable parameters of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def estimate_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """FLOPs of one forward pass on a single example, as counted by PyTorch.

    Uses :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix products and
    convolutions (a multiply-add is two FLOPs); element-wise work is left out.
    """
    from torch.utils.flop_counter import FlopCounterMode

    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros((1, *input_shape), device=device))
        return int(counter.get_total_flops())
    finally:
        model.train(was_training)
