"""Hierarchical search space of Liu et al. (ICLR 2018): primitives, motifs and a cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from optuna_nas.nn._hierarchical import PRIMITIVES, HierarchicalNet
from optuna_nas.spaces._base import Chooser, SearchSpace, scale_width
from optuna_nas.spaces._svg import Drawing, hierarchical_panels

_Rows = tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class HierarchicalGenotype:
    """The cell and the motifs it uses.

    Attributes:
        cell: The level-3 DAG: ``cell[i - 1][j]`` is ``"motif{m}"`` or ``"none"`` for edge
            ``j -> i``.
        motifs: One entry per motif; ``motifs[m][i - 1][j]`` is the primitive on edge
            ``j -> i`` of motif ``m``, and ``None`` stands for a motif the cell does not use.
    """

    cell: _Rows
    motifs: tuple[_Rows | None, ...]


def _walk_dag(choose: Chooser, prefix: str, n_nodes: int, choices: tuple[str, ...]) -> _Rows:
    return tuple(
        tuple(choose.categorical(f"{prefix}/edge_{i}_{j}", choices) for j in range(i))
        for i in range(1, n_nodes)
    )


def _describe_dag(rows: _Rows) -> str:
    return "+".join("|" + "|".join(f"{op}~{j}" for j, op in enumerate(row)) + "|" for row in rows)


class HierarchicalSpace(SearchSpace):
    """Three-level hierarchical space: primitives form motifs, motifs form one cell.

    * Level 1 holds the primitives ``none`` (no edge), ``identity``, ``conv1x1``,
      ``dwconv3x3`` (depthwise), ``sepconv3x3`` (separable), ``maxpool3x3`` and
      ``avgpool3x3``; convolutions are ReLU, convolution, batch norm, and every primitive
      keeps channels and size.
    * Level 2 holds ``num_motifs`` motifs, each a DAG of ``motif_nodes`` nodes whose edge
      ``j -> i`` (``j < i``) is the primitive ``motif{m}/edge_{i}_{j}``.
    * Level 3 is one DAG of ``cell_nodes`` nodes whose edge ``j -> i`` is
      ``cell/edge_{i}_{j}``, one of ``"none"``, ``"motif0"``, ..., so a motif is reused
      wherever the cell names it (with its own weights at each place).

    The cell's edges are asked first, and a motif's edges only when some cell edge names it,
    so an unused motif has no parameters in the trial. In every DAG node 0 is the input,
    the last node the output, and each other node the sum of its incoming edges, or zeros
    when all of them are ``none``. The paper merges by depthwise concatenation instead, whose
    width grows with a node's in-degree and would need a 1x1 convolution to bring it back;
    summing keeps every node at the cell's width, with no extra weights, as the DARTS and
    NAS-Bench-201 cells do.

    The network is a 3-wide convolution stem with ``channels`` channels, then ``cells``
    copies of the cell (each with its own weights) separated by stride-2 separable
    convolutions that double the channels, then global average pooling and a linear
    classifier. It accepts images ``(C, H, W)``, sequences ``(C, L)`` and flat ``(D,)``
    input (seen as a one-channel sequence).

    Args:
        num_motifs: Number of level-2 motifs (the paper uses six).
        motif_nodes: Nodes of each motif, input and output included (four in the paper).
        cell_nodes: Nodes of the cell, input and output included (five in the paper).
        channels: Channels after the stem.
        cells: Number of cells, hence ``cells - 1`` reductions.

    References:
        Liu, Simonyan, Vinyals, Fernando and Kavukcuoglu, "Hierarchical Representations
        for Efficient Architecture Search", ICLR 2018.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.spaces import HierarchicalSpace

            space = HierarchicalSpace(channels=8, cells=2)

            def objective(trial):
                arch = space.suggest(trial)
                return arch.count_params((3, 32, 32), 10)

            optuna.create_study().optimize(objective, n_trials=5)
    """

    name = "hierarchical"

    scale_keys: ClassVar[dict[str, str]] = {"cells": "cells", "channels": "channels"}

    def __init__(
        self,
        num_motifs: int = 4,
        motif_nodes: int = 4,
        cell_nodes: int = 5,
        channels: int = 16,
        cells: int = 3,
    ) -> None:
        for arg, value, low in (
            ("num_motifs", num_motifs, 1),
            ("motif_nodes", motif_nodes, 2),
            ("cell_nodes", cell_nodes, 2),
            ("channels", channels, 1),
            ("cells", cells, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
        super().__init__(
            num_motifs=num_motifs,
            motif_nodes=motif_nodes,
            cell_nodes=cell_nodes,
            channels=channels,
            cells=cells,
        )
        self.num_motifs = num_motifs
        self.motif_nodes = motif_nodes
        self.cell_nodes = cell_nodes
        self.channels = channels
        self.cells = cells

    def _walk(self, choose: Chooser) -> HierarchicalGenotype:
        motif_names = tuple(f"motif{m}" for m in range(self.num_motifs))
        cell = _walk_dag(choose, "cell", self.cell_nodes, ("none", *motif_names))
        used = {op for row in cell for op in row}
        motifs = tuple(
            _walk_dag(choose, name, self.motif_nodes, PRIMITIVES) if name in used else None
            for name in motif_names
        )
        return HierarchicalGenotype(cell, motifs)

    def build_genotype(
        self,
        genotype: HierarchicalGenotype,
        input_shape: tuple[int, ...],
        num_classes: int,
        *,
        width_multiplier: float = 1.0,
    ) -> nn.Module:
        motifs = {f"motif{m}": rows for m, rows in enumerate(genotype.motifs) if rows is not None}
        channels = scale_width(self.channels, width_multiplier)
        return HierarchicalNet(
            input_shape, num_classes, genotype.cell, motifs, channels, self.cells
        )

    def drawing(self, genotype: Any) -> Drawing:
        """The cell, whose edges name motifs, above every motif it uses."""
        settings = f"{self.cells} cells, {self.channels} channels in the first"
        return Drawing("hierarchical cell and motifs", hierarchical_panels(genotype), settings)

    def describe(self, genotype: Any) -> str:
        parts = [f"cell={_describe_dag(genotype.cell)}"]
        parts += [
            f"motif{m}={_describe_dag(rows)}"
            for m, rows in enumerate(genotype.motifs)
            if rows is not None
        ]
        return " ".join(parts)
