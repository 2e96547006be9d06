"""Readers of the user's own data: an image folder, a ``.npz`` file or a ``.csv`` table.

Each reader returns a :class:`~optuna_nas.data._sources.RawData` that
:func:`optuna_nas.data.load` splits and standardises like a built-in dataset. Every problem
with the data raises :class:`DataError`, one line that names the file and the fix, before
anything is trained or stored.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optuna_nas.data._dataset import Split, complement, stratified_subset, take
from optuna_nas.data._folders import read_image_folder
from optuna_nas.data._sources import SPLIT_NAMES, TEST_FRACTION, TEST_SEED, DataError, RawData

MAX_CATEGORIES = 50
"""A text column of a table with at most this many distinct values is one-hot encoded."""


def is_path(name: str) -> bool:
    """Whether a dataset name is meant as a path rather than a registry name."""
    if not name:
        return False
    path = Path(name).expanduser()
    return path.suffix.lower() in (".npz", ".csv") or "/" in name or path.exists()


def read_path(
    path: str | Path,
    *,
    target: str | None = None,
    resolution: int | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    stream: bool | None = None,
) -> RawData:
    """Reads an image folder, a ``.npz`` file or a ``.csv`` table by what ``path`` is.

    Args:
        path: The folder or file.
        target: The label column of a ``.csv`` table; required there, refused elsewhere.
        resolution: Side length that the images of a folder are resized to while they are
            read; needed when their sizes differ.
        seed: Seed of a folder's validation split.
        valid_fraction: Share of a folder's training images held out for validation.
        stream: Memory-map a folder's decoded images (see :func:`read_image_folder`).

    Raises:
        DataError: If the path does not exist, is of an unknown kind, or holds data that
            cannot be used; the message says what to fix.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; pass an image folder, a .npz or a .csv")
    suffix = path.suffix.lower()
    if stream is not None and not path.is_dir():
        raise DataError(f"{path}: stream= applies to image folders only; drop it")
    if target is not None and suffix != ".csv":
        raise DataError(f"{path}: target= (--target) names a column of a .csv table only; drop it")
    if path.is_dir():
        return read_image_folder(
            path, resolution=resolution, seed=seed, valid_fraction=valid_fraction, stream=stream
        )
    if suffix == ".npz":
        return read_npz(path)
    if suffix == ".csv":
        return read_csv(path, target=target)
    raise DataError(
        f"{path}: unknown kind of data file; pass an image folder (one subfolder per class), "
        "a .npz file with x and y arrays, or a .csv table with --target COLUMN"
    )


def read_npz(path: Path) -> RawData:
    """A NumPy ``.npz`` file with ``x`` and ``y`` arrays, or predefined splits.

    Predefined splits are the arrays ``x_train`` and ``y_train`` with, optionally,
    ``x_valid``/``y_valid`` and ``x_test``/``y_test``. Without a test split, a fixed,
    class-stratified :data:`TEST_FRACTION` is held out. ``x`` may be uint8 images
    ``N x H x W``, ``N x C x H x W`` or ``N x H x W x C`` (with ``C`` 1, 3 or 4), or float
    features of any shape ``N x ...``. Labels may be integers or strings; classes are their
    sorted distinct values.

    Raises:
        DataError: For a file that is not an ``.npz`` archive, missing or unequal arrays,
            NaN or infinite inputs, a single class, or a class of ``valid``/``test`` absent
            from ``train``.
    """
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(
            f"{path}: not a readable .npz archive ({err}); write it with np.savez"
        ) from None
    with archive:
        keys = set(archive.files)
        if {"x", "y"} <= keys:
            arrays = {"train": (archive["x"], archive["y"])}
        elif {"x_train", "y_train"} <= keys:
            arrays = {
                name: (archive[f"x_{name}"], archive[f"y_{name}"])
                for name in SPLIT_NAMES
                if {f"x_{name}", f"y_{name}"} <= keys
            }
        else:
            missing = "y" if "x" in keys else "x"
            raise DataError(
                f"{path}: no {missing!r} array (it has: {', '.join(sorted(keys)) or 'none'}); "
                "save inputs and labels with np.savez(path, x=inputs, y=labels), or "
                "x_train/y_train with optional x_valid/y_valid and x_test/y_test"
            )
    labels = np.concatenate([y for _, y in arrays.values()]) if arrays else np.array([])
    classes = _classes(path, labels)
    splits = {}
    for name, (x, y) in arrays.items():
        where = f"{path} ({'x' if len(arrays) == 1 else f'x_{name}'})"
        if len(x) != len(y):
            raise DataError(
                f"{where}: {len(x)} inputs but {len(y)} labels; give one label per input"
            )
        inputs, labels_ = _npz_inputs(x, where), _encode(path, y, classes)
        raw = inputs.dtype == torch.uint8
        splits[name] = _raw_split(inputs, labels_) if raw else Split(inputs, labels_)
    absent = set(range(len(classes))) - set(splits["train"].y.tolist())
    if absent:
        raise DataError(
            f"{path}: class {classes[min(absent)]!r} has no training examples; every class of "
            "valid and test needs some in train"
        )
    return _with_splits(splits, len(classes), classes)


def read_csv(path: Path, *, target: str | None) -> RawData:
    """A ``.csv`` table with a header row: one column of labels, the rest features.

    Numeric columns are features as they are. A text column with at most
    :data:`MAX_CATEGORIES` distinct values (and fewer than the rows) is one-hot encoded,
    its categories sorted. A fixed, class-stratified :data:`TEST_FRACTION` of the rows is
    the test split.

    Args:
        path: The table.
        target: The label column; its distinct values, sorted, are the classes.

    Raises:
        DataError: Without ``target`` or with a column the table lacks; for empty label
            or feature cells, NaN or infinite features, a single class, or a column that is
            neither numeric nor categorical (the message names it).
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: cannot read the table ({err}); save it as UTF-8 CSV") from None
    if len(rows) < 2:
        raise DataError(f"{path}: needs a header row and at least one data row")
    header, body = [name.strip() for name in rows[0]], rows[1:]
    if target is None or target not in header:
        what = "needs --target COLUMN (target=)" if target is None else f"has no column {target!r}"
        raise DataError(
            f"{path}: {what} naming the label column; its columns are: {', '.join(header)}"
        )
    ragged = next((i for i, row in enumerate(body) if len(row) != len(header)), None)
    if ragged is not None:
        raise DataError(
            f"{path}: line {ragged + 2} has {len(body[ragged])} cells but the header has "
            f"{len(header)}; make every row as long as the header"
        )
    columns = {name: [row[i].strip() for row in body] for i, name in enumerate(header)}
    labels = columns.pop(target)
    empty = [i for i, value in enumerate(labels) if value == ""]
    if empty:
        raise DataError(
            f"{path}: the label column {target!r} is empty in {len(empty)} rows (first at "
            f"line {empty[0] + 2}); fill in the labels or drop those rows"
        )
    if not columns:
        raise DataError(f"{path}: no feature columns besides {target!r}; add some")
    features = [_feature(path, name, values) for name, values in columns.items()]
    x = torch.from_numpy(np.concatenate(features, axis=1).astype(np.float32))
    label_array = np.array(labels)
    numeric = _as_float(labels)
    if numeric is not None and np.all(numeric == np.round(numeric)):
        label_array = numeric.astype(np.int64)
    classes = _classes(path, label_array)
    return _with_splits(
        {"train": Split(x, _encode(path, label_array, classes))}, len(classes), classes
    )


def _raw_split(x: torch.Tensor, y: torch.Tensor) -> Split:
    """uint8 pixels with placeholder statistics; :func:`optuna_nas.data.load` sets them."""
    ones = torch.ones(x.shape[1])
    return Split(x, y, mean=ones * 0, std=ones)


def _npz_inputs(x: np.ndarray, where: str) -> torch.Tensor:
    if x.dtype == np.uint8 and x.ndim in (3, 4):
        tensor = torch.from_numpy(np.ascontiguousarray(x))
        if tensor.dim() == 3:
            tensor = tensor.unsqueeze(1)
        elif tensor.shape[-1] in (1, 3, 4) and tensor.shape[1] not in (1, 3, 4):
            tensor = tensor.permute(0, 3, 1, 2).contiguous()
        return tensor
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: inputs of dtype {x.dtype} are not numbers; save numeric arrays")
    if x.ndim < 2:
        raise DataError(f"{where}: inputs need shape N x features (or images), got {x.shape}")
    values = x.astype(np.float32)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        raise DataError(
            f"{where}: NaN or infinite inputs in {int(bad.sum())} examples (first at index "
            f"{int(np.argmax(bad))}); drop or impute them"
        )
    return torch.from_numpy(values)


def _classes(path: Path, labels: np.ndarray) -> tuple[Any, ...]:
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise DataError(f"{path}: labels must be integers or text, not fractions or NaN")
        labels = labels.astype(np.int64)
    classes = tuple(v.item() if hasattr(v, "item") else v for v in np.unique(labels))
    if not classes:
        raise DataError(f"{path}: holds no examples; add some")
    if len(classes) < 2:
        raise DataError(
            f"{path}: every label is {classes[0]!r}; a classifier needs at least two classes"
        )
    return classes


def _encode(path: Path, labels: np.ndarray, classes: tuple[Any, ...]) -> torch.Tensor:
    if labels.dtype.kind == "f":
        labels = labels.astype(np.int64)
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor(
        [index[v.item() if hasattr(v, "item") else v] for v in labels], dtype=torch.int64
    )


def _as_float(values: list[str]) -> np.ndarray | None:
    try:
        return np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return None


def _feature(path: Path, name: str, values: list[str]) -> np.ndarray:
    """One column as features: itself if numeric, one-hot if categorical."""
    empty = [i for i, value in enumerate(values) if value == ""]
    numeric = _as_float(values) if not empty else None
    if numeric is None and empty and _as_float([v for v in values if v]) is not None:
        raise DataError(
            f"{path}: column {name!r} is empty in {len(empty)} rows (first at line "
            f"{empty[0] + 2}); fill in or impute the values, or drop the rows"
        )
    if numeric is not None:
        bad = ~np.isfinite(numeric)
        if bad.any():
            raise DataError(
                f"{path}: column {name!r} has NaN or infinite values in {int(bad.sum())} rows "
                f"(first at line {int(np.argmax(bad)) + 2}); impute them or drop the rows"
            )
        return numeric[:, None]
    categories = sorted(set(values))
    if len(categories) > MAX_CATEGORIES or len(categories) >= max(2, len(values)):
        raise DataError(
            f"{path}: column {name!r} is neither numeric nor categorical ({len(categories)} "
            f"distinct text values in {len(values)} rows, e.g. {values[0]!r}); drop it or "
            "encode it as numbers"
        )
    index = {c: i for i, c in enumerate(categories)}
    one_hot = np.zeros((len(values), len(categories)))
    one_hot[np.arange(len(values)), [index[v] for v in values]] = 1.0
    return one_hot


def _with_splits(splits: dict[str, Split], num_classes: int, classes: tuple[Any, ...]) -> RawData:
    """Holds out the test split when none is predefined."""
    train = splits["train"]
    test = splits.get("test")
    if test is None:
        n_test = max(1, math.floor(TEST_FRACTION * len(train)))
        if len(train) - n_test < 2:
            raise DataError(
                f"{len(train)} examples are too few to hold out a test split; add more"
            )
        index = stratified_subset(train.y, n_test, seed=TEST_SEED)
        train, test = take(train, complement(index, len(train))), take(train, index)
    return RawData(
        train=train,
        test=test,
        valid=splits.get("valid"),
        num_classes=num_classes,
        input_shape=tuple(train.x.shape[1:]),
        classes=tuple(str(c) for c in classes),
    )
