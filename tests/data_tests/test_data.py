from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from optuna_nas import data


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


@pytest.fixture(scope="module")
def mnist1d() -> data.Dataset:
    return data.load("mnist1d")


def _rows(split: data.Split) -> set[bytes]:
    return {row.tobytes() for row in split.x.reshape(len(split), -1).numpy()}


def _assert_same(a: data.Dataset, b: data.Dataset) -> None:
    for name in ("train", "valid", "test"):
        split_a, split_b = getattr(a, name), getattr(b, name)
        assert torch.equal(split_a.x, split_b.x), name
        assert torch.equal(split_a.y, split_b.y), name


def test_available_lists_every_name() -> None:
    assert data.available() == [
        "cifar10",
        "cifar100",
        "digits",
        "fashion_mnist",
        "mnist",
        "mnist1d",
    ]


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(
        ValueError, match=r"unknown dataset 'x'; choose one of: cifar10, .*mnist1d"
    ):
        data.load("x")


def test_unknown_option_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid argument for dataset 'digits': colour"):
        data.load("digits", colour=True)


@pytest.mark.parametrize("valid_fraction", [0.0, 1.0, -0.1, 1e-6])
def test_bad_valid_fraction(valid_fraction: float) -> None:
    with pytest.raises(ValueError, match="valid_fraction"):
        data.load("digits", valid_fraction=valid_fraction)


def test_digits_shapes_and_dtypes(digits: data.Dataset) -> None:
    assert digits.name == "digits"
    assert digits.input_shape == (1, 8, 8)
    assert digits.num_classes == 10
    assert len(digits.test) == 359  # a fixed 20% of 1797
    assert len(digits.valid) == round(0.1 * (1797 - 359))
    assert len(digits.train) + len(digits.valid) + len(digits.test) == 1797
    for split in (digits.train, digits.valid, digits.test):
        assert split.x.dtype == torch.float32
        assert split.y.dtype == torch.int64
        assert split.x.shape[1:] == (1, 8, 8)
        assert torch.bincount(split.y, minlength=10).min() > 0


def test_digits_flat() -> None:
    flat = data.load("digits", flat=True)
    assert flat.input_shape == (64,)
    assert flat.train.x.shape == (len(flat.train), 64)
    assert torch.equal(flat.train.x, data.load("digits").train.x.reshape(-1, 64))


def test_standardised_with_training_statistics(digits: data.Dataset) -> None:
    merged = digits.merged_train().x
    assert merged.mean().abs() < 1e-5
    assert merged.std(correction=0) == pytest.approx(1.0, abs=1e-5)
    # Test data do not enter the statistics, so they are only close to standard.
    assert digits.test.x.mean().abs() > 1e-4


def test_digits_splits_are_disjoint(digits: data.Dataset) -> None:
    train, valid, test = _rows(digits.train), _rows(digits.valid), _rows(digits.test)
    assert not train & test
    assert not valid & test
    assert not train & valid


def test_mnist1d_default_sizes(mnist1d: data.Dataset) -> None:
    assert mnist1d.input_shape == (1, 40)
    assert mnist1d.num_classes == 10
    assert len(mnist1d.train) + len(mnist1d.valid) == 4000
    assert len(mnist1d.valid) == 400
    assert len(mnist1d.test) == 1000
    assert mnist1d.train.x.dtype == torch.float32
    assert mnist1d.test.y.dtype == torch.int64
    assert set(mnist1d.test.y.tolist()) == set(range(10))
    assert not _rows(mnist1d.merged_train()) & _rows(mnist1d.test)


def test_mnist1d_options_and_global_rng_untouched() -> None:
    random.seed(5)
    np.random.seed(5)
    expected = (random.random(), np.random.rand())
    random.seed(5)
    np.random.seed(5)
    small = data.load("mnist1d", num_samples=200, data_seed=7)
    assert (random.random(), np.random.rand()) == expected
    assert len(small.train) + len(small.valid) == 160
    assert len(small.test) == 40
    other = data.load("mnist1d", num_samples=200, data_seed=8)
    assert not torch.equal(small.test.x, other.test.x)
    # Fewer validation examples than classes: the requested size wins over stratification.
    tiny = data.load("mnist1d", num_samples=10)
    assert (len(tiny.train), len(tiny.valid), len(tiny.test)) == (7, 1, 2)
    with pytest.raises(ValueError, match="num_samples >= 10"):
        data.load("mnist1d", num_samples=9)


@pytest.mark.parametrize("name", ["digits", "mnist1d"])
def test_seed_fixes_train_valid_partition_only(name: str) -> None:
    first, again, other = (data.load(name, seed=seed) for seed in (0, 0, 1))
    _assert_same(first, again)
    assert _rows(first.valid) != _rows(other.valid)
    assert _rows(first.merged_train()) == _rows(other.merged_train())
    assert torch.equal(first.test.x, other.test.x)
    assert torch.equal(first.test.y, other.test.y)


def test_merged_train(digits: data.Dataset) -> None:
    merged = digits.merged_train()
    assert len(merged) == len(digits.train) + len(digits.valid)
    assert torch.equal(merged.x[: len(digits.train)], digits.train.x)
    assert torch.equal(merged.y[len(digits.train) :], digits.valid.y)


def test_data_fraction_is_stratified_and_seeded(digits: data.Dataset) -> None:
    quarter = digits.with_fidelity(data_fraction=0.25, seed=3)
    assert len(quarter.train) == round(0.25 * len(digits.train))
    full_counts = torch.bincount(digits.train.y, minlength=10)
    counts = torch.bincount(quarter.train.y, minlength=10)
    assert ((counts - full_counts * 0.25).abs() <= 1).all()
    assert _rows(quarter.train) <= _rows(digits.train)
    assert quarter.valid is digits.valid
    assert quarter.test is digits.test
    _assert_same(quarter, digits.with_fidelity(data_fraction=0.25, seed=3))
    assert _rows(quarter.train) != _rows(digits.with_fidelity(data_fraction=0.25, seed=4).train)
    assert digits.with_fidelity() is digits


def test_data_fraction_keeps_every_class() -> None:
    # Class 2 holds one example in 103, so its proportional share of 10% rounds to zero.
    y = torch.tensor([0] * 51 + [1] * 51 + [2], dtype=torch.int64)
    split = data.Split(torch.randn(len(y), 3), y)
    dataset = data.Dataset("toy", split, split, split, input_shape=(3,), num_classes=3)
    tiny = dataset.with_fidelity(data_fraction=0.1)
    assert len(tiny.train) == 10
    assert torch.bincount(tiny.train.y).tolist() == [5, 4, 1]
    assert len(dataset.with_fidelity(data_fraction=0.001).train) == 3


def test_load_applies_fidelity() -> None:
    cheap = data.load("digits", data_fraction=0.5, resolution=4, seed=2)
    _assert_same(
        cheap, data.load("digits", seed=2).with_fidelity(data_fraction=0.5, resolution=4, seed=2)
    )


@pytest.mark.parametrize("data_fraction", [0.0, 1.5, -1.0])
def test_bad_data_fraction(digits: data.Dataset, data_fraction: float) -> None:
    with pytest.raises(ValueError, match="data_fraction"):
        digits.with_fidelity(data_fraction=data_fraction)
    with pytest.raises(ValueError, match="data_fraction"):
        data.load("digits", data_fraction=data_fraction)


def test_resolution_resizes_every_split(digits: data.Dataset) -> None:
    small = digits.with_fidelity(resolution=4)
    assert small.input_shape == (1, 4, 4)
    for split, original in zip(
        (small.train, small.valid, small.test),
        (digits.train, digits.valid, digits.test),
        strict=True,
    ):
        assert split.x.shape == (len(original), 1, 4, 4)
        assert torch.equal(split.y, original.y)
    expected = torch.nn.functional.interpolate(
        digits.test.x, size=(4, 4), mode="bilinear", antialias=True
    )
    assert torch.equal(small.test.x, expected)
    assert digits.with_fidelity(resolution=8) is digits


def test_resolution_needs_images(mnist1d: data.Dataset) -> None:
    with pytest.raises(ValueError, match=r"needs image inputs of shape \(C, H, W\)"):
        mnist1d.with_fidelity(resolution=8)
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        data.load("digits", flat=True, resolution=4)
    with pytest.raises(ValueError, match="positive"):
        data.load("digits", resolution=0)


def test_missing_cifar10_names_the_expected_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        data.load("cifar10", root=tmp_path)
    message = str(info.value)
    assert f"{tmp_path / 'cifar-10-batches-py'}/" in message
    assert "data_batch_1" in message
    assert "cifar-10-python.tar.gz" in message
    assert "never downloads" in message


def test_root_defaults_to_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "MNIST" / "raw")):
        data.load("mnist")


def _write_idx(path: Path, array: np.ndarray) -> None:
    """Writes an unsigned-byte array in the big-endian idx format of the MNIST files."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


@pytest.mark.parametrize(
    ("name", "folder"), [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")]
)
def test_torchvision_files_are_read(tmp_path: Path, name: str, folder: str) -> None:
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, size in (("train", 100), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (size, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(size) % 10)

    dataset = data.load(name, root=tmp_path, valid_fraction=0.2)

    assert dataset.input_shape == (1, 28, 28)
    assert dataset.num_classes == 10
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (80, 20, 20)
    assert torch.bincount(dataset.valid.y).tolist() == [2] * 10
    assert dataset.merged_train().x.mean().abs() < 1e-5
    assert dataset.test.y.tolist() == [i % 10 for i in range(20)]
    resized = data.load(name, root=tmp_path, valid_fraction=0.2, resolution=14)
    assert resized.test.x.shape == (20, 1, 14, 14)
