"""The dataset registry: :func:`load` by name and :func:`available`."""

from __future__ import annotations

import os
from typing import Any

import torch

from optuna_nas.data._dataset import (
    Dataset,
    Split,
    check_data_fraction,
    complement,
    stratified_subset,
    take,
)
from optuna_nas.data._sources import SOURCES, data_dir


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

    Args:
        name: One of :func:`available`.
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
        **kwargs: Options of the named dataset, listed above.

    Returns:
        The dataset, float32 inputs and int64 labels on the CPU.

    Raises:
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
    try:
        source = SOURCES[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; choose one of: {', '.join(available())}"
        ) from None
    unexpected = sorted(set(kwargs) - set(source.options))
    if unexpected:
        accepted = ", ".join(source.options) or "none"
        raise ValueError(
            f"invalid argument for dataset {name!r}: {', '.join(unexpected)}; "
            f"its options are: {accepted}"
        )
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must lie in (0, 1), got {valid_fraction}")
    check_data_fraction(data_fraction)

    raw = source.read(data_dir(root), **kwargs)
    n_valid = round(valid_fraction * len(raw.train))
    if not 1 <= n_valid < len(raw.train):
        raise ValueError(
            f"valid_fraction={valid_fraction} of {len(raw.train)} training examples leaves "
            f"{n_valid} for validation and {len(raw.train) - n_valid} for training; "
            f"both need at least one"
        )
    # Statistics of the whole official training split keep the test tensors independent
    # of `seed`; test examples never enter them.
    _standardise(raw.train, (raw.train, raw.test))
    valid_index = stratified_subset(raw.train.y, n_valid, seed=seed)
    train = take(raw.train, complement(valid_index, len(raw.train)))
    valid = take(raw.train, valid_index)
    train, valid, test = (
        Split(split.x.reshape(len(split), *raw.input_shape), split.y)
        for split in (train, valid, raw.test)
    )
    dataset = Dataset(
        name=name,
        train=train,
        valid=valid,
        test=test,
        input_shape=raw.input_shape,
        num_classes=raw.num_classes,
    )
    return dataset.with_fidelity(data_fraction=data_fraction, resolution=resolution, seed=seed)


def _standardise(reference: Split, splits: tuple[Split, ...]) -> None:
    """Shifts and scales each channel (dimension 1) in place to zero mean, unit variance
    on ``reference``."""
    dims = [0, *range(2, reference.x.dim())]
    mean = reference.x.mean(dim=dims, keepdim=True)
    std = reference.x.std(dim=dims, keepdim=True, correction=0)
    # A channel constant over the training data carries no signal; keep it finite.
    std = torch.where(std > 0, std, torch.ones_like(std))
    for split in splits:
        split.x.sub_(mean).div_(std)
