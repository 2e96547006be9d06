from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Tests that talk to database servers, start processes or serve HTTP, and tests that run
# a whole search end to end; `make test-fast` leaves both out.
_INTEGRATION = (
    "storage_tests/",
    "dashboard_tests/test_server.py",
    "dashboard_tests/test_trial_artifacts.py",
    "cli_tests/test_worker.py",
    "workers_tests/",
)
_END_TO_END = (
    "examples_tests/",
    "cli_tests/test_cli.py",
    "cli_tests/test_inherit_weights.py",
    "benchmarks_tests/",
    "test_docs.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = Path(str(item.fspath)).relative_to(REPO_ROOT / "tests").as_posix()
        if path.startswith(_INTEGRATION):
            item.add_marker(pytest.mark.integration)
        if path.startswith(_END_TO_END):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the training, data, fidelity, inheritance and one-shot tests compute: CUDA
    wherever a GPU is present, else the CPU (as BoTorch's test base does)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


@pytest.fixture(scope="session")
def nb201_dir() -> Path:
    """The shared NAS-Bench-201 tables; tests that need them skip where they are absent."""
    default = REPO_ROOT.parent / "shared" / "benchmarks" / "nb201"
    path = Path(os.environ.get("OPTUNA_NAS_NB201_DIR", default))
    if not (path / "nb201_cifar10.csv").is_file():
        reason = f"NAS-Bench-201 tables not found at {path}; set OPTUNA_NAS_NB201_DIR"
        if os.environ.get("OPTUNA_NAS_REQUIRE_NB201") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def postgres_refusal() -> str:
    """How the CLI refuses an unreachable PostgreSQL URL: where no driver is installed (a GPU
    image, say), before it tries to connect, with another message."""
    from optuna_nas._storage import _DRIVERS

    if any(importlib.util.find_spec(module) for _, module in _DRIVERS["postgresql"]):
        return "cannot open storage"
    return "no postgresql driver is installed"


# The database servers of the development and CI machines (see README, Development).
DATABASE_URLS = {
    "postgresql": os.environ.get(
        "OPTUNA_NAS_TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mysql": os.environ.get(
        "OPTUNA_NAS_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
    ),
}
_DATABASE_TITLES = {"postgresql": "PostgreSQL", "mysql": "MySQL"}


@functools.cache
def _database_problem(kind: str) -> str | None:
    """Why the test database ``kind`` cannot be used, or ``None`` when it can."""
    from sqlalchemy.engine import make_url

    from optuna_nas import StorageError, open_storage

    url = DATABASE_URLS[kind]
    parsed = make_url(url)
    where = f"{_DATABASE_TITLES[kind]} at {parsed.host}:{parsed.port}"
    try:
        storage = open_storage(url)
    except StorageError as err:
        return f"{where} not reachable: {err}"
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.engine.dispose()
    return None


def database_url(kind: str) -> str:
    """The URL of the test database server ``kind`` (``postgresql`` or ``mysql``).

    Where it is unreachable the test skips and says why; with ``OPTUNA_NAS_REQUIRE_DBS=1``
    (set by ``.ci/run``) it fails instead, so CI cannot pass without running it.
    """
    problem = _database_problem(kind)
    if problem is not None:
        env = f"OPTUNA_NAS_TEST_{kind.upper()}_URL"
        if os.environ.get("OPTUNA_NAS_REQUIRE_DBS") == "1":
            pytest.fail(f"{problem} (OPTUNA_NAS_REQUIRE_DBS=1; start it or set {env})")
        pytest.skip(f"{problem}; start it or set {env}")
    return DATABASE_URLS[kind]


@pytest.fixture
def postgresql_url() -> str:
    """The test PostgreSQL server; tests that share its database use unique study names."""
    return database_url("postgresql")


@pytest.fixture
def mysql_url() -> str:
    """The test MySQL (MariaDB) server; tests that share its database use unique study names."""
    return database_url("mysql")


@pytest.fixture
def single_thread() -> Iterator[None]:
    """One torch thread: tiny networks and tensors only wait on extra threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
