"""Creating, resuming and reading architecture-search studies.

A study created here remembers its space, dataset, training settings, sampler and pruner
as study user attributes, so a later process (``optuna-nas train-best``, another worker)
can rebuild the same objective from storage alone, and so that resuming a study with
another space is refused instead of silently mixing incompatible trials.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import optuna

from optuna_nas import _keys
from optuna_nas._storage import open_storage
from optuna_nas.spaces import SearchSpace, create
from optuna_nas.study._config import DatasetConfig, TrainingConfig


def create_study(
    *,
    storage: str | optuna.storages.BaseStorage | None,
    study_name: str,
    space: SearchSpace,
    dataset: DatasetConfig,
    training: TrainingConfig,
    sampler: optuna.samplers.BaseSampler | str | None = None,
    pruner: optuna.pruners.BasePruner | str | None = None,
    seed: int | None = None,
    artifact_dir: str | Path | None = None,
) -> optuna.Study:
    """Creates an architecture-search study, or resumes one with the same space.

    A sampler or pruner given by name is created with :func:`optuna_nas.samplers.create`
    or :func:`optuna_nas.pruners.create` (``max_step=training.epochs - 1``), and the
    names and seed are stored with the study, so that ``optuna-nas worker`` can rebuild
    them from the storage alone. Sampler and pruner objects are used as given and not
    recorded; workers of such a study need ``--sampler`` and ``--pruner``.

    Args:
        storage: Optuna storage, or a URL opened with :func:`optuna_nas.open_storage` (SQLite,
            PostgreSQL, MySQL, journal files; passwords masked in errors); ``None`` keeps
            the study in memory.
        study_name: Name of the study in the storage.
        space: Search space; stored so that resuming with a different space is refused.
        dataset: Dataset settings, stored for later retraining.
        training: Training settings, stored for later retraining.
        sampler: Sampler, or its name for :func:`optuna_nas.samplers.create` (default:
            Optuna's default).
        pruner: Pruner, or its name for :func:`optuna_nas.pruners.create` (default:
            Optuna's default).
        seed: Seed of a sampler given by name; stored with its name.
        artifact_dir: The study's artifact folder (drawings, checkpoints), stored as an
            absolute path in the ``optuna_nas:artifact_dir`` study user attribute so that
            workers and ``optuna-nas dashboard`` find it; recorded if the study has none.

    Raises:
        ValueError: If a study of that name exists with another space, or was not created
            by optuna-nas, or keeps its artifacts in another folder, or for an unknown
            sampler or pruner name. Nothing in the storage is changed then.
    """
    from optuna_nas import pruners, samplers

    recorded: dict[str, dict[str, Any]] = {}
    if isinstance(sampler, str):
        recorded[_keys.STUDY_SAMPLER] = {"name": sampler, "seed": seed}
        sampler = samplers.create(sampler, seed=seed, space=space)
    if isinstance(pruner, str):
        recorded[_keys.STUDY_PRUNER] = {"name": pruner}
        pruner = pruners.create(pruner, max_step=training.epochs - 1)
    if isinstance(storage, str):
        storage = open_storage(storage)
    existing = _find_study(storage, study_name)
    if existing is not None:
        stored = existing.user_attrs.get(_keys.STUDY_SPACE)
        if stored is None:
            raise ValueError(
                f"study {study_name!r} exists but was not created by optuna-nas (it has no "
                f"{_keys.STUDY_SPACE!r} attribute); choose another --study-name"
            )
        if stored != space.spec:
            raise ValueError(
                f"study {study_name!r} was created with space {_spec_text(stored)}, not "
                f"{_spec_text(space.spec)}; resume it with the same space or choose another "
                "--study-name"
            )
        stored_dir = existing.user_attrs.get(_keys.STUDY_ARTIFACT_DIR)
        if artifact_dir is not None and stored_dir is not None:
            if Path(stored_dir) != Path(artifact_dir).expanduser().resolve():
                raise ValueError(
                    f"study {study_name!r} keeps its artifacts in {stored_dir!r}, not "
                    f"{str(artifact_dir)!r}; pass --artifact-dir {stored_dir} or leave it out"
                )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    for key, value in recorded.items():
        if existing is None or key not in existing.user_attrs:
            study.set_user_attr(key, value)
    if artifact_dir is not None and (
        existing is None or _keys.STUDY_ARTIFACT_DIR not in existing.user_attrs
    ):
        folder = str(Path(artifact_dir).expanduser().resolve())
        study.set_user_attr(_keys.STUDY_ARTIFACT_DIR, folder)
    if existing is None:
        study.set_user_attr(_keys.STUDY_SPACE, space.spec)
        study.set_user_attr(_keys.STUDY_DATASET, asdict(dataset))
        study.set_user_attr(_keys.STUDY_TRAINING, asdict(training))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["valid_accuracy"])
    return study


def study_settings(study: optuna.Study) -> tuple[SearchSpace, DatasetConfig, TrainingConfig]:
    """The space, dataset and training settings stored by :func:`create_study`.

    Raises:
        ValueError: If the study was not created by optuna-nas.
    """
    attrs = study.user_attrs
    if _keys.STUDY_SPACE not in attrs:
        raise ValueError(
            f"study {study.study_name!r} was not created by optuna-nas; it has no "
            f"{_keys.STUDY_SPACE!r} attribute"
        )
    spec = attrs[_keys.STUDY_SPACE]
    return (
        create(spec["space"], **spec.get("config", {})),
        DatasetConfig(**attrs.get(_keys.STUDY_DATASET, {})),
        TrainingConfig(**attrs.get(_keys.STUDY_TRAINING, {})),
    )


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The completed trial with the highest finite value.

    Raises:
        ValueError: If no trial has completed yet.
    """
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if t.value is not None and math.isfinite(t.value)
    ]
    if not complete:
        raise ValueError(
            f"study {study.study_name!r} has no completed trial yet; run `optuna-nas search` first"
        )
    return max(complete, key=lambda t: (t.value, -t.number))


def _find_study(
    storage: optuna.storages.BaseStorage | None, study_name: str
) -> optuna.Study | None:
    if storage is None:
        return None
    try:
        storage.get_study_id_from_name(study_name)
    except KeyError:
        return None
    return optuna.load_study(study_name=study_name, storage=storage)


def _spec_text(spec: Mapping[str, Any]) -> str:
    config = spec.get("config") or {}
    return f"{spec.get('space')!r}" + (f" with {dict(config)}" if config else "")
