"""The user's own data: image folders, .npz files and .csv tables, and their bad cases."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from optuna_nas import data, training
from optuna_nas.data import DataError


def make_folder(root: Path, classes: dict[str, int], *, sizes=(10,), gray=False, seed=0) -> Path:
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            side = sizes[i % len(sizes)]
            shape = (side, side) if gray else (side, side, 3)
            pixels = (rng.random(shape) * 100).astype(np.uint8) + 40 * k
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_image_folder_is_held_as_uint8_and_standardised_per_batch(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 20, "b": 20, "c": 20})
    (root / "README.txt").write_text("not an image, skipped")
    dataset = data.load(str(root))
    assert dataset.input_shape == (3, 10, 10)
    assert dataset.classes == ("a", "b", "c")
    assert dataset.train.x.dtype == torch.uint8
    assert len(dataset.test) == 12  # the fixed 20%, stratified
    assert sorted(torch.bincount(dataset.test.y).tolist()) == [4, 4, 4]
    merged = dataset.merged_train()
    decoded = merged.decode(merged.x)
    assert decoded.dtype == torch.float32
    # Statistics of train + valid: zero mean and unit variance per channel there.
    assert decoded.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (decoded.std(dim=(0, 2, 3), correction=0) - 1).abs().max() < 1e-3
    # The test split does not move with the seed.
    assert torch.equal(data.load(str(root), seed=3).test.x, dataset.test.x)


def test_image_folder_with_splits_gray_and_mixed_sizes(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    make_folder(root / "train", {"x": 8, "y": 8}, sizes=(12, 20), gray=True)
    make_folder(root / "valid", {"x": 2, "y": 2}, sizes=(9,), gray=True, seed=1)
    make_folder(root / "test", {"x": 3, "y": 3}, sizes=(30,), gray=True, seed=2)
    with pytest.raises(DataError, match=r"different sizes.*--resolution"):
        data.load(str(root))
    dataset = data.load(str(root), resolution=16)
    assert dataset.input_shape == (1, 16, 16)
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (16, 4, 6)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda r: make_folder(r, {"a": 3, "b": 0}), r"'b' has no images"),
        (lambda r: make_folder(r, {"a": 3}), "at least two class folders"),
        (lambda r: r.mkdir(), "at least two class folders"),
        (lambda r: make_folder(r / "valid", {"a": 1, "b": 1}), "no train/ folder"),
    ],
)
def test_bad_folders_name_the_problem(tmp_path: Path, build, message: str) -> None:
    root = tmp_path / "imgs"
    build(root)
    with pytest.raises(DataError, match=message):
        data.load(str(root))


def test_unreadable_image_is_named(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "imgs", {"a": 3, "b": 3})
    (root / "b" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(DataError, match=r"broken\.png: cannot read the image"):
        data.load(str(root))


def test_npz_plain_and_with_predefined_splits(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "a.npz"
    np.savez(path, x=rng.random((50, 7)), y=np.array(["no", "yes"] * 25))
    dataset = data.load(str(path))
    assert dataset.input_shape == (7,)
    assert dataset.classes == ("no", "yes")
    assert dataset.train.x.dtype == torch.float32
    images = tmp_path / "images.npz"
    np.savez(
        images,
        x_train=rng.integers(0, 255, (30, 8, 8, 3), dtype=np.uint8),
        y_train=np.arange(30) % 3,
        x_valid=rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8),
        y_valid=np.arange(6) % 3,
        x_test=rng.integers(0, 255, (9, 8, 8, 3), dtype=np.uint8),
        y_test=np.arange(9) % 3,
    )
    dataset = data.load(str(images))
    assert dataset.input_shape == (3, 8, 8)  # channels-last arrays are served channels-first
    assert (len(dataset.train), len(dataset.valid), len(dataset.test)) == (30, 6, 9)
    assert dataset.train.x.dtype == torch.uint8


def test_bad_npz_files(tmp_path: Path) -> None:
    path = tmp_path / "a.npz"
    np.savez(path, x=np.zeros((10, 3)))
    with pytest.raises(DataError, match="no 'y' array"):
        data.load(str(path))
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    np.savez(path, x=x, y=np.arange(10) % 2)
    with pytest.raises(DataError, match=r"NaN or infinite inputs in 1 examples.*index 4"):
        data.load(str(path))
    np.savez(path, x=np.ones((10, 3)), y=np.zeros(10))
    with pytest.raises(DataError, match="at least two classes"):
        data.load(str(path))
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        data.load(str(path))


def write_table(path: Path, rows: list[list[object]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_csv_one_hot_encodes_categories(tmp_path: Path) -> None:
    rows: list[list[object]] = [["size", "colour", "label"]]
    rows += [[i * 0.5, ("red", "blue", "green")[i % 3], ("cat", "dog")[i % 2]] for i in range(40)]
    path = write_table(tmp_path / "t.csv", rows)
    dataset = data.load(str(path), target="label")
    assert dataset.input_shape == (4,)  # size + three colours
    assert dataset.classes == ("cat", "dog")
    merged = dataset.merged_train()
    colours = merged.x[:, 1:]
    # Each row has exactly one colour: the standardised one-hot columns keep that pattern.
    assert torch.all((colours > 0).sum(dim=1) == 1)


@pytest.mark.parametrize(
    ("rows", "target", "message"),
    [
        ([["a", "label"], [1, "x"], [2, "y"]], None, "needs --target COLUMN.*a, label"),
        ([["a", "label"], [1, "x"], [2, "y"]], "kind", "has no column 'kind'"),
        (
            [["a", "label"], [1, "x"], [2, ""], [3, "y"]],
            "label",
            "'label' is empty in 1 rows.*line 3",
        ),
        ([["a", "label"], [1, "x"], ["nan", "y"], [3, "y"]], "label", "'a' has NaN.*line 3"),
        ([["a", "label"], [1, "x"], ["", "y"], [3, "y"]], "label", "'a' is empty in 1 rows"),
        ([["a", "label"], [1, "x"], [2, "x"], [3, "x"]], "label", "at least two classes"),
        (
            [["name", "label"]] + [[f"id{i}", i % 2] for i in range(60)],
            "label",
            "'name' is neither numeric nor categorical",
        ),
    ],
)
def test_bad_tables(tmp_path: Path, rows, target, message: str) -> None:
    path = write_table(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match=message):
        data.load(str(path), **({"target": target} if target else {}))


def test_missing_path_and_unknown_kind(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        data.load(str(tmp_path / "nothing.npz"))
    other = tmp_path / "data.txt"
    other.write_text("1,2")
    with pytest.raises(DataError, match="unknown kind of data file"):
        data.load(str(other))
    (tmp_path / "imgs").mkdir()
    with pytest.raises(DataError, match=r"names a column of a \.csv"):
        data.load(str(tmp_path / "imgs"), target="y")


def test_large_folders_are_memory_mapped_with_the_same_splits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTUNA_NAS_CACHE_DIR", str(tmp_path / "cache"))
    root = make_folder(tmp_path / "imgs", {"a": 15, "b": 15, "c": 15})
    in_memory = data.load(str(root), seed=4, stream=False)
    streamed = data.load(str(root), seed=4, stream=True)
    (cache,) = (tmp_path / "cache").glob("*.npy")
    for name in ("train", "valid", "test"):
        a, b = getattr(in_memory, name), getattr(streamed, name)
        assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
        assert not a.on_disk and b.on_disk
        assert torch.equal(a.mean, b.mean) and torch.equal(a.std, b.std)
    # The splits are views of the file: merging train and valid copies nothing.
    merged = streamed.merged_train()
    assert merged.x.data_ptr() == streamed.train.x.data_ptr()
    assert torch.equal(merged.x[len(streamed.train) :], streamed.valid.x)
    # A second load reads the cache instead of decoding again.
    stamp = cache.stat().st_mtime_ns
    again = data.load(str(root), seed=4, stream=True)
    assert cache.stat().st_mtime_ns == stamp and torch.equal(again.train.x, streamed.train.x)
    # Above the memory budget, streaming is chosen without being asked.
    monkeypatch.setenv("OPTUNA_NAS_STREAM_BYTES", "100")
    assert data.load(str(root), seed=4).train.on_disk
    result = training.fit(
        torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(300, 3)), streamed, epochs=2
    )
    assert len(result.learning_curve) == 2


def test_worker_processes_decode_many_images_and_name_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from optuna_nas.data import _folders

    monkeypatch.setattr(_folders, "PARALLEL_DECODE_FROM", 1)
    root = make_folder(tmp_path / "imgs", {"a": 6, "b": 6})
    serial_reference = data.load(str(root))
    assert serial_reference.train.x.dtype == torch.uint8
    whole = (root / "b" / "0.png").read_bytes()
    # A valid header with its pixel data cut short: only decoding (in a worker) finds it.
    (root / "b" / "zz-broken.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"zz-broken\.png: cannot read the image"):
        data.load(str(root))
