"""Reading an image folder: class folders, splits, parallel decoding, a memory-mapped cache."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from optuna_nas.data._dataset import Split, carve_valid, complement, stratified_subset
from optuna_nas.data._sources import SPLIT_NAMES, TEST_FRACTION, TEST_SEED, DataError, RawData

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
        index = stratified_subset(y, n_test, seed=TEST_SEED)
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
