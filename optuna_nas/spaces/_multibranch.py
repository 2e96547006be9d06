"""Multi-branch (macro) search space: a chain of layers plus chosen skip connections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from torch import nn

from optuna_nas.nn._graph import MERGES, MergeInputs, MultiBranchNet
from optuna_nas.nn._ops import Classifier
from optuna_nas.spaces._base import Chooser, SearchSpace
from optuna_nas.spaces._chain import ChainSpace
from optuna_nas.spaces._layers import (
    SPATIAL_OPS,
    LayerSpec,
    build_layer,
    input_adapter,
    walk_layer,
)
from optuna_nas.spaces._svg import Drawing, multibranch_panel


class BranchLayer(NamedTuple):
    """One layer of a multi-branch network.

    Attributes:
        spec: The layer's operation and hyperparameters.
        inputs: Indices of the outputs the layer reads, ascending: ``-1`` is the network
            input and ``j`` is layer ``j``. The last one is always the previous output.
        merge: ``"sum"`` or ``"concat"`` when the layer reads several outputs, else ``None``.
    """

    spec: LayerSpec
    inputs: tuple[int, ...]
    merge: str | None


def _source_name(j: int) -> str:
    return "in" if j == -1 else f"L{j}"


def _skip_param(layer: int, source: int) -> str:
    """Name of the decision whether ``layer`` also reads ``source`` (``-1``: the input)."""
    return f"layer{layer}/skip_input" if source == -1 else f"layer{layer}/skip{source}"


class MultiBranchSpace(SearchSpace):
    """A chain of layers in which each layer may also read earlier outputs.

    Layer ``i`` computes its operation on a merge of the previous output (the network input
    for layer 0) and any subset of the earlier ones, so ResNet- and DenseNet-like
    connectivity are both points of the space. The decisions are:

    * ``n_layers``, and for each existing layer ``i`` the per-layer decisions of
      :class:`ChainSpace` (``layer{i}/op`` and the hyperparameters that op uses);
    * ``layer{i}/skip_input`` for ``i >= 1`` and ``layer{i}/skip{j}`` for ``j < i - 1``, each
      ``False`` or ``True``: whether layer ``i`` also reads the network input or the output
      of layer ``j``. The previous output is always read, so every layer feeds the next
      and the chain is the backbone;
    * ``layer{i}/merge`` in ``("sum", "concat")``, only when layer ``i`` has a skip.

    Inputs of different sizes are average-pooled to the smallest among them. ``sum``
    projects each input to the previous output's width (1x1 convolution and batch norm for
    feature maps, a linear layer for flat features) and adds them; ``concat`` stacks their
    channels, so the layer sees the sum of their widths. The network ends with global
    average pooling and a linear classifier that reads the last layer.

    The genotype is a tuple of :class:`BranchLayer`, one per layer.

    Args:
        min_layers: Fewest layers.
        max_layers: Most layers. The number of skip decisions grows as its square.
        ops: Layer operations to choose from, as for :class:`ChainSpace`;
            ``("dense", "identity")`` makes a multi-branch perceptron for flat features.
        filters: Output channel choices of ``conv`` and ``sepconv``.
        kernel_sizes: Odd kernel sizes.
        strides: Stride choices.
        dilations: Dilation choices of ``conv`` and ``sepconv``.
        pool_types: Subset of ``("max", "avg")``.
        units: Width choices of ``dense``.

    References:
        Elsken, Metzen and Hutter, "Neural Architecture Search: A Survey", JMLR 2019
        (Section 2, multi-branch spaces).

        He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.

        Huang, Liu, van der Maaten and Weinberger, "Densely Connected Convolutional
        Networks", CVPR 2017.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.spaces import MultiBranchSpace

            space = MultiBranchSpace(max_layers=4, filters=(16, 32))

            def objective(trial):
                arch = space.suggest(trial)
                return arch.count_params((1, 40), 10)

            optuna.create_study().optimize(objective, n_trials=5)
    """

    name = "multibranch"

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
        # The backbone is a chain space with the same arguments; it validates them.
        backbone = ChainSpace(
            min_layers,
            max_layers,
            ops,
            filters,
            kernel_sizes,
            strides,
            dilations,
            pool_types,
            units,
        )
        super().__init__(**backbone.config)
        self.choices = backbone.choices
        self.min_layers = backbone.min_layers
        self.max_layers = backbone.max_layers

    def _walk(self, choose: Chooser) -> tuple[BranchLayer, ...]:
        n_layers = choose.integer("n_layers", self.min_layers, self.max_layers)
        layers = []
        for i in range(n_layers):
            spec = walk_layer(choose, f"layer{i}", self.choices)
            skips = tuple(
                j for j in range(-1, i - 1) if choose.categorical(_skip_param(i, j), (False, True))
            )
            merge = choose.categorical(f"layer{i}/merge", MERGES) if skips else None
            layers.append(BranchLayer(spec, (*skips, i - 1), merge))
        return tuple(layers)

    def build_genotype(
        self,
        genotype: tuple[BranchLayer, ...],
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> nn.Module:
        adapter, width, dim = input_adapter(self.choices.flat, input_shape)
        widths = {-1: width}
        layers: list[nn.Module] = []
        merges: list[MergeInputs | None] = []
        for i, layer in enumerate(genotype):
            in_widths = [widths[j] for j in layer.inputs]
            merge = None if layer.merge is None else MergeInputs(dim, in_widths, layer.merge)
            module, widths[i] = build_layer(
                layer.spec,
                dim,
                in_widths[-1] if merge is None else merge.out_width,
                width_multiplier,
            )
            layers.append(module)
            merges.append(merge)
        head = Classifier(widths[len(genotype) - 1], num_classes)
        return MultiBranchNet(adapter, layers, [g.inputs for g in genotype], merges, head)

    def drawing(self, genotype: Any) -> Drawing:
        """The layer stack with an arc for every skip connection and the merge written in
        the box of the layer that reads several inputs."""
        head = "linear" if self.choices.flat else "global average pool + linear"
        return Drawing(f"multibranch: {len(genotype)} layers", [multibranch_panel(genotype, head)])

    def describe(self, genotype: Any) -> str:
        parts = []
        for layer in genotype:
            text = layer.spec.describe()
            if layer.merge is not None:
                sources = "+".join(_source_name(j) for j in layer.inputs)
                text += f"[{layer.merge} {sources}]"
            parts.append(text)
        return " > ".join(parts)
