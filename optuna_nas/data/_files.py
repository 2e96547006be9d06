"""Readers of the user's own data: an image folder, a ``.npz`` file or a ``.csv`` table.

Each reader returns a :class:`~optuna_nas.data._sources.RawData` that
:func:`optuna_nas.data.load` splits and standardises like a built-in dataset. Every problem
with the data raises :class:`DataError`, one line that names the file and the fix, before
anything is trained or stored.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optuna_nas.data._dataset import Split, carve_valid, complement, stratified_subset, take
from optuna_nas.data._sources import RawData

TEST_FRACTION = 0.2
"""Share of the examples held out as the test split when the data brings none."""

_TEST_SEED = 0
IMAGE_EXTENSIONS = (
    ".bmp",
    ".gif",
    ".jpeg",
    ".jpg",
    ".pgm",
    ".png",
    ".ppm",
    ".tif",
    ".tiff",
    ".webp",
)
"""File suffixes read from an image folder (others, such as a README, are skipped)."""

CACHE_DIR_ENV = "OPTUNA_NAS_CACHE_DIR"
"""Environment variable naming the folder of the decoded-image caches of large folders."""

DEFAULT_CACHE_DIR = Path("~/.cache/optuna_nas/images")
"""Cache folder used when :data:`CACHE_DIR_ENV` is not set."""

STREAM_BYTES_ENV = "OPTUNA_NAS_STREAM_BYTES"
"""Environment variable that overrides :func:`memory_budget` (bytes)."""

PARALLEL_DECODE_FROM = 5000
"""Folders of at least this many images are decoded by DataLoader worker processes."""

SPLIT_NAMES = ("train", "valid", "test")
"""Names of the predefined splits a folder or an ``.npz`` file may bring."""

MAX_CATEGORIES = 50
"""A text column of a table with at most this many distinct values is one-hot encoded."""


class DataError(ValueError):
    """The user's data cannot be used as it is; the message names the file and the fix."""


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


def read_image_folder(
    root: Path,
    *,
    resolution: int | None = None,
    seed: int = 0,
    valid_fraction: float = 0.1,
    stream: bool | None = None,
) -> RawData:
    """Images in torchvision's ``ImageFolder`` layout: one subfolder per class.

    The folder holds the class folders itself, or ``train/`` (required then), ``valid/``
    and ``test/`` folders that each hold them. Without ``test/``, a class-stratified
    :data:`TEST_FRACTION` of the images, fixed for every seed, is the test split; without
    ``valid/``, a class-stratified ``valid_fraction`` of the rest, drawn with ``seed``, is
    the validation split. Images are read with Pillow as RGB, or as one channel when every
    image is grayscale, and kept as uint8.

    A folder whose decoded pixels would take more than :func:`memory_budget` bytes (or
    any folder with ``stream=True``) is decoded once into a ``.npy`` cache under
    :data:`CACHE_DIR_ENV` and memory-mapped: the operating system pages it in as batches
    are drawn, so the dataset need not fit in memory. The splits, their order and every
    pixel are the same either way.

    Args:
        root: The folder.
        resolution: Resize every image to ``resolution x resolution`` while reading;
            ``None`` keeps the size, which must then be the same for every image.
        seed: Seed of the validation split.
        valid_fraction: Share of the training images held out for validation.
        stream: Memory-map the decoded images from a disk cache; ``None`` decides by size.

    Raises:
        DataError: For a folder without class folders, a class folder without images, a
            single class, a class of ``valid/`` or ``test/`` that ``train/`` lacks, an
            unreadable image, or images of several sizes without ``resolution``.
    """
    try:
        import PIL  # noqa: F401
    except ImportError:
        raise DataError(
            f"{root}: reading an image folder needs Pillow; install it with "
            "pip install 'optuna-nas[vision]'"
        ) from None
    layout = {name: root / name for name in SPLIT_NAMES if (root / name).is_dir()}
    if layout and "train" not in layout:
        raise DataError(
            f"{root}: has {'/ and '.join(layout)}/ but no train/ folder; add train/ with one "
            "subfolder per class"
        )
    folders = layout or {"train": root}
    files = {name: _class_files(folder) for name, folder in folders.items()}
    classes = sorted(files["train"])
    if len(classes) < 2:
        only = f" (only {classes[0]!r})" if classes else ""
        raise DataError(
            f"{folders['train']}: a classifier needs at least two class folders{only}; put "
            "each class's images in a subfolder named after the class"
        )
    for name, by_class in files.items():
        unknown = sorted(set(by_class) - set(classes))
        if unknown:
            raise DataError(
                f"{folders[name]}: class folder {unknown[0]!r} is not in {folders['train']}; "
                "every class of valid/ and test/ needs training images"
            )
    listed = {
        name: [(f, classes.index(c)) for c in sorted(by_class) for f in by_class[c]]
        for name, by_class in files.items()
    }
    plan = _plan_splits(listed, seed, valid_fraction)
    every = [f for name in SPLIT_NAMES for f, _ in plan[name]]
    mode = "L" if all(_is_gray(f) for f in every) else "RGB"
    shape = _image_shape(every[0], mode, resolution)
    size = len(every) * math.prod(shape)
    on_disk = bool(stream or (stream is None and size > memory_budget()))
    if on_disk:
        pixels = _cached_pixels(every, mode, resolution, shape, root)
    else:
        pixels = torch.empty((len(every), *shape), dtype=torch.uint8)
        _decode_into(pixels, every, mode, resolution, root)
    splits, start = {}, 0
    for name in SPLIT_NAMES:  # views of one tensor: nothing is copied
        labels = torch.tensor([label for _, label in plan[name]], dtype=torch.int64)
        x = pixels[start : start + len(labels)]
        zeros, ones = torch.zeros(shape[0]), torch.ones(shape[0])
        splits[name] = Split(x, labels, mean=zeros, std=ones, on_disk=on_disk)
        start += len(labels)
    return RawData(
        train=splits["train"],
        valid=splits["valid"],
        test=splits["test"],
        num_classes=len(classes),
        input_shape=shape,
        classes=tuple(classes),
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


def _class_files(folder: Path) -> dict[str, list[Path]]:
    """The image files of each class folder under ``folder``, by class name."""
    by_class = {}
    for entry in sorted(folder.iterdir()):
        if not entry.is_dir() or entry.name.startswith("."):
            continue
        images = sorted(
            f for f in entry.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS
        )
        if not images:
            raise DataError(
                f"{entry}: class folder {entry.name!r} has no images "
                f"({', '.join(IMAGE_EXTENSIONS)}); add images or remove the folder"
            )
        by_class[entry.name] = images
    return by_class


def _is_gray(file: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            return image.mode in ("1", "L", "LA", "I", "I;16", "F")
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"{file}: cannot read the image ({err}); replace or delete it") from None


def _plan_splits(
    listed: dict[str, list[tuple[Path, int]]], seed: int, valid_fraction: float
) -> dict[str, list[tuple[Path, int]]]:
    """The files of each split, carved as :func:`optuna_nas.data.load` carves arrays."""
    plan = dict(listed)
    train = plan["train"]
    if "test" not in plan:
        y = torch.tensor([label for _, label in train])
        n_test = max(1, math.floor(TEST_FRACTION * len(train)))
        if len(train) - n_test < 2:
            raise DataError(
                f"{len(train)} examples are too few to hold out a test split; add more"
            )
        index = stratified_subset(y, n_test, seed=_TEST_SEED)
        plan["test"] = [train[i] for i in index.tolist()]
        train = [train[i] for i in complement(index, len(train)).tolist()]
    if "valid" not in plan:
        y = torch.tensor([label for _, label in train])
        index = carve_valid(y, valid_fraction, seed)
        plan["valid"] = [train[i] for i in index.tolist()]
        train = [train[i] for i in complement(index, len(train)).tolist()]
    plan["train"] = train
    return plan


def _image_shape(file: Path, mode: str, resolution: int | None) -> tuple[int, int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError, ValueError) as err:
        raise DataError(f"{file}: cannot read the image ({err}); replace or delete it") from None
    channels = 1 if mode == "L" else 3
    if resolution is not None:
        return (channels, resolution, resolution)
    return (channels, height, width)


def _decode(file: Path, mode: str, resolution: int | None) -> np.ndarray | str:
    """The pixels ``H x W`` or ``H x W x 3``, or why the file cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as image:
            image = image.convert(mode)
            if resolution is not None and image.size != (resolution, resolution):
                image = image.resize((resolution, resolution), Image.Resampling.BILINEAR)
            return np.array(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as err:
        return f"{file}: cannot read the image ({err}); replace or delete it"


class _Images(torch.utils.data.Dataset):
    """Decodes one image per item, for a DataLoader's worker processes."""

    def __init__(self, files: list[Path], mode: str, resolution: int | None) -> None:
        self.files, self.mode, self.resolution = files, mode, resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Any:
        return _decode(self.files[index], self.mode, self.resolution)


def _decode_into(
    out: torch.Tensor, files: list[Path], mode: str, resolution: int | None, root: Path
) -> None:
    """Decodes ``files`` into ``out`` (``N x C x H x W`` uint8), in worker processes when
    there are many."""
    workers = min(4, os.cpu_count() or 1) if len(files) >= PARALLEL_DECODE_FROM else 0
    loader = torch.utils.data.DataLoader(
        _Images(files, mode, resolution),
        batch_size=None,
        num_workers=workers,
        collate_fn=lambda item: item,
    )
    for i, pixels in enumerate(loader):
        if isinstance(pixels, str):
            raise DataError(pixels)
        if pixels.shape[:2] != tuple(out.shape[2:]):
            raise _size_error(root, [tuple(out.shape[2:]), pixels.shape[:2]])
        tensor = torch.from_numpy(pixels)
        out[i] = tensor.unsqueeze(0) if tensor.dim() == 2 else tensor.permute(2, 0, 1)


def memory_budget() -> int:
    """Bytes of decoded pixels above which an image folder is memory-mapped from disk:
    half the machine's physical memory, or :data:`STREAM_BYTES_ENV` if set."""
    if os.environ.get(STREAM_BYTES_ENV):
        return int(os.environ[STREAM_BYTES_ENV])
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):  # not POSIX
        return 8 * 2**30


def _cached_pixels(
    files: list[Path], mode: str, resolution: int | None, shape: tuple[int, ...], root: Path
) -> torch.Tensor:
    """The decoded images in a memory-mapped ``.npy`` file, decoded on first use."""
    key = hashlib.sha256(
        json.dumps(
            [mode, resolution, [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files]]
        ).encode()
    ).hexdigest()[:24]
    folder = Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()
    path = folder / f"{root.name}-{key}.npy"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial.npy")
        array = np.lib.format.open_memmap(
            partial, mode="w+", dtype=np.uint8, shape=(len(files), *shape)
        )
        _decode_into(torch.from_numpy(array), files, mode, resolution, root)
        array.flush()
        del array
        os.replace(partial, path)
    # Copy-on-write: the pages come from the file, and nothing writes back to it.
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def _size_error(root: Path, sizes: Sequence[Sequence[int]]) -> DataError:
    shown = " and ".join(f"{s[0]}x{s[1]}" for s in sizes[:2])
    return DataError(
        f"{root}: the images have different sizes ({shown}); pass --resolution N "
        "(resolution=N) to resize them all to N x N"
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
        index = stratified_subset(train.y, n_test, seed=_TEST_SEED)
        train, test = take(train, complement(index, len(train))), take(train, index)
    return RawData(
        train=train,
        test=test,
        valid=splits.get("valid"),
        num_classes=num_classes,
        input_shape=tuple(train.x.shape[1:]),
        classes=tuple(str(c) for c in classes),
    )
