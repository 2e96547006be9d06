"""Where a study keeps its files: checkpoints, drawings and other trial artifacts.

Artifacts go through Optuna's artifact API (:func:`optuna.artifacts.upload_artifact`), so
optuna-dashboard lists and previews them and any Optuna artifact store works. The default
is a folder on the local file system, placed next to a SQLite database file or in the
working directory for server databases; :func:`create_study` records the folder in the
study so that workers and ``optuna-nas dashboard`` find the same one.
"""

from __future__ import annotations

import contextlib
import io
import re
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from optuna.artifacts import FileSystemArtifactStore

from optuna_nas import _keys
from optuna_nas._compat import record_artifact

if TYPE_CHECKING:
    import optuna

    from optuna_nas._compat import ArtifactStore

STUDY_ARTIFACTS_ATTR = _keys.STUDY_ARTIFACT_DIR
"""Study user attribute holding the absolute path of the study's artifact folder."""

DEFAULT_ARTIFACT_DIRNAME = "optuna_nas_artifacts"

# The trial system attribute prefix under which optuna.artifacts.upload_artifact records an
# artifact; optuna.artifacts.get_all_artifact_meta and optuna-dashboard read it.

_ARTIFACT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


class ArtifactError(ValueError):
    """An artifact id or folder is unusable (bad id, missing or unwritable folder)."""


def validate_artifact_id(artifact_id: str) -> str:
    """Returns ``artifact_id`` if it names a file directly inside an artifact folder.

    Optuna creates UUIDs; anything with a path separator, ``..``, or other characters
    that could leave the folder is refused.

    Raises:
        ArtifactError: For an id that could escape the artifact folder.
    """
    if (
        not isinstance(artifact_id, str)
        or not _ARTIFACT_ID.fullmatch(artifact_id)
        or ".." in artifact_id
    ):
        raise ArtifactError(
            f"invalid artifact id {artifact_id!r}: ids are letters, digits, '-', '_' and '.' "
            "(Optuna makes UUIDs); paths and '..' are refused"
        )
    return artifact_id


class SafeFileSystemArtifactStore(FileSystemArtifactStore):
    """Optuna's file-system artifact store that refuses ids leaving its folder.

    Every ``open_reader``, ``write`` and ``remove`` checks the id with
    :func:`validate_artifact_id` and that the resolved path stays inside ``base_path``, so a
    crafted id from storage (``../../etc/passwd``) cannot read or write elsewhere.

    Args:
        base_path: The artifact folder; created if missing.
    """

    def __init__(self, base_path: str | Path) -> None:
        root = Path(base_path).expanduser().resolve()
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ArtifactError(
                f"cannot create artifact folder {str(root)!r}: {err.strerror}; pass a "
                "writable folder (--artifact-dir)"
            ) from None
        super().__init__(root)
        self.root = root

    def _checked(self, artifact_id: str) -> str:
        validate_artifact_id(artifact_id)
        path = (self.root / artifact_id).resolve()
        if path.parent != self.root:
            raise ArtifactError(f"artifact id {artifact_id!r} resolves outside {self.root}")
        return artifact_id

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return super().open_reader(self._checked(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        super().write(self._checked(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        super().remove(self._checked(artifact_id))


def default_artifact_dir(storage_url: str | None) -> Path:
    """The artifact folder used when none is given.

    ``sqlite:///runs/nas.db`` keeps artifacts in ``runs/optuna_nas_artifacts``; journal files
    likewise use their own folder; other URLs (PostgreSQL, MySQL) use
    ``./optuna_nas_artifacts``. On several machines, pass a shared folder instead.
    """
    if storage_url:
        from sqlalchemy.engine import make_url

        from optuna_nas._storage import _journal_path

        journal = _journal_path(storage_url)
        if journal is not None:
            return journal.expanduser().resolve().parent / DEFAULT_ARTIFACT_DIRNAME
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(storage_url)
        except ArgumentError:
            parsed = None
        if parsed is not None and parsed.get_backend_name() == "sqlite" and parsed.database:
            return Path(parsed.database).expanduser().resolve().parent / DEFAULT_ARTIFACT_DIRNAME
    return Path.cwd().resolve() / DEFAULT_ARTIFACT_DIRNAME


def open_artifact_store(path: str | Path) -> SafeFileSystemArtifactStore:
    """Opens (creating if needed) the artifact folder at ``path``.

    Raises:
        ArtifactError: If the folder cannot be created.
    """
    return SafeFileSystemArtifactStore(path)


def write_trial_artifact(
    trial: optuna.Trial,
    artifact_store: ArtifactStore,
    content: bytes,
    *,
    filename: str,
    mimetype: str,
) -> str:
    """Stores ``content`` as an artifact of the running ``trial``.

    The artifact is recorded exactly as :func:`optuna.artifacts.upload_artifact` records
    it, so :func:`optuna.artifacts.get_all_artifact_meta` and optuna-dashboard list it, but
    in the safe order: ``upload_artifact`` records the artifact before writing it, so a write
    that fails (a full disk) leaves the trial listing a file that does not exist. Here the
    content is written first; if that fails, whatever was written is removed and nothing is
    recorded.

    Args:
        trial: The running trial that owns the artifact.
        artifact_store: Any Optuna artifact store.
        content: The file's bytes.
        filename: The name optuna-dashboard shows and downloads it as.
        mimetype: Its MIME type, e.g. ``"image/svg+xml"`` (the dashboard previews
            ``image/*``).

    Returns:
        The new artifact id.

    Raises:
        OSError: If the store cannot write the file (e.g. ``ENOSPC``, no space left).
    """
    artifact_id = str(uuid.uuid4())
    try:
        artifact_store.write(artifact_id, io.BytesIO(content))
    except BaseException:
        with contextlib.suppress(Exception):
            artifact_store.remove(artifact_id)
        raise
    record_artifact(trial, artifact_id, filename=filename, mimetype=mimetype)
    return artifact_id
