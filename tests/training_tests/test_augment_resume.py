"""Final-training augmentation, epoch checkpoints that resume, and uint8 inputs in fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from optuna_nas import data, spaces, training
from optuna_nas.training import Augment


def test_crop_shifts_each_example_within_the_padding() -> None:
    x = torch.arange(1, 2 * 36 + 1, dtype=torch.float32).view(2, 1, 6, 6)
    out = Augment(crop_padding=1, flip=False)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for original, shifted in zip(x, out, strict=True):
        # Every non-zero value of the crop sits within one pixel of where it was.
        for value in shifted[shifted != 0].tolist():
            r0, c0 = ((original == value).nonzero()[0, 1:]).tolist()
            r1, c1 = ((shifted == value).nonzero()[0, 1:]).tolist()
            assert abs(r0 - r1) <= 1 and abs(c0 - c1) <= 1


def test_flip_and_cutout() -> None:
    x = torch.arange(1, 9, dtype=torch.float32).repeat(64, 1).view(64, 1, 8)
    flipped = Augment(crop_padding=0, flip=True)(x, torch.Generator().manual_seed(1))
    mirrored = (flipped == x.flip(-1)).all(dim=(1, 2))
    kept = (flipped == x).all(dim=(1, 2))
    assert bool((mirrored | kept).all()) and 10 < int(mirrored.sum()) < 54
    images = torch.ones(16, 3, 8, 8)
    cut = Augment(crop_padding=0, flip=False, cutout=4)(images, torch.Generator().manual_seed(2))
    erased = (cut == 0).all(dim=1).sum(dim=(1, 2))
    # A 4x4 square, clipped at the border when its centre is near one.
    assert bool((erased <= 16).all()) and bool((erased >= 4).all()) and int(erased.max()) == 16
    flat = torch.ones(4, 5)
    assert Augment(cutout=2)(flat, torch.Generator()) is flat


def test_augment_rejects_negative_sizes() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        Augment(cutout=-1)


CONV_CELL = {
    name: "nor_conv_3x3"
    for name in ("node1/in0", "node2/in0", "node2/in1", "node3/in0", "node3/in1", "node3/in2")
}


def _model(dataset: data.Dataset) -> torch.nn.Module:
    space = spaces.create("nb201", channels=4, cells_per_stage=1)
    arch = space.from_params(space.sample_params(np.random.RandomState(0), fixed=CONV_CELL))
    torch.manual_seed(0)
    return arch.build(dataset.input_shape, dataset.num_classes)


def test_interrupted_training_resumes_to_the_same_result(
    tmp_path: Path, device: torch.device
) -> None:
    dataset = data.load("digits")
    options = {"epochs": 3, "batch_size": 64, "augment": Augment(cutout=2), "seed": 5}
    whole = training.fit(_model(dataset), dataset, evaluate_test=True, **options, device=device)

    checkpoint = tmp_path / "run.pt"

    class Stop(Exception):
        pass

    model = _model(dataset)
    calls = {"n": 0}
    original = torch.optim.AdamW.step

    def step_then_stop(self, *args, **kwargs):  # interrupts the run in its second epoch
        calls["n"] += 1
        if calls["n"] == 30:
            raise Stop
        return original(self, *args, **kwargs)

    torch.optim.AdamW.step = step_then_stop  # type: ignore[method-assign]
    try:
        with pytest.raises(Stop):
            training.fit(model, dataset, checkpoint=checkpoint, **options, device=device)
    finally:
        torch.optim.AdamW.step = original  # type: ignore[method-assign]
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 0
    resumed = training.fit(
        _model(dataset), dataset, checkpoint=checkpoint, evaluate_test=True, **options
    )
    assert resumed.learning_curve == pytest.approx(whole.learning_curve, abs=1e-6)
    assert resumed.test_accuracy == pytest.approx(whole.test_accuracy, abs=1e-6)
    with pytest.raises(ValueError, match="belongs to another run"):
        training.fit(_model(dataset), dataset, checkpoint=checkpoint, epochs=4, device=device)


def test_fit_trains_on_uint8_images(tmp_path: Path, device: torch.device) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(120) % 2
    x = rng.integers(0, 80, (120, 8, 8, 1), dtype=np.uint8)
    x[y == 1, 2:6, 2:6] += 150  # a bright square marks class 1
    np.savez(tmp_path / "squares.npz", x=x, y=y)
    dataset = data.load(str(tmp_path / "squares.npz"))
    assert dataset.train.x.dtype == torch.uint8
    result = training.fit(
        _model(dataset), dataset, epochs=5, batch_size=16, evaluate_test=True, device=device
    )
    assert result.test_accuracy is not None and result.test_accuracy > 0.9
