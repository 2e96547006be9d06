"""Networks whose layers read a chosen subset of earlier outputs (the multi-branch space)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from optuna_nas.nn import _ops

MERGES = ("sum", "concat")


def _to_common_size(xs: Sequence[torch.Tensor], dim: int) -> list[torch.Tensor]:
    """Average-pools every feature map down to the smallest size, axis by axis, among ``xs``.

    Strides and pooling only ever shrink maps, so the smallest size is what every branch can
    reach; it is found per forward pass, so one network accepts inputs of any size.
    """
    if dim == 0:
        return list(xs)
    target = [min(int(x.shape[2 + axis]) for x in xs) for axis in range(dim)]
    resized = []
    for x in xs:
        if list(x.shape[2:]) == target:
            resized.append(x)
        elif dim == 1:
            resized.append(F.adaptive_avg_pool1d(x, target[0]))
        else:
            resized.append(F.adaptive_avg_pool2d(x, (target[0], target[1])))
    return resized


def _projection(dim: int, c_in: int, c_out: int) -> nn.Module:
    """A linear map between widths: ``nn.Linear`` for features, 1x1 convolution for maps."""
    if dim == 0:
        return nn.Linear(c_in, c_out)
    return nn.Sequential(_ops.conv(dim)(c_in, c_out, 1, bias=False), _ops.batch_norm(dim, c_out))


class MergeInputs(nn.Module):
    """Combines several branches into one tensor by summation or channel concatenation.

    Feature maps are first average-pooled to the smallest spatial size among them. For
    ``sum``, every branch whose width differs from the last branch's (the primary input) is
    projected to that width; for ``concat``, the widths add up.

    Args:
        dim: 0 for ``N x D`` features, 1 for ``N x C x L`` sequences, 2 for ``N x C x H x W``
            images.
        widths: Channels (or features) of each branch, in the order :meth:`forward` gets
            them. The last one is the primary input.
        mode: ``"sum"`` or ``"concat"``.
    """

    def __init__(self, dim: int, widths: Sequence[int], mode: str) -> None:
        super().__init__()
        if mode not in MERGES:
            raise ValueError(f"unknown merge {mode!r}; choose one of {', '.join(MERGES)}")
        if not widths:
            raise ValueError("MergeInputs needs at least one input width")
        self.dim = dim
        self.mode = mode
        primary = widths[-1]
        self.out_width = primary if mode == "sum" else sum(widths)
        self.projections = nn.ModuleList(
            nn.Identity() if mode == "concat" or w == primary else _projection(dim, w, primary)
            for w in widths
        )

    def forward(self, xs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Merges the branches ``xs``, each ``N x C_k (x spatial)``, into ``N x out_width ...``."""
        xs = _to_common_size(xs, self.dim)
        if self.mode == "concat":
            return torch.cat(xs, dim=1)
        projected = [project(x) for project, x in zip(self.projections, xs, strict=True)]
        return torch.stack(projected).sum(dim=0)


class MultiBranchNet(nn.Module):
    """A stack of layers in which each layer reads one or more earlier outputs.

    Outputs are indexed ``-1`` for the stem's output and ``i`` for layer ``i``. A layer with
    a single source reads it directly; a layer with several merges them first.

    Args:
        stem: Turns the raw input into the first feature tensor (output ``-1``).
        layers: One module per layer.
        sources: For each layer, the indices of the outputs it reads, ascending; each index
            is smaller than the layer's own.
        merges: For each layer with several sources, the :class:`MergeInputs` combining
            them; ``None`` for a layer with one source.
        head: Maps the last layer's output to logits.
    """

    def __init__(
        self,
        stem: nn.Module,
        layers: Sequence[nn.Module],
        sources: Sequence[Sequence[int]],
        merges: Sequence[MergeInputs | None],
        head: nn.Module,
    ) -> None:
        super().__init__()
        if not len(layers) == len(sources) == len(merges):
            raise ValueError(
                f"need one sources tuple and one merge per layer, got {len(layers)} layers, "
                f"{len(sources)} sources and {len(merges)} merges"
            )
        for i, (srcs, merge) in enumerate(zip(sources, merges, strict=True)):
            if not srcs or any(not -1 <= j < i for j in srcs):
                raise ValueError(
                    f"layer {i} reads outputs {tuple(srcs)}; each must be in [-1, {i - 1}]"
                )
            if (merge is None) != (len(srcs) == 1):
                raise ValueError(
                    f"layer {i} reads {len(srcs)} outputs; give a merge exactly when it reads "
                    "more than one"
                )
        self.stem = stem
        self.layers = nn.ModuleList(layers)
        self.sources = [tuple(srcs) for srcs in sources]
        self.merges = nn.ModuleList(nn.Identity() if m is None else m for m in merges)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Maps a batch of raw inputs to ``N x num_classes`` logits."""
        # outputs[j + 1] holds output j, so the stem's output (-1) sits at position 0.
        outputs = [self.stem(x)]
        for layer, srcs, merge in zip(self.layers, self.sources, self.merges, strict=True):
            if len(srcs) == 1:
                h = outputs[srcs[0] + 1]
            else:
                h = merge([outputs[j + 1] for j in srcs])
            outputs.append(layer(h))
        return self.head(outputs[-1])
