"""Classification datasets held in memory as tensors, with low-fidelity views for search.

:func:`load` returns a :class:`Dataset` with fixed ``train``, ``valid`` and ``test``
splits. Nothing is downloaded at run time: ``digits`` ships with scikit-learn, ``mnist1d``
is generated locally, and the torchvision datasets are read from a local directory. The
user's own data loads by path: an image folder, a ``.npz`` file or a ``.csv`` table.

Example:
    .. code-block:: python

        from optuna_nas import data

        dataset = data.load("digits", seed=0)
        cheap = dataset.with_fidelity(data_fraction=0.5)
"""

from __future__ import annotations

from optuna_nas.data._dataset import Dataset, Split
from optuna_nas.data._files import is_path
from optuna_nas.data._load import available, load
from optuna_nas.data._sources import DATA_DIR_ENV, DEFAULT_DATA_DIR, DataError

__all__ = [
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DataError",
    "Dataset",
    "Split",
    "available",
    "is_path",
    "load",
]
