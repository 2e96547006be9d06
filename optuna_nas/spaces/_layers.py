"""Per-layer decisions shared by the chain-structured and multi-branch spaces."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from optuna_nas.nn import _ops
from optuna_nas.spaces._base import Chooser, scale_width

SPATIAL_OPS = ("conv", "sepconv", "pool", "identity")
FLAT_OPS = ("dense", "identity")
ALL_OPS = ("conv", "sepconv", "pool", "identity", "dense")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a chain or multi-branch network; fields an op does not use are ``None``.

    Attributes:
        op: ``conv``, ``sepconv`` (depthwise-separable), ``pool``, ``identity`` or ``dense``.
        filters: Output channels of ``conv`` and ``sepconv``.
        kernel_size: Kernel of ``conv``, ``sepconv`` and ``pool``.
        stride: Stride of ``conv``, ``sepconv`` and ``pool``.
        dilation: Dilation of ``conv`` and ``sepconv``.
        pool_type: ``max`` or ``avg`` for ``pool``.
        units: Width of ``dense``.
    """

    op: str
    filters: int | None = None
    kernel_size: int | None = None
    stride: int | None = None
    dilation: int | None = None
    pool_type: str | None = None
    units: int | None = None

    def describe(self) -> str:
        fields = {
            "conv": f"conv{self.kernel_size}x{self.filters}/s{self.stride}d{self.dilation}",
            "sepconv": f"sep{self.kernel_size}x{self.filters}/s{self.stride}d{self.dilation}",
            "pool": f"{self.pool_type}pool{self.kernel_size}/s{self.stride}",
            "dense": f"dense{self.units}",
            "identity": "id",
        }
        return fields[self.op]


@dataclass(frozen=True)
class LayerChoices:
    """The values each per-layer decision may take; part of a space's configuration."""

    ops: tuple[str, ...]
    filters: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pool_types: tuple[str, ...]
    units: tuple[int, ...]

    @classmethod
    def validated(
        cls,
        ops: Sequence[str],
        filters: Sequence[int],
        kernel_sizes: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
        pool_types: Sequence[str],
        units: Sequence[int],
    ) -> LayerChoices:
        """Checks the choices up front so a bad space fails before any trial runs."""
        ops = tuple(ops)
        unknown = sorted(set(ops) - set(ALL_OPS))
        if not ops or unknown:
            raise ValueError(
                f"unknown layer ops {unknown or ops!r}; choose from {', '.join(ALL_OPS)}"
            )
        if "dense" in ops and set(ops) & {"conv", "sepconv", "pool"}:
            raise ValueError(
                "'dense' cannot be mixed with convolutional ops in one space; use "
                "ops=('dense', 'identity') for flat inputs or drop 'dense'"
            )
        if len(set(ops)) != len(ops):
            raise ValueError(f"ops {ops!r} has duplicates; list each op once")
        for name, values in (
            ("filters", filters),
            ("kernel_sizes", kernel_sizes),
            ("strides", strides),
            ("dilations", dilations),
            ("units", units),
        ):
            if not values or any(not isinstance(v, int) or v < 1 for v in values):
                raise ValueError(
                    f"{name} must be a non-empty list of positive integers, got {values!r}"
                )
        if any(k % 2 == 0 for k in kernel_sizes):
            raise ValueError(
                f"kernel_sizes must be odd so layers keep their size, got {kernel_sizes!r}"
            )
        bad_pools = sorted(set(pool_types) - {"max", "avg"})
        if not pool_types or bad_pools:
            raise ValueError(
                f"pool_types must be a non-empty subset of ['avg', 'max'], got {pool_types!r}"
            )
        return cls(
            ops,
            tuple(filters),
            tuple(kernel_sizes),
            tuple(strides),
            tuple(dilations),
            tuple(pool_types),
            tuple(units),
        )

    @property
    def flat(self) -> bool:
        """Whether the layers are dense, so the network works on flat features."""
        return "dense" in self.ops


def walk_layer(choose: Chooser, prefix: str, choices: LayerChoices) -> LayerSpec:
    """Asks the decisions of one layer; each hyperparameter only for the ops that use it."""
    op = choose.categorical(f"{prefix}/op", choices.ops)
    if op in ("conv", "sepconv"):
        return LayerSpec(
            op,
            filters=choose.categorical(f"{prefix}/filters", choices.filters),
            kernel_size=choose.categorical(f"{prefix}/kernel_size", choices.kernel_sizes),
            stride=choose.categorical(f"{prefix}/stride", choices.strides),
            dilation=choose.categorical(f"{prefix}/dilation", choices.dilations),
        )
    if op == "pool":
        return LayerSpec(
            op,
            pool_type=choose.categorical(f"{prefix}/pool_type", choices.pool_types),
            kernel_size=choose.categorical(f"{prefix}/kernel_size", choices.kernel_sizes),
            stride=choose.categorical(f"{prefix}/stride", choices.strides),
        )
    if op == "dense":
        return LayerSpec(op, units=choose.categorical(f"{prefix}/units", choices.units))
    return LayerSpec(op)


def build_layer(
    spec: LayerSpec, dim: int, c_in: int, width_multiplier: float = 1.0
) -> tuple[nn.Module, int]:
    """The module for one layer and its number of output channels (or features), with
    ``filters`` or ``units`` scaled by ``width_multiplier``."""
    if spec.op in ("conv", "sepconv"):
        assert spec.filters and spec.kernel_size and spec.stride and spec.dilation
        filters = scale_width(spec.filters, width_multiplier)
        make = _ops.ConvBNReLU if spec.op == "conv" else _ops.SeparableConv
        layer: nn.Module = make(dim, c_in, filters, spec.kernel_size, spec.stride, spec.dilation)
        return layer, filters
    if spec.op == "pool":
        assert spec.pool_type and spec.kernel_size and spec.stride
        return _ops.pool(dim, spec.pool_type, spec.kernel_size, spec.stride), c_in
    if spec.op == "dense":
        assert spec.units
        units = scale_width(spec.units, width_multiplier)
        return nn.Sequential(nn.Linear(c_in, units), nn.ReLU(inplace=True)), units
    return nn.Identity(), c_in


def input_adapter(flat: bool, input_shape: tuple[int, ...]) -> tuple[nn.Module, int, int]:
    """The first module of a layer-based network, its output width and spatial dim.

    Dense networks flatten whatever they get; convolutional ones see flat input as a
    one-channel sequence.
    """
    if flat:
        width = 1
        for s in input_shape:
            width *= s
        return nn.Flatten(), width, 0
    dim, shape = _ops.spatial_dim(input_shape)
    return _ops.ToFeatureMap(), shape[0], dim
