"""Cell-based (micro) search spaces: NAS-Bench-201 and DARTS.

A cell-based space searches one small directed acyclic graph, the cell, and repeats it in a
fixed skeleton network; the skeletons live in :mod:`optuna_nas.nn._cells`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, NoReturn

from torch import nn

from optuna_nas.nn._cells import (
    DARTS_NODES,
    DARTS_OPS,
    NB201_EDGES,
    NB201_OPS,
    DARTSNetwork,
    DARTSNode,
    NB201Network,
)
from optuna_nas.nn._ops import spatial_dim
from optuna_nas.spaces._base import Architecture, Chooser, SearchSpace, scale_width
from optuna_nas.spaces._svg import Drawing, darts_panels, nb201_panel

_NB201_FORMAT = (
    "'|op~0|+|op~0|op~1|+|op~0|op~1|op~2|' (node 1 from node 0; node 2 from 0 and 1; node 3 "
    f"from 0, 1 and 2) with each op one of {', '.join(NB201_OPS)}, for example "
    "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "skip_connect~2|'"
)


class CellSpace(SearchSpace):
    """Base class of the cell-based spaces, which search a cell and repeat it in a skeleton.

    Use a registered subclass: :class:`NB201Space` (``"nb201"``) or :class:`DARTSSpace`
    (``"darts"``). Both networks accept flat ``(D,)``, sequence ``(C, L)`` and image
    ``(C, H, W)`` inputs; flat input is read as a one-channel sequence.

    Args:
        **sizes: The skeleton's size arguments, each a positive integer; they form the
            space's configuration.

    References:
        Elsken, Metzen and Hutter, "Neural Architecture Search: A Survey", JMLR 2019
        (Section 2, cell-based spaces).

    Example:
        .. code-block:: python

            from optuna_nas import spaces

            space = spaces.create("nb201", channels=8, cells_per_stage=1)
            assert isinstance(space, spaces.CellSpace)
    """

    ops: ClassVar[tuple[str, ...]]
    """The operations an edge chooses from."""

    def __init__(self, **sizes: int) -> None:
        for key, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"{self.name} space: {key}={value!r} is invalid; pass a positive integer "
                    f"(int >= 1) as {key}"
                )
        super().__init__(**sizes)


def _edge(op: str, source: int) -> str:
    """One edge in NAS-Bench-201 string notation: ``op~source``."""
    return f"{op}~{source}"


class NB201Space(CellSpace):
    """The NAS-Bench-201 cell: four nodes, each edge between them one of five operations.

    Node ``i`` (1 to 3) is the sum of one edge from every earlier node; node 0 is the cell
    input and node 3 its output. Each of the six edges is the decision ``node{i}/in{j}``
    (edge from node ``j`` into node ``i``), asked in the order of the benchmark's arch string
    (``node1/in0``, ``node2/in0``, ``node2/in1``, ``node3/in0``, ``node3/in1``,
    ``node3/in2``), with the choices ``none``, ``skip_connect``, ``nor_conv_1x1``,
    ``nor_conv_3x3`` and ``avg_pool_3x3``. All 5^6 = 15,625 cells of the benchmark are
    reachable, and :meth:`to_nb201_string` / :meth:`from_nb201_string` convert to and from
    its arch strings, so results can be looked up in the benchmark's tables.

    The genotype is the tuple of the six op names in that order. The network is the
    benchmark's skeleton (see :class:`~optuna_nas.nn._cells.NB201Network`); with the default
    arguments its parameter count equals the one the benchmark lists for CIFAR-10.

    Args:
        channels: Channels of the first stage; the two later stages have twice and four times
            as many.
        cells_per_stage: Cells in each of the three stages.

    References:
        Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
        Architecture Search", ICLR 2020.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.spaces import NB201Space

            space = NB201Space(channels=8, cells_per_stage=1)

            def objective(trial):
                arch = space.suggest(trial)
                print(space.to_nb201_string(arch))
                return arch.count_params((3, 32, 32), 10)

            optuna.create_study().optimize(objective, n_trials=5)
    """

    name = "nb201"
    ops = NB201_OPS

    scale_keys: ClassVar[dict[str, str]] = {"cells": "cells_per_stage", "channels": "channels"}

    def __init__(self, channels: int = 16, cells_per_stage: int = 5) -> None:
        super().__init__(channels=channels, cells_per_stage=cells_per_stage)
        self.channels = channels
        self.cells_per_stage = cells_per_stage

    def _walk(self, choose: Chooser) -> tuple[str, ...]:
        return tuple(choose.categorical(f"node{i}/in{j}", self.ops) for i, j in NB201_EDGES)

    def build_genotype(
        self,
        genotype: tuple[str, ...],
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> nn.Module:
        dim, shape = spatial_dim(input_shape)
        channels = scale_width(self.channels, width_multiplier)
        return NB201Network(genotype, dim, shape[0], num_classes, channels, self.cells_per_stage)

    def describe(self, genotype: tuple[str, ...]) -> str:
        return self.to_nb201_string(genotype)

    def drawing(self, genotype: tuple[str, ...]) -> Drawing:
        """The cell as a graph of four nodes whose edges carry their operations."""
        settings = (
            f"3 stages of {self.cells_per_stage} cells, {self.channels}/"
            f"{2 * self.channels}/{4 * self.channels} channels"
        )
        return Drawing("nb201 cell", [nb201_panel(genotype)], settings)

    def to_nb201_string(self, genotype_or_arch: Sequence[str] | Architecture) -> str:
        """The NAS-Bench-201 arch string of a cell.

        Args:
            genotype_or_arch: An architecture of this space, or its genotype: the six op
                names in the order of the arch string.

        Raises:
            ValueError: If the architecture is of another space, or the genotype is not six
                known op names.

        Example:
            ``('skip_connect',) * 6`` gives ``'|skip_connect~0|+|skip_connect~0|skip_connect~1|'
            '+|skip_connect~0|skip_connect~1|skip_connect~2|'`` (one string, split here).
        """
        if isinstance(genotype_or_arch, Architecture):
            if genotype_or_arch.space != self.name:
                raise ValueError(
                    f"architecture of space {genotype_or_arch.space!r} has no NAS-Bench-201 "
                    f"string; pass an architecture of the {self.name!r} space"
                )
            ops = self.decode(genotype_or_arch.param_dict)
        else:
            ops = tuple(genotype_or_arch)
            if len(ops) != len(NB201_EDGES) or any(op not in self.ops for op in ops):
                raise ValueError(
                    f"genotype {genotype_or_arch!r} is not six op names; pass one op per edge "
                    f"in arch-string order, each one of {', '.join(self.ops)}"
                )
        nodes = ["", "", ""]
        for op, (target, source) in zip(ops, NB201_EDGES, strict=True):
            nodes[target - 1] += _edge(op, source) + "|"
        return "+".join("|" + node for node in nodes)

    def from_nb201_string(self, arch_str: str) -> Architecture:
        """The architecture of this space for a NAS-Bench-201 arch string.

        Args:
            arch_str: An arch string such as ``'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|'
                '+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'`` (one string, split here);
                surrounding whitespace is ignored.

        Raises:
            ValueError: If the string is not in that format; the message shows the format.
        """
        if not isinstance(arch_str, str):
            raise ValueError(
                f"expected a NAS-Bench-201 arch string, got {type(arch_str).__name__}; "
                f"the format is {_NB201_FORMAT}"
            )
        params: dict[str, str] = {}
        nodes = arch_str.strip().split("+")
        if len(nodes) != 3:
            self._bad_string(arch_str, f"it has {len(nodes)} '+'-separated nodes, not 3")
        for target, node in enumerate(nodes, start=1):
            if len(node) < 2 or node[0] != "|" or node[-1] != "|":
                self._bad_string(arch_str, f"node {target} {node!r} is not enclosed in '|'")
            edges = node[1:-1].split("|")
            if len(edges) != target:
                self._bad_string(
                    arch_str, f"node {target} {node!r} has {len(edges)} edges, not {target}"
                )
            for source, edge in enumerate(edges):
                op, sep, given = edge.partition("~")
                if op not in self.ops or not sep or given != str(source):
                    self._bad_string(
                        arch_str,
                        f"edge {edge!r} of node {target} should be {_edge('<op>', source)!r}",
                    )
                params[f"node{target}/in{source}"] = op
        return self.from_params(params)

    @staticmethod
    def _bad_string(arch_str: str, reason: str) -> NoReturn:
        raise ValueError(
            f"invalid NAS-Bench-201 arch string {arch_str!r}: {reason}; the format is "
            f"{_NB201_FORMAT}"
        )


@dataclass(frozen=True)
class DARTSGenotype:
    """The two cells of a DARTS architecture.

    Attributes:
        normal: The four intermediate nodes of the normal cell, each two ``(op, input)``
            edges with distinct inputs in increasing order. Inputs 0 and 1 are the outputs of
            the previous-but-one and the previous cell; input ``k + 2`` is node ``k``.
        reduce: The same for the reduction cell.
    """

    normal: tuple[DARTSNode, ...]
    reduce: tuple[DARTSNode, ...]


def _input_pairs(node: int) -> list[str]:
    """The input pairs intermediate node ``node`` may read, as ``"i,j"`` with ``i < j``."""
    return [f"{i},{j}" for i, j in itertools.combinations(range(node + 2), 2)]


class DARTSSpace(CellSpace):
    """The DARTS space: a normal and a reduction cell, each with four intermediate nodes.

    Intermediate node ``k`` (0 to 3) sums two edges from distinct earlier states: the two
    cell inputs (0 and 1) and nodes ``0`` to ``k - 1`` (2 to ``k + 1``). For each cell
    ``c`` in ``normal`` and ``reduce`` the decisions are:

    * ``{c}/node{k}/inputs`` for ``k`` 1 to 3: the input pair, as one categorical over the
      fixed list of pairs ``"i,j"`` with ``i < j <= k + 1`` (``"0,1"``, ``"0,2"``,
      ``"1,2"``, ...). One categorical per node keeps each name on one distribution, as
      Optuna requires, and makes the two inputs distinct by construction. Node 0 always reads
      ``"0,1"``, so it asks nothing.
    * ``{c}/node{k}/op0`` and ``{c}/node{k}/op1``: the ops on the edges from the lower and
      the higher input, each one of ``none``, ``max_pool_3x3``, ``avg_pool_3x3``,
      ``skip_connect``, ``sep_conv_3x3``, ``sep_conv_5x5``, ``dil_conv_3x3`` and
      ``dil_conv_5x5``.

    The genotype is a :class:`DARTSGenotype`. The network is the paper's evaluation network
    (see :class:`~optuna_nas.nn._cells.DARTSNetwork`): with the searched DARTS (second order)
    cells, ``channels=36`` and ``layers=20`` it has the paper's 3.3M parameters.

    Args:
        channels: Node channels of the first cells; the stem has three times as many, and each
            reduction cell doubles them.
        layers: Number of cells; those at a third and two thirds of the depth reduce.

    References:
        Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search", ICLR 2019.

        Zoph, Vasudevan, Shlens and Le, "Learning Transferable Architectures for Scalable
        Image Recognition", CVPR 2018 (the NASNet cell space DARTS builds on).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.spaces import DARTSSpace

            space = DARTSSpace(channels=8, layers=5)

            def objective(trial):
                arch = space.suggest(trial)
                print(arch)  # darts:normal=|sep_conv_3x3~0|max_pool_3x3~1|+|... reduce=...
                model = arch.build(input_shape=(1, 40), num_classes=10)
                return sum(p.numel() for p in model.parameters())

            optuna.create_study().optimize(objective, n_trials=5)
    """

    name = "darts"
    ops = DARTS_OPS

    scale_keys: ClassVar[dict[str, str]] = {"cells": "layers", "channels": "channels"}

    def __init__(self, channels: int = 16, layers: int = 8) -> None:
        super().__init__(channels=channels, layers=layers)
        self.channels = channels
        self.layers = layers

    def _walk(self, choose: Chooser) -> DARTSGenotype:
        return DARTSGenotype(self._walk_cell(choose, "normal"), self._walk_cell(choose, "reduce"))

    def _walk_cell(self, choose: Chooser, cell: str) -> tuple[DARTSNode, ...]:
        nodes = []
        for k in range(DARTS_NODES):
            prefix = f"{cell}/node{k}"
            pair = choose.categorical(f"{prefix}/inputs", _input_pairs(k)) if k else "0,1"
            first, second = (int(i) for i in pair.split(","))
            op0 = choose.categorical(f"{prefix}/op0", self.ops)
            op1 = choose.categorical(f"{prefix}/op1", self.ops)
            nodes.append(((op0, first), (op1, second)))
        return tuple(nodes)

    def build_genotype(
        self,
        genotype: DARTSGenotype,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> nn.Module:
        dim, shape = spatial_dim(input_shape)
        return DARTSNetwork(
            genotype.normal,
            genotype.reduce,
            dim,
            shape[0],
            num_classes,
            scale_width(self.channels, width_multiplier),
            self.layers,
        )

    def drawing(self, genotype: DARTSGenotype) -> Drawing:
        """The normal and the reduction cell, each with its inputs, nodes and output."""
        settings = f"{self.layers} cells, {self.channels} channels in the first"
        return Drawing("darts cells", darts_panels(genotype), settings)

    def describe(self, genotype: DARTSGenotype) -> str:
        def cell(nodes: tuple[DARTSNode, ...]) -> str:
            return "+".join(
                "|" + "".join(_edge(op, source) + "|" for op, source in node) for node in nodes
            )

        return f"normal={cell(genotype.normal)} reduce={cell(genotype.reduce)}"
