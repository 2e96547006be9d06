from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(scope="session")
def nb201_dir() -> Path:
    """The shared NAS-Bench-201 tables; tests that need them skip where they are absent."""
    default = REPO_ROOT.parent / "shared" / "benchmarks" / "nb201"
    path = Path(os.environ.get("OPTUNA_NAS_NB201_DIR", default))
    if not (path / "nb201_cifar10.csv").is_file():
        pytest.skip(f"NAS-Bench-201 tables not found at {path}; set OPTUNA_NAS_NB201_DIR")
    return path


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One torch thread: tiny networks and tensors only wait on extra threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
