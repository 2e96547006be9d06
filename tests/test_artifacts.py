from __future__ import annotations

import io
from pathlib import Path

import optuna
import pytest

from optuna_nas import (
    ArtifactError,
    SafeFileSystemArtifactStore,
    default_artifact_dir,
    open_artifact_store,
)


def test_store_round_trips_through_optuna_artifact_api(tmp_path: Path) -> None:
    store = open_artifact_store(tmp_path / "artifacts")
    study = optuna.create_study()
    trial = study.ask()
    source = tmp_path / "note.txt"
    source.write_text("hello")
    artifact_id = optuna.artifacts.upload_artifact(
        artifact_store=store, file_path=str(source), study_or_trial=trial
    )
    with store.open_reader(artifact_id) as reader:
        assert reader.read() == b"hello"
    assert (tmp_path / "artifacts" / artifact_id).is_file()


@pytest.mark.parametrize(
    "bad", ["../escape", "a/b", "/etc/passwd", "..", "", ".hidden", "a" * 200]
)
def test_ids_that_could_leave_the_folder_are_refused(tmp_path: Path, bad: str) -> None:
    store = SafeFileSystemArtifactStore(tmp_path / "root")
    outside = tmp_path / "escape"
    with pytest.raises(ArtifactError, match="invalid artifact id"):
        store.write(bad, io.BytesIO(b"x"))
    with pytest.raises(ArtifactError):
        store.open_reader(bad)
    with pytest.raises(ArtifactError):
        store.remove(bad)
    assert not outside.exists()


def test_unwritable_folder_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match="cannot create artifact folder"):
        open_artifact_store(blocker / "sub")


def test_default_folder_sits_next_to_a_sqlite_file(tmp_path: Path) -> None:
    db = tmp_path / "runs" / "nas.db"
    assert default_artifact_dir(f"sqlite:///{db}") == tmp_path / "runs" / "optuna_nas_artifacts"
    assert default_artifact_dir("postgresql://u:secret@host/db").name == "optuna_nas_artifacts"


def test_default_folder_sits_next_to_a_journal_file(tmp_path: Path) -> None:
    log = tmp_path / "cluster" / "study.log"
    expected = tmp_path / "cluster" / "optuna_nas_artifacts"
    assert default_artifact_dir(f"journal://{log}") == expected
    assert default_artifact_dir(str(log)) == expected
