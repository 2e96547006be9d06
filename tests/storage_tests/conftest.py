"""Storages for the shared-study tests: every test runs on each of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from optuna_nas import open_storage

STORAGES = ["sqlite", "postgresql", "mysql", "journal"]


@pytest.fixture(params=STORAGES)
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A SQLite file, the PostgreSQL and MySQL test servers, and a journal file, in turn."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    if request.param == "journal":
        return f"journal://{tmp_path / 'shared.log'}"
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def shared_study(storage_url: str) -> Iterator[tuple[str, str]]:
    """A new maximizing study under a unique name, deleted afterwards."""
    name = f"optuna-nas-test-{uuid.uuid4().hex[:12]}"
    storage = open_storage(storage_url)
    optuna.create_study(storage=storage, study_name=name, direction="maximize")
    yield storage_url, name
    optuna.delete_study(study_name=name, storage=storage)
