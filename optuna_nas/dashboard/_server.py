"""Serving studies with optuna-dashboard and the artifact store their trials wrote to."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import optuna

from optuna_nas._artifacts import STUDY_ARTIFACTS_ATTR, open_artifact_store


def find_artifact_dir(
    storage: optuna.storages.BaseStorage, study_name: str | None = None
) -> Path | None:
    """The artifact folder that :func:`optuna_nas.create_study` recorded in the storage.

    Args:
        storage: The storage holding the studies.
        study_name: A study's name; ``None`` looks at every study in the storage.

    Returns:
        The named study's folder, or the one folder that all studies which recorded one
        share; ``None`` if none recorded a folder.

    Raises:
        ValueError: If no study has that name, or (without a name) the studies recorded
            different folders; the message lists them.
    """
    studies = storage.get_all_studies()
    if study_name is not None:
        chosen = [s for s in studies if s.study_name == study_name]
        if not chosen:
            names = ", ".join(s.study_name for s in studies) or "none"
            raise ValueError(f"no study named {study_name!r} in the storage; it holds: {names}")
        studies = chosen
    folders = {
        s.study_name: s.user_attrs[STUDY_ARTIFACTS_ATTR]
        for s in studies
        if isinstance(s.user_attrs.get(STUDY_ARTIFACTS_ATTR), str)
    }
    distinct = sorted(set(folders.values()))
    if len(distinct) > 1:
        listing = "; ".join(f"{name}: {folder}" for name, folder in sorted(folders.items()))
        raise ValueError(
            f"the studies keep their artifacts in different folders ({listing}); choose one "
            "with --study-name or --artifact-dir"
        )
    return Path(distinct[0]) if distinct else None


def run_dashboard(
    storage: str | optuna.storages.BaseStorage,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    artifact_dir: str | Path | None = None,
) -> None:
    """Serves ``storage`` with optuna-dashboard until interrupted.

    Studies, trials, learning curves, user attributes and the custom plots of
    :func:`optuna_nas.dashboard.save_plots` come from the storage; the trials' artifacts
    (architecture drawings, checkpoints) are read from ``artifact_dir`` through
    :class:`optuna_nas.SafeFileSystemArtifactStore`, which refuses artifact ids that would
    leave the folder.

    Args:
        storage: A storage or URL (see :func:`optuna_nas.open_storage`).
        host: Interface to listen on; the default serves this machine only.
        port: TCP port.
        artifact_dir: The artifact folder (see :func:`find_artifact_dir`); ``None`` serves
            no artifacts.

    Raises:
        ImportError: If optuna-dashboard is missing.
        OSError: If the port cannot be bound (e.g. already in use).
    """
    optuna_dashboard = import_optuna_dashboard("optuna-nas dashboard")
    if isinstance(storage, str):
        from optuna_nas._storage import open_storage

        storage = open_storage(storage, create=False, write=False)
    store = None if artifact_dir is None else open_artifact_store(artifact_dir)
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=store)


def import_optuna_dashboard(purpose: str) -> ModuleType:
    """Imports optuna-dashboard, or says how to install it for ``purpose``.

    Its import pulls in gpytorch's linear_operator, which still calls the deprecated
    ``torch.jit.script``; that warning is not the user's concern, so it is silenced here.
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
            import optuna_dashboard
    except ImportError:
        raise ImportError(
            f"{purpose} needs optuna-dashboard; install it with "
            "pip install 'optuna-nas[dashboard]'"
        ) from None
    return optuna_dashboard
