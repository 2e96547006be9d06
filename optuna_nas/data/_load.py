"""The dataset registry: :func:`load` by name and :func:`available`."""

from __future__ import annotations

import os
from typing import Any

import torch

from optuna_nas.data._dataset import (
    Dataset,
    Split,
    carve_valid,
    check_data_fraction,
    complement,
    take,
)
from optuna_nas.data._files import is_path, read_path
from optuna_nas.data._sources import SOURCES, RawData, data_dir


def available() -> list[str]:
    """The names :func:`load` accepts, sorted."""
    return sorted(SOURCES)


def load(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    data_fraction: float = 1.0,
    resolution: int | None = None,
    **kwargs: Any,
) -> Dataset:
    """Loads a classification dataset into memory with fixed train, valid and test splits.

    ``name`` is a registered name or the path of the user's own data: an image folder, a
    ``.npz`` file or a ``.csv`` table (see "Paths" below).

    The official test split is kept as ``test`` (``digits`` has none; a fixed,
    class-stratified 20% stands in for it). ``valid`` is a class-stratified
    ``valid_fraction`` of the official training split, drawn with ``seed``; the rest is
    ``train``. Inputs are standardised per channel with the mean and standard deviation of
    the official training split (``train`` and ``valid`` together): test data never leak
    into the preprocessing, and the test tensors are the same for every ``seed``.

    Names:
        * ``digits``: 8x8 handwritten digits from scikit-learn, ``(1, 8, 8)``; option
          ``flat=True`` serves ``(64,)``.
        * ``mnist1d``: MNIST-1D generated locally, ``(1, 40)``, 4000 training and 1000 test
          sequences; options ``num_samples`` (default 5000) and ``data_seed`` (default 42)
          are passed to the generator.
        * ``cifar10``, ``cifar100``, ``mnist``, ``fashion_mnist``: torchvision datasets read
          from ``root`` with ``download=False``.

    Paths:
        * An image folder in torchvision's ``ImageFolder`` layout (one subfolder per
          class), optionally split into ``train/``, ``valid/`` and ``test/``. Images are
          held as uint8 and standardised batch by batch on the training device; images of
          several sizes need ``resolution``.
        * A ``.npz`` file with ``x`` and ``y`` arrays, or predefined splits ``x_train``,
          ``y_train``, ``x_valid``, ``y_valid``, ``x_test``, ``y_test``.
        * A ``.csv`` table with a header; option ``target`` names the label column, numeric
          columns are features and text columns with few values are one-hot encoded.

        Without a predefined test split, a fixed, class-stratified 20% is held out; a
        predefined ``valid`` split replaces the ``valid_fraction`` carved from ``train``.

    Args:
        name: One of :func:`available`, or the path of an image folder, ``.npz`` or ``.csv``.
        root: Directory holding the torchvision datasets; defaults to
            ``$OPTUNA_NAS_DATA_DIR``, then ``~/.cache/optuna_nas/data``. The files must be
            there already: nothing is downloaded.
        seed: Fixes the train/valid partition and the ``data_fraction`` subset. The test
            split does not depend on it.
        valid_fraction: Share of the official training split held out as ``valid``, in
            ``(0, 1)``.
        data_fraction: Share of ``train`` to keep, see :meth:`Dataset.with_fidelity`.
        resolution: Resize images to ``resolution x resolution``, see
            :meth:`Dataset.with_fidelity`.
        **kwargs: Options of the named dataset, listed above (``target`` for a table).

    Returns:
        The dataset, float32 inputs and int64 labels on the CPU.

    Raises:
        optuna_nas.data.DataError: For the user's data that cannot be used: a missing file,
            an empty or single class, an unreadable image, missing labels, NaN features;
            the message names the file and the fix.
        ValueError: For an unknown name, an option the dataset does not take, or a fraction
            or resolution out of range; the message says what to fix.
        FileNotFoundError: If a torchvision dataset is not under ``root``; the message names
            the directory and files torchvision expects and where to get them.

    Example:
        .. code-block:: python

            from optuna_nas import data

            dataset = data.load("mnist1d", seed=1)
            print(dataset.input_shape, len(dataset.train), len(dataset.valid))

    References:
        S. Greydanus and D. Kobak. Scaling Down Deep Learning with MNIST-1D. ICML 2024.

        E. Alpaydin and C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine
        Learning Repository, 1998.
    """
    if name not in SOURCES and is_path(name):
        unexpected = sorted(set(kwargs) - {"target", "stream"})
        if unexpected:
            raise ValueError(
                f"invalid argument for dataset {name!r}: {', '.join(unexpected)}; a path "
                "takes only target (for a .csv table) and stream (for an image folder)"
            )
        # A folder's images are resized as they are read, so mixed sizes can be stacked.
        raw = read_path(
            name,
            target=kwargs.get("target"),
            resolution=resolution,
            seed=seed,
            valid_fraction=valid_fraction,
            stream=kwargs.get("stream"),
        )
        return _split(str(name), raw, seed, valid_fraction, data_fraction, resolution)
    try:
        source = SOURCES[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(available())}, or pass the "
            "path of an image folder, a .npz or a .csv"
        ) from None
    unexpected = sorted(set(kwargs) - set(source.options))
    if unexpected:
        accepted = ", ".join(source.options) or "none"
        raise ValueError(
            f"invalid argument for dataset {name!r}: {', '.join(unexpected)}; "
            f"its options are: {accepted}"
        )
    raw = source.read(data_dir(root), **kwargs)
    return _split(name, raw, seed, valid_fraction, data_fraction, resolution)


def _split(
    name: str,
    raw: RawData,
    seed: int,
    valid_fraction: float,
    data_fraction: float,
    resolution: int | None,
) -> Dataset:
    """Carves ``valid`` (unless predefined), standardises and makes the fidelity view."""
    check_data_fraction(data_fraction)
    if raw.valid is not None:
        splits = (raw.train, raw.valid, raw.test)
        (train, valid, test), stats = _standardise((raw.train, raw.valid), splits)
        return _assemble(name, raw, (train, valid, test), stats, seed, data_fraction, resolution)
    # Statistics of the whole official training split keep the test tensors independent
    # of `seed`; test examples never enter them.
    valid_index = carve_valid(raw.train.y, valid_fraction, seed)
    (official, test), stats = _standardise((raw.train,), (raw.train, raw.test))
    train = take(official, complement(valid_index, len(official)))
    valid = take(official, valid_index)
    return _assemble(name, raw, (train, valid, test), stats, seed, data_fraction, resolution)


def _assemble(
    name: str,
    raw: RawData,
    splits: tuple[Split, ...],
    stats: tuple[tuple[float, ...], tuple[float, ...]],
    seed: int,
    data_fraction: float,
    resolution: int | None,
) -> Dataset:
    train, valid, test = (
        split.with_tensors(split.x.reshape(len(split), *raw.input_shape), split.y)
        for split in splits
    )
    dataset = Dataset(
        name=name,
        train=train,
        valid=valid,
        test=test,
        input_shape=raw.input_shape,
        num_classes=raw.num_classes,
        classes=raw.classes,
        input_mean=stats[0],
        input_std=stats[1],
    )
    return dataset.with_fidelity(data_fraction=data_fraction, resolution=resolution, seed=seed)


def _standardise(
    references: tuple[Split, ...], splits: tuple[Split, ...]
) -> tuple[tuple[Split, ...], tuple[tuple[float, ...], tuple[float, ...]]]:
    """Standardises each channel (dimension 1) to zero mean, unit variance on the
    ``references`` together.

    Float inputs are shifted and scaled in place; uint8 pixels stay as they are and get
    the statistics, which :meth:`Split.decode` applies batch by batch.

    Returns:
        The splits, and the per-channel mean and standard deviation in input units.
    """
    if references[0].x.dtype == torch.uint8:
        mean, std = _pixel_statistics([r.x for r in references])
        stats = (tuple(mean.tolist()), tuple(std.tolist()))
        standardised = tuple(
            Split(split.x, split.y, mean=mean, std=std, on_disk=split.on_disk) for split in splits
        )
        return standardised, stats
    reference = references[0] if len(references) == 1 else Dataset.merge(references)
    dims = [0, *range(2, reference.x.dim())]
    mean = reference.x.mean(dim=dims, keepdim=True)
    std = reference.x.std(dim=dims, keepdim=True, correction=0)
    # A channel constant over the training data carries no signal; keep it finite.
    std = torch.where(std > 0, std, torch.ones_like(std))
    for split in splits:
        split.x.sub_(mean).div_(std)
    return splits, (tuple(mean.flatten().tolist()), tuple(std.flatten().tolist()))


def _pixel_statistics(images: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation of uint8 images, in chunks of float64, so
    that memory-mapped images are read once and never copied whole."""
    channels = images[0].shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    squares = torch.zeros_like(total)
    count = 0
    for x in images:
        for start in range(0, len(x), 8192):
            chunk = x[start : start + 8192].to(torch.float64).transpose(0, 1).flatten(1)
            total += chunk.sum(dim=1)
            squares += chunk.square().sum(dim=1)
        count += x.numel() // channels
    count = max(1, count)
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 0, std, torch.ones_like(std))
    return mean.to(torch.float32), std.to(torch.float32)
