"""Readers that turn each named dataset into in-memory train and test tensors.

Nothing here downloads: ``digits`` ships with scikit-learn, ``mnist1d`` is generated
locally, and the torchvision datasets must already be extracted under the data directory.
"""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from optuna_nas.data._dataset import Split, complement, stratified_subset, take

if TYPE_CHECKING:
    import numpy as np

DATA_DIR_ENV = "OPTUNA_NAS_DATA_DIR"
"""Environment variable naming the directory that holds the torchvision datasets."""

DEFAULT_DATA_DIR = Path("~/.cache/optuna_nas/data")
"""Data directory used when neither ``root`` nor :data:`DATA_DIR_ENV` is given."""

TEST_FRACTION = 0.2
"""Share of the examples held out as the test split when the data brings none."""

TEST_SEED = 0
"""Seed of the held-out test split, the same whatever the dataset seed."""
SPLIT_NAMES = ("train", "valid", "test")
"""Names of the predefined splits a folder or an ``.npz`` file may bring."""


class DataError(ValueError):
    """The user's data cannot be used as it is; the message names the file and the fix."""


_DIGITS_TEST_FRACTION = 0.2
_DIGITS_TEST_SEED = 0


@dataclass(frozen=True)
class RawData:
    """A dataset as read, before validation carving and standardisation.

    Its tensors are fresh copies that :func:`optuna_nas.data.load` may modify in place.

    Attributes:
        train: Official training examples, inputs ``N x C x ...`` scaled to ``[0, 1]``
            or as generated.
        test: Official test examples, laid out like ``train``.
        num_classes: Number of classes.
        input_shape: Shape of one example as served; it may flatten ``train.x.shape[1:]``.
        valid: Predefined validation examples, or ``None`` to carve them from ``train``.
        classes: Class names in label order, or ``None`` for the labels themselves.
    """

    train: Split
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    valid: Split | None = None
    classes: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Source:
    """How to read one named dataset.

    Attributes:
        read: Called with the data directory and the accepted options.
        options: Keyword arguments of :func:`optuna_nas.data.load` passed on to ``read``.
    """

    read: Callable[..., RawData]
    options: tuple[str, ...] = ()


def data_dir(root: str | os.PathLike[str] | None) -> Path:
    """The directory to read torchvision datasets from.

    Args:
        root: Explicit directory; ``None`` falls back to ``$OPTUNA_NAS_DATA_DIR``, then to
            ``~/.cache/optuna_nas/data``.

    Returns:
        The directory with ``~`` expanded.
    """
    if root is None:
        root = os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(root).expanduser()


def read_digits(root: Path, *, flat: bool = False) -> RawData:
    """The 8x8 handwritten digits bundled with scikit-learn, 1797 images in 10 classes.

    The test split is a fixed, class-stratified 20% of the images.

    Args:
        root: Unused; the data ships with scikit-learn.
        flat: Serve each image as a 64-vector instead of ``1 x 8 x 8``.

    Returns:
        Pixels scaled from ``0..16`` to ``[0, 1]``.

    References:
        E. Alpaydin and C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine
        Learning Repository, 1998. https://doi.org/10.24432/C50P49
    """
    load_digits = _require("sklearn.datasets", "digits", "scikit-learn").load_digits
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    every = Split(images, torch.tensor(bunch.target, dtype=torch.int64))
    test_index = stratified_subset(
        every.y, round(_DIGITS_TEST_FRACTION * len(every)), seed=_DIGITS_TEST_SEED
    )
    return RawData(
        train=take(every, complement(test_index, len(every))),
        test=take(every, test_index),
        num_classes=10,
        input_shape=(64,) if flat else (1, 8, 8),
    )


def read_mnist1d(root: Path, *, num_samples: int = 5000, data_seed: int = 42) -> RawData:
    """MNIST-1D: digit templates turned into 40-step sequences by random transformations.

    Generated locally with the defaults of the paper; 80% of the examples are the
    training split, the rest the test split.

    Args:
        root: Unused; the data is generated.
        num_samples: Examples to generate, rounded down to a multiple of 10 (one share
            per class).
        data_seed: Seed of the generator, 42 in the paper.

    Returns:
        Sequences ``1 x 40``.

    Raises:
        ValueError: If ``num_samples`` is below 10.

    References:
        S. Greydanus and D. Kobak. Scaling Down Deep Learning with MNIST-1D. ICML 2024.
    """
    if num_samples < 10:
        raise ValueError(f"mnist1d needs num_samples >= 10 (one per class), got {num_samples}")
    x_train, y_train, x_test, y_test = _generate_mnist1d(num_samples, data_seed)
    return RawData(
        train=Split(_sequences(x_train), torch.tensor(y_train, dtype=torch.int64)),
        test=Split(_sequences(x_test), torch.tensor(y_test, dtype=torch.int64)),
        num_classes=10,
        input_shape=(1, x_train.shape[1]),
    )


@functools.lru_cache(maxsize=4)
def _generate_mnist1d(
    num_samples: int, data_seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Runs the generator once per argument set; it takes seconds at the default size."""
    import numpy as np
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    args.seed = data_seed
    # make_dataset seeds the global `random` and NumPy generators; the caller's streams
    # must not change because a dataset was loaded.
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        generated = make_dataset(args)
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
    arrays = (generated["x"], generated["y"], generated["x_test"], generated["y_test"])
    for array in arrays:
        array.flags.writeable = False
    return arrays


def _sequences(x: np.ndarray) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float32).unsqueeze(1)


@dataclass(frozen=True)
class _TorchvisionImages:
    """A torchvision image dataset read from its extracted files, never downloaded."""

    name: str
    class_name: str
    num_classes: int
    homepage: str

    def __call__(self, root: Path) -> RawData:
        datasets = _require("torchvision.datasets", "vision", "torchvision")
        dataset_cls = getattr(datasets, self.class_name)
        directory, files, fetch = self._layout(dataset_cls, root)
        missing = [file for file in files if not (directory / file).is_file()]
        if missing:
            partial = f" (missing: {', '.join(missing)})" if len(missing) < len(files) else ""
            raise FileNotFoundError(
                f"dataset {self.name!r} not found: torchvision expects the files "
                f"{', '.join(files)} in {directory}/{partial}. {fetch} Or pass root= (or set "
                f"${DATA_DIR_ENV}) to a directory that already has them. optuna_nas never "
                f"downloads data at run time."
            )
        try:
            splits = [
                dataset_cls(str(root), train=train, download=False) for train in (True, False)
            ]
        except RuntimeError as err:
            raise RuntimeError(
                f"torchvision could not read dataset {self.name!r} from {directory}/, "
                f"although all files exist; they may be truncated or from another release. "
                f"{fetch} ({err})"
            ) from err
        train, test = (self._to_split(split) for split in splits)
        return RawData(
            train=train,
            test=test,
            num_classes=self.num_classes,
            input_shape=tuple(train.x.shape[1:]),
        )

    def _layout(self, dataset_cls: Any, root: Path) -> tuple[Path, list[str], str]:
        """Where torchvision looks, which files it needs there, and how to obtain them."""
        if hasattr(dataset_cls, "base_folder"):  # CIFAR: pickled batches from one archive
            directory = root / dataset_cls.base_folder
            files = [name for name, _ in dataset_cls.train_list + dataset_cls.test_list]
            files.append(dataset_cls.meta["filename"])
            fetch = (
                f"Download {dataset_cls.filename} from {self.homepage} and extract it in "
                f"{root}/ (it unpacks to {dataset_cls.base_folder}/)."
            )
        else:  # MNIST family: four gunzipped idx files
            directory = root / dataset_cls.__name__ / "raw"
            files = [os.path.splitext(name)[0] for name, _ in dataset_cls.resources]
            fetch = (
                f"Download {', '.join(name for name, _ in dataset_cls.resources)} from "
                f"{self.homepage} and gunzip them into {directory}/."
            )
        return directory, files, fetch

    @staticmethod
    def _to_split(dataset: Any) -> Split:
        data = torch.as_tensor(dataset.data)
        # CIFAR holds N x H x W x C arrays, the MNIST family N x H x W tensors.
        images = data.permute(0, 3, 1, 2) if data.dim() == 4 else data.unsqueeze(1)
        x = images.contiguous().to(torch.float32).div_(255.0)
        return Split(x, torch.as_tensor(dataset.targets, dtype=torch.int64))


SOURCES: dict[str, Source] = {
    "digits": Source(read_digits, options=("flat",)),
    "mnist1d": Source(read_mnist1d, options=("num_samples", "data_seed")),
    "cifar10": Source(
        _TorchvisionImages("cifar10", "CIFAR10", 10, "https://www.cs.toronto.edu/~kriz/cifar.html")
    ),
    "cifar100": Source(
        _TorchvisionImages(
            "cifar100", "CIFAR100", 100, "https://www.cs.toronto.edu/~kriz/cifar.html"
        )
    ),
    "mnist": Source(
        _TorchvisionImages("mnist", "MNIST", 10, "https://ossci-datasets.s3.amazonaws.com/mnist/")
    ),
    "fashion_mnist": Source(
        _TorchvisionImages(
            "fashion_mnist",
            "FashionMNIST",
            10,
            "https://github.com/zalandoresearch/fashion-mnist",
        )
    ),
}
"""Readers by registry name."""


def _require(module: str, extra: str, package: str) -> Any:
    """Imports ``module`` of an optional dependency, or says which extra installs it.

    Raises:
        ValueError: If the package is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ValueError(
            f"this dataset needs {package}, which is not installed; install it with "
            f"pip install 'optuna-nas[{extra}]'"
        ) from None
