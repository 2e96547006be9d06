"""open_storage on PostgreSQL, MySQL and journal files: drivers, options and errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import optuna
import pytest
from sqlalchemy.engine import make_url

from optuna_nas import StorageError, open_storage


def roundtrip(url: str) -> None:
    """A study written through one storage object is read back through a fresh one."""
    name = f"optuna-nas-test-{uuid.uuid4().hex[:12]}"
    study = optuna.create_study(storage=open_storage(url), study_name=name)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    again = optuna.load_study(study_name=name, storage=open_storage(url))
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    optuna.delete_study(study_name=name, storage=open_storage(url))


def test_postgresql_url_without_driver_uses_an_installed_one(postgresql_url: str) -> None:
    parsed = make_url(postgresql_url)
    plain = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    storage = open_storage(plain)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert make_url(storage.url).drivername in ("postgresql+psycopg", "postgresql+psycopg2")
    assert storage.engine_kwargs["pool_pre_ping"] is True
    roundtrip(plain)


@pytest.mark.parametrize("scheme", ["mysql", "mysql+pymysql", "mariadb"])
def test_mysql_urls(mysql_url: str, scheme: str) -> None:
    url = make_url(mysql_url).set(drivername=scheme).render_as_string(hide_password=False)
    storage = open_storage(url)
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert "+" in make_url(storage.url).drivername  # an installed driver is named
    assert storage.engine_kwargs["pool_pre_ping"] is True
    assert storage.engine_kwargs["pool_recycle"] == 3600
    roundtrip(url)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://nas:s3cret@127.0.0.1:1/db",
        "mysql://nas:s3cret@127.0.0.1:1/db",
    ],
)
def test_unreachable_server_names_the_given_url_without_password(url: str) -> None:
    with pytest.raises(StorageError, match="cannot open storage") as info:
        open_storage(url)
    message = str(info.value)
    assert "s3cret" not in message
    assert repr(url.replace("s3cret", "***")) in message  # the URL as given, not rewritten


@pytest.mark.parametrize("form", ["journal", "plain"])
def test_journal_file_persists_across_storage_objects(tmp_path: Path, form: str) -> None:
    path = tmp_path / "study.log"
    url = f"journal://{path}" if form == "journal" else str(path)
    storage = open_storage(url)
    assert isinstance(storage, optuna.storages.JournalStorage)
    roundtrip(url)
    assert path.stat().st_size > 0


def test_relative_journal_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    roundtrip("journal://runs.log")
    assert (tmp_path / "runs.log").is_file()


def test_journal_in_missing_folder_is_refused_and_creates_nothing(tmp_path: Path) -> None:
    url = f"journal://{tmp_path / 'missing' / 'study.log'}"
    with pytest.raises(StorageError, match="does not exist; create it first"):
        open_storage(url)
    assert list(tmp_path.iterdir()) == []


def test_journal_url_naming_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a directory; name a file in it"):
        open_storage(f"journal://{tmp_path}")
    with pytest.raises(StorageError, match="names no file"):
        open_storage("journal://")


def test_journal_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.log"
    path.write_text("not a journal\n")
    with pytest.raises(StorageError, match="is not an Optuna journal"):
        open_storage(str(path))
    assert path.read_text() == "not a journal\n"
