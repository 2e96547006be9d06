"""In-memory classification datasets and their low-fidelity views."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a dataset, held in memory as two tensors.

    Images may be held as raw ``uint8`` pixels with the per-channel ``mean`` and ``std``
    that standardise them: a quarter of the memory of float32, so a million 32x32 RGB
    images take 3 GiB. :meth:`decode` turns a batch of them into standardised float32 on
    whatever device the batch is on, so the conversion runs on the GPU during training.

    Equality is identity: comparing tensors element-wise has no single truth value.

    Attributes:
        x: Inputs ``N x *input_shape``: float32, already standardised, or uint8 pixels.
        y: Class labels, int64, ``N``.
        mean: Per-channel mean of uint8 inputs in pixel units (``C``), or ``None``.
        std: Per-channel standard deviation of uint8 inputs in pixel units (``C``), or
            ``None``.
        on_disk: The inputs are memory-mapped from a file, too big to hold in memory;
            training reads them batch by batch and never copies them whole.
    """

    x: torch.Tensor
    y: torch.Tensor
    mean: torch.Tensor | None = None
    std: torch.Tensor | None = None
    on_disk: bool = False

    def __post_init__(self) -> None:
        raw = self.x.dtype == torch.uint8
        if not (self.x.dtype == torch.float32 or raw) or self.y.dtype != torch.int64:
            raise ValueError(
                f"a split needs float32 (or uint8 image) inputs and int64 labels, got "
                f"{self.x.dtype} and {self.y.dtype}"
            )
        if raw != (self.mean is not None and self.std is not None):
            raise ValueError(
                "uint8 inputs need both mean and std to be standardised, and float32 inputs "
                "take neither"
            )
        if self.y.dim() != 1 or self.x.dim() < 2 or len(self.x) != len(self.y):
            raise ValueError(
                f"a split needs inputs N x *input_shape and labels N, got shapes "
                f"{tuple(self.x.shape)} and {tuple(self.y.shape)}"
            )

    def __len__(self) -> int:
        return len(self.y)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """Standardised float32 inputs for a batch ``x`` of this split's inputs.

        Float inputs come back as they are; uint8 pixels are shifted and scaled per
        channel (dimension 1) on ``x``'s device.

        Args:
            x: A batch taken from :attr:`x`, on any device.

        Returns:
            float32, the shape of ``x``.
        """
        if self.mean is None or self.std is None:
            return x
        view = (1, -1) + (1,) * (x.dim() - 2)
        mean = self.mean.to(x.device, non_blocking=True).view(view)
        std = self.std.to(x.device, non_blocking=True).view(view)
        return (x.to(torch.float32) - mean) / std

    def with_tensors(self, x: torch.Tensor, y: torch.Tensor) -> Split:
        """A split of other examples with this split's standardisation."""
        return dataclasses.replace(self, x=x, y=y)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A classification dataset with fixed train, validation and test splits.

    Search scores architectures on ``valid``; ``test`` is for the final report only, and
    :meth:`merged_train` serves retraining the chosen architecture on all labelled data.

    Attributes:
        name: Registry name, as passed to :func:`optuna_nas.data.load`.
        train: Training split.
        valid: Validation split, carved from the training data.
        test: Held-out test split.
        input_shape: Shape of one input without the batch dimension: ``(C, L)`` for
            sequences, ``(C, H, W)`` for images, ``(D,)`` for flat vectors.
        num_classes: Number of classes; labels lie in ``[0, num_classes)``.
        classes: Class names in label order (a folder's class folders, a table's label
            values), or ``None`` where the labels are the names.
        input_mean: Per-channel mean that standardised the inputs, in the units of the
            data as read (pixels 0-255 for images held as uint8), or ``None``. A deployed
            model needs ``(x - input_mean) / input_std`` applied to its raw inputs.
        input_std: Per-channel standard deviation matching ``input_mean``.
    """

    name: str
    train: Split
    valid: Split
    test: Split
    input_shape: tuple[int, ...]
    num_classes: int
    classes: tuple[str, ...] | None = None
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {self.num_classes}")
        if self.classes is not None and len(self.classes) != self.num_classes:
            raise ValueError(
                f"{len(self.classes)} class names for {self.num_classes} classes; give one each"
            )
        splits = {"train": self.train, "valid": self.valid, "test": self.test}
        for split_name, split in splits.items():
            if tuple(split.x.shape[1:]) != self.input_shape:
                raise ValueError(
                    f"{split_name} inputs have shape {tuple(split.x.shape[1:])} per example "
                    f"but input_shape is {self.input_shape}"
                )
            if len(split) and (split.y.min() < 0 or split.y.max() >= self.num_classes):
                raise ValueError(
                    f"{split_name} labels must lie in [0, {self.num_classes}), got "
                    f"[{int(split.y.min())}, {int(split.y.max())}]"
                )

    def with_fidelity(
        self, *, data_fraction: float = 1.0, resolution: int | None = None, seed: int = 0
    ) -> Dataset:
        """A cheaper view of this dataset for low-fidelity architecture evaluation.

        ``data_fraction`` keeps a class-stratified subset of the training split only, so
        scores at every fidelity stay comparable on the same validation and test data.
        ``resolution`` resizes images in all splits with antialiased bilinear interpolation.
        Inputs are not re-standardised: the statistics chosen by :func:`load` remain.

        Args:
            data_fraction: Share of training examples to keep, in ``(0, 1]``. Every class
                keeps at least one example.
            resolution: Side length of the resized images, or ``None`` to keep the size.
            seed: Fixes which training examples are kept.

        Returns:
            A new :class:`Dataset`; ``self`` when nothing is reduced.

        Raises:
            ValueError: If ``data_fraction`` is outside ``(0, 1]``, ``resolution`` is not
                positive, or ``resolution`` is given for inputs that are not ``(C, H, W)``.

        Example:
            .. code-block:: python

                from optuna_nas import data

                full = data.load("digits")
                cheap = full.with_fidelity(data_fraction=0.25, resolution=4)
        """
        check_data_fraction(data_fraction)
        if resolution is not None:
            if len(self.input_shape) != 3:
                raise ValueError(
                    f"resolution needs image inputs of shape (C, H, W); dataset {self.name!r} "
                    f"has input_shape {self.input_shape}"
                )
            if resolution < 1:
                raise ValueError(f"resolution must be a positive integer, got {resolution}")
        if resolution is not None and self.input_shape[1:] == (resolution, resolution):
            resolution = None
        if data_fraction == 1.0 and resolution is None:
            return self

        train = self.train
        if data_fraction < 1.0:
            classes = int((torch.bincount(train.y) > 0).sum())
            size = max(round(data_fraction * len(train)), classes)
            train = take(train, stratified_subset(train.y, size, seed=seed))
        splits = {"train": train, "valid": self.valid, "test": self.test}
        input_shape = self.input_shape
        if resolution is not None:
            splits = {name: _resize(split, resolution) for name, split in splits.items()}
            input_shape = (self.input_shape[0], resolution, resolution)
        return dataclasses.replace(
            self,
            input_shape=input_shape,
            train=splits["train"],
            valid=splits["valid"],
            test=splits["test"],
        )

    def merged_train(self) -> Split:
        """Training and validation examples together, for retraining the final architecture.

        Returns:
            A new :class:`Split`: ``train`` followed by ``valid``; a view without a copy
            when both lie next to each other in one tensor (an image folder, memory-mapped
            or not).
        """
        return Dataset.merge((self.train, self.valid))

    @staticmethod
    def merge(splits: tuple[Split, ...]) -> Split:
        """The examples of ``splits`` one after the other, with the first's statistics."""
        first = splits[0]
        y = torch.cat([s.y for s in splits])
        x, end = first.x, first.x.storage_offset() + first.x.numel()
        adjacent = first.x.is_contiguous()
        for s in splits[1:]:
            adjacent = adjacent and bool(
                s.x.is_contiguous()
                and s.x.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()
                and s.x.storage_offset() == end
            )
            end += s.x.numel()
        if adjacent:
            shape = (len(y), *first.x.shape[1:])
            x = first.x.new_empty(0).set_(
                first.x.untyped_storage(), first.x.storage_offset(), shape, first.x.stride()
            )
        else:
            x = torch.cat([s.x for s in splits])
        return first.with_tensors(x, y)


def check_data_fraction(data_fraction: float) -> None:
    """Raises ``ValueError`` unless ``data_fraction`` lies in ``(0, 1]``."""
    if not 0.0 < data_fraction <= 1.0:
        raise ValueError(f"data_fraction must lie in (0, 1], got {data_fraction}")


def stratified_subset(y: torch.Tensor, size: int, *, seed: int) -> torch.Tensor:
    """Indices of a seed-fixed random subset with the class proportions of ``y``.

    Class quotas are rounded by largest remainder. When ``size`` allows it, every class
    present in ``y`` gets at least one example, even if its proportional share rounds to 0.

    Args:
        y: Labels, int64, ``N``.
        size: Number of indices to draw, in ``[0, N]``.
        seed: Seed of the draw; the same seed gives the same indices.

    Returns:
        Sorted int64 indices into ``y``, on the CPU.
    """
    y = y.cpu()
    quota = _allocate(torch.bincount(y).tolist(), size)
    generator = torch.Generator().manual_seed(seed)
    chosen = [torch.empty(0, dtype=torch.int64)]
    for label, count in enumerate(quota):
        if count:
            members = (y == label).nonzero().flatten()
            chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


def carve_valid(y: torch.Tensor, valid_fraction: float, seed: int) -> torch.Tensor:
    """Indices of the class-stratified validation examples among training labels ``y``.

    Raises:
        ValueError: If ``valid_fraction`` leaves no example on either side.
    """
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie in (0, 1), got {valid_fraction}")
    n_valid = round(valid_fraction * len(y))
    if not 1 <= n_valid < len(y):
        raise ValueError(
            f"valid_fraction={valid_fraction} of {len(y)} training examples leaves "
            f"{n_valid} for validation and {len(y) - n_valid} for training; "
            f"both need at least one"
        )
    return stratified_subset(y, n_valid, seed=seed)


def complement(index: torch.Tensor, size: int) -> torch.Tensor:
    """The sorted indices in ``range(size)`` that ``index`` leaves out."""
    keep = torch.ones(size, dtype=torch.bool)
    keep[index.cpu()] = False
    return keep.nonzero().flatten()


def take(split: Split, index: torch.Tensor) -> Split:
    """The examples of ``split`` at ``index`` (1-D int64), copied."""
    index = index.to(split.x.device)
    return split.with_tensors(split.x.index_select(0, index), split.y.index_select(0, index))


def _allocate(counts: list[int], size: int) -> list[int]:
    """Splits ``size`` over classes in proportion to ``counts``; at least 1 per present class
    when ``size`` covers them all."""
    total = sum(counts)
    if not 0 <= size <= total:
        raise ValueError(f"cannot draw {size} of {total} examples")
    least = 1 if size >= sum(1 for count in counts if count > 0) else 0
    share = [count * size / total for count in counts]
    quota = [max(int(s), min(count, least)) for s, count in zip(share, counts, strict=True)]
    # Flooring leaves a shortfall and the one-per-class minimum an excess; both are settled
    # by the classes whose rounding moved them furthest from their proportional share.
    while sum(quota) < size:
        room = [i for i, count in enumerate(counts) if quota[i] < count]
        quota[max(room, key=lambda i: share[i] - quota[i])] += 1
    while sum(quota) > size:
        room = [i for i in range(len(counts)) if quota[i] > least]
        quota[min(room, key=lambda i: share[i] - quota[i])] -= 1
    return quota


def _resize(split: Split, resolution: int) -> Split:
    def resize(x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(
            x.to(torch.float32),
            size=(resolution, resolution),
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )

    if split.x.dtype != torch.uint8:
        return split.with_tensors(resize(split.x), split.y)
    # uint8 pixels are resized a chunk at a time, so that the float copy stays small.
    x = split.x.new_empty((len(split), split.x.shape[1], resolution, resolution))
    for start in range(0, len(split), _RESIZE_CHUNK):
        chunk = resize(split.x[start : start + _RESIZE_CHUNK])
        x[start : start + _RESIZE_CHUNK] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return split.with_tensors(x, split.y)


_RESIZE_CHUNK = 4096
