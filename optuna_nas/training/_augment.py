"""Batch augmentation on the training device: random crop, flip and cutout."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Augment:
    """The standard final-training augmentation of image classifiers, applied per batch.

    Each example of a batch is shifted by a random crop of the zero-padded input (zero is
    the mean after standardisation), mirrored with probability 1/2, and has a random square
    erased (cutout), all in one vectorised pass on the batch's device. Sequences ``C x L``
    get the same along their length. Flat inputs ``(D,)`` have no spatial axis: they pass
    through unchanged, and :func:`~optuna_nas.training.fit` says so once in the log.

    Args:
        crop_padding: Pixels (or steps) of zero padding before the random crop; ``None``
            for an eighth of the side (4 on 32x32 images), 0 for no crop.
        flip: Mirror along the last axis with probability 1/2.
        cutout: Side of the erased square (or length of the erased span); 0 for none.

    References:
        K. He, X. Zhang, S. Ren and J. Sun. Deep Residual Learning for Image Recognition.
        CVPR 2016 (crop and flip).

        T. DeVries and G. W. Taylor. Improved Regularization of Convolutional Neural
        Networks with Cutout. arXiv:1708.04552, 2017.

    Example:
        .. code-block:: python

            import numpy as np

            from optuna_nas import data, spaces, training

            dataset = data.load("digits")
            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            arch = space.from_params(space.sample_params(np.random.RandomState(0)))
            model = arch.build(dataset.input_shape, dataset.num_classes)
            training.fit(model, dataset, epochs=1, augment=training.Augment(cutout=2))
    """

    crop_padding: int | None = None
    flip: bool = True
    cutout: int = 0

    def __post_init__(self) -> None:
        if (self.crop_padding is not None and self.crop_padding < 0) or self.cutout < 0:
            raise ValueError(
                f"crop_padding and cutout must be non-negative, got {self.crop_padding} and "
                f"{self.cutout}"
            )

    def applies_to(self, input_shape: tuple[int, ...]) -> bool:
        """Whether inputs of this shape (without the batch axis) have an axis to act on."""
        return len(input_shape) in (2, 3)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augments the batch ``x`` (``N x C x L`` or ``N x C x H x W``).

        Args:
            x: Standardised float inputs on any device.
            generator: A CPU generator that draws every random choice, so that a resumed
                run repeats them.

        Returns:
            A new tensor like ``x``; ``x`` itself for flat inputs.
        """
        if x.dim() not in (3, 4) or len(x) == 0:
            return x
        spatial = x.shape[2:]
        n = len(x)
        padding = max(1, min(spatial) // 8) if self.crop_padding is None else self.crop_padding
        if padding:
            x = _random_crop(x, padding, generator)
        if self.flip:
            mirror = (torch.rand(n, generator=generator) < 0.5).to(x.device)
            x = torch.where(mirror.view(n, *([1] * (x.dim() - 1))), x.flip(-1), x)
        if self.cutout:
            # The erased block spans `cutout` positions around a random centre on each axis,
            # clipped at the borders.
            inside = torch.ones((n, *spatial), dtype=torch.bool)
            for axis, size in enumerate(spatial):
                centre = torch.randint(0, size, (n, 1), generator=generator)
                offset = torch.arange(size)[None, :] - centre
                near = (offset >= -(self.cutout // 2)) & (offset < self.cutout - self.cutout // 2)
                shape = [n] + [1] * len(spatial)
                shape[axis + 1] = size
                inside = inside & near.view(shape)
            x = x * (~inside).unsqueeze(1).to(x.device, x.dtype)
        return x


def _random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Each example shifted by up to ``padding`` along every spatial axis, zeros filling in."""
    n = len(x)
    padded = torch.nn.functional.pad(x, (padding,) * (2 * (x.dim() - 2)))
    starts = [torch.randint(0, 2 * padding + 1, (n, 1), generator=generator) for _ in x.shape[2:]]
    grids = [
        (s + torch.arange(size)[None, :]).to(x.device)
        for s, size in zip(starts, x.shape[2:], strict=True)
    ]
    batch = torch.arange(n, device=x.device)
    if x.dim() == 3:  # N x C x L: advanced indices around the channel slice move it last
        return padded[batch[:, None], :, grids[0]].permute(0, 2, 1)
    rows, cols = grids
    return padded[batch[:, None, None], :, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
