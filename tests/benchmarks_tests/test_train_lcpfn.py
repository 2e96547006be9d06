"""The script that trains the learning-curve network: a short run is reproducible and
loads as the pruner loads the shipped file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from optuna_nas.pruners import _pfn

ROOT = Path(__file__).resolve().parents[2]


def _train(out: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "train_lcpfn.py"),
            "--output",
            str(out),
            "--steps",
            "20",
            "--batch-size",
            "16",
            "--bins",
            "32",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_a_short_training_is_reproducible_and_loads_safely(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    _train(a)
    _train(b)
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert first["meta"]["steps"] == 20
    for name, tensor in first["state"].items():
        torch.testing.assert_close(tensor, second["state"][name], msg=name)
    model = _pfn.load(str(a))
    borders = model.borders.numpy()
    assert borders[0] == 0.0 and borders[-1] == 1.0 and np.all(np.diff(borders) > 0)
    # The training moved the weights away from a fresh network's.
    torch.manual_seed(0)
    fresh = _pfn.CurvePFN(model.borders)
    assert not torch.allclose(fresh.head[-1].weight, model.head[-1].weight)
    probs = _pfn.predict(model, [0, 1, 2], [0.3, 0.5, 0.6], 9)
    assert probs.shape == (len(borders) - 1,) and abs(probs.sum() - 1.0) < 1e-9
