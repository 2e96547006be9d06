from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def nb201_dir() -> Path | None:
    """The shared NAS-Bench-201 tables, if this machine has them."""
    path = Path(
        os.environ.get("OPTUNA_NAS_NB201_DIR", REPO_ROOT.parent / "shared/benchmarks/nb201")
    )
    return path if (path / "nb201_cifar10.csv").is_file() else None
