"""Chain-structured (macro) search space."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import nn

from optuna_nas.nn._ops import Classifier
from optuna_nas.spaces._base import Chooser, SearchSpace
from optuna_nas.spaces._layers import (
    SPATIAL_OPS,
    LayerChoices,
    LayerSpec,
    build_layer,
    input_adapter,
    walk_layer,
)
from optuna_nas.spaces._svg import Drawing, chain_panel


class ChainSpace(SearchSpace):
    """A plain stack of layers, each with its own operation and hyperparameters.

    The decisions are ``n_layers``, then for each existing layer ``i`` (0-based)
    ``layer{i}/op`` and only the hyperparameters that op uses:

    ========== ===============================================================
    op         active parameters
    ========== ===============================================================
    conv       ``filters``, ``kernel_size``, ``stride``, ``dilation``
    sepconv    ``filters``, ``kernel_size``, ``stride``, ``dilation``
    pool       ``pool_type``, ``kernel_size``, ``stride``
    dense      ``units``
    identity   none
    ========== ===============================================================

    A name keeps one distribution wherever it appears, as Optuna requires: ``kernel_size``
    of a conv and of a pool share the same choices. The network ends with global average
    pooling and a linear classifier. The built :class:`torch.nn.Sequential` names its
    children ``input``, ``layer0``, ``layer1``, ... and ``classifier``, matching the decision
    names, so a parameter keeps its name when a mutation changes the depth.

    Args:
        min_layers: Fewest layers.
        max_layers: Most layers.
        ops: Layer operations to choose from. The default convolutional set suits sequences
            and images; ``("dense", "identity")`` makes a multilayer perceptron for flat
            features. ``dense`` cannot be mixed with convolutional ops.
        filters: Output channel choices of ``conv`` and ``sepconv``.
        kernel_sizes: Odd kernel sizes.
        strides: Stride choices.
        dilations: Dilation choices of ``conv`` and ``sepconv``.
        pool_types: Subset of ``("max", "avg")``.
        units: Width choices of ``dense``.

    References:
        Elsken, Metzen and Hutter, "Neural Architecture Search: A Survey", JMLR 2019
        (Section 2, chain-structured spaces).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.spaces import ChainSpace

            space = ChainSpace(max_layers=4)

            def objective(trial):
                arch = space.suggest(trial)
                return arch.count_params((1, 40), 10)

            optuna.create_study().optimize(objective, n_trials=5)
    """

    name = "chain"

    def __init__(
        self,
        min_layers: int = 1,
        max_layers: int = 6,
        ops: Sequence[str] = SPATIAL_OPS,
        filters: Sequence[int] = (16, 32, 64),
        kernel_sizes: Sequence[int] = (3, 5, 7),
        strides: Sequence[int] = (1, 2),
        dilations: Sequence[int] = (1, 2),
        pool_types: Sequence[str] = ("max", "avg"),
        units: Sequence[int] = (32, 64, 128, 256),
    ) -> None:
        if (
            not isinstance(min_layers, int)
            or not isinstance(max_layers, int)
            or not 1 <= min_layers <= max_layers
        ):
            raise ValueError(
                f"need 1 <= min_layers <= max_layers, got min_layers={min_layers!r}, "
                f"max_layers={max_layers!r}"
            )
        self.choices = LayerChoices.validated(
            ops, filters, kernel_sizes, strides, dilations, pool_types, units
        )
        super().__init__(
            min_layers=min_layers,
            max_layers=max_layers,
            ops=list(ops),
            filters=list(filters),
            kernel_sizes=list(kernel_sizes),
            strides=list(strides),
            dilations=list(dilations),
            pool_types=list(pool_types),
            units=list(units),
        )
        self.min_layers = min_layers
        self.max_layers = max_layers

    def _walk(self, choose: Chooser) -> tuple[LayerSpec, ...]:
        n_layers = choose.integer("n_layers", self.min_layers, self.max_layers)
        return tuple(walk_layer(choose, f"layer{i}", self.choices) for i in range(n_layers))

    def build_genotype(
        self,
        genotype: tuple[LayerSpec, ...],
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> nn.Module:
        adapter, width, dim = input_adapter(self.choices.flat, input_shape)
        # Named children keep parameter names stable across depths: the classifier is
        # ``classifier.*`` whatever the layer count, so weight inheritance copies it when a
        # mutation adds or removes a layer.
        modules: OrderedDict[str, nn.Module] = OrderedDict(input=adapter)
        for i, spec in enumerate(genotype):
            modules[f"layer{i}"], width = build_layer(spec, dim, width, width_multiplier)
        modules["classifier"] = Classifier(width, num_classes)
        return nn.Sequential(modules)

    def describe(self, genotype: Any) -> str:
        return " > ".join(spec.describe() for spec in genotype)

    def drawing(self, genotype: Any) -> Drawing:
        """A stack of layer boxes from the input to the classifier."""
        head = "linear" if self.choices.flat else "global average pool + linear"
        return Drawing(f"chain: {len(genotype)} layers", [chain_panel(genotype, head)])
