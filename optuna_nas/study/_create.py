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
from optuna_nas.study._config import DatasetConfig, ObjectiveConfig, TrainingConfig


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
    objective: ObjectiveConfig | None = None,
    sampler_kwargs: Mapping[str, Any] | None = None,
    pruner_kwargs: Mapping[str, Any] | None = None,
) -> optuna.Study:
    """Creates an architecture-search study, or resumes one with the same settings.

    A sampler or pruner given by name is created with :func:`optuna_nas.samplers.create`
    or :func:`optuna_nas.pruners.create` (``max_step=training.epochs - 1``), and the
    names and seed are stored with the study, so that ``optuna-nas worker`` can rebuild
    them from the storage alone. Sampler and pruner objects are used as given and not
    recorded; workers of such a study need ``--sampler`` and ``--pruner``.

    Resuming a study that already holds trials continues it rather than restarting it: a
    sampler given by name is seeded with :func:`resumed_seed` of ``seed`` and the number
    of trials stored, so it does not propose the first run's architectures again. Every
    stored setting that changes a trial's value (the space, the dataset and its options
    but ``root``, the training settings but ``device``, and ``objective``) must match;
    a mismatch is refused with the setting, the stored value and the given one.

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
        sampler_kwargs: Further arguments of a sampler given by name; stored with it.
        pruner_kwargs: Further arguments of a pruner given by name; stored with it.
        objective: How each trial runs (seed, weight inheritance, checkpoints); stored, so
            that every worker builds the same objective (:func:`objective_settings`).
        artifact_dir: The study's artifact folder (drawings, checkpoints), stored as an
            absolute path in the ``optuna_nas:artifact_dir`` study user attribute so that
            workers and ``optuna-nas dashboard`` find it; recorded if the study has none.

    Raises:
        ValueError: If a study of that name exists with other settings, or was not created
            by optuna-nas, or keeps its artifacts in another folder, or for an unknown
            sampler or pruner name. Nothing in the storage is changed then.
    """
    from optuna_nas import pruners, samplers

    if isinstance(storage, str):
        storage = open_storage(storage)
    existing = _find_study(storage, study_name)
    n_stored = 0 if existing is None else len(existing.get_trials(deepcopy=False))
    recorded: dict[str, dict[str, Any]] = {}
    if isinstance(sampler, str):
        extra = dict(sampler_kwargs or {})
        recorded[_keys.STUDY_SAMPLER] = {"name": sampler, "seed": seed}
        if extra:
            recorded[_keys.STUDY_SAMPLER]["kwargs"] = extra
        run_seed = seed if seed is None or n_stored == 0 else resumed_seed(seed, n_stored)
        sampler = samplers.create(sampler, seed=run_seed, space=space, **extra)
    if isinstance(pruner, str):
        extra = dict(pruner_kwargs or {})
        recorded[_keys.STUDY_PRUNER] = {"name": pruner}
        if extra:
            recorded[_keys.STUDY_PRUNER]["kwargs"] = extra
        pruner = pruners.create(pruner, max_step=training.epochs - 1, **extra)
    if objective is not None:
        recorded[_keys.STUDY_OBJECTIVE] = asdict(objective)
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
        check_resume(existing, dataset, training, objective)
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


def resumed_seed(seed: int, n_trials: int) -> int:
    """The sampler seed of a run that resumes a study holding ``n_trials`` trials.

    Derived from both through :class:`numpy.random.SeedSequence`, so a resumed run neither
    repeats the first run's proposals nor shares its random stream with a fresh run of
    another seed.
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, n_trials]).generate_state(1)[0])


# Settings that change a trial's value: (stored attribute, field, option that sets it).
_RESUME_CHECKS = (
    (_keys.STUDY_DATASET, "name", "--dataset"),
    (_keys.STUDY_TRAINING, "epochs", "--epochs"),
    (_keys.STUDY_TRAINING, "batch_size", "--batch-size"),
    (_keys.STUDY_TRAINING, "lr", "--lr"),
    (_keys.STUDY_TRAINING, "weight_decay", "weight_decay"),
    (_keys.STUDY_OBJECTIVE, "seed", "--seed"),
    (_keys.STUDY_OBJECTIVE, "inherit_weights", "--inherit-weights"),
    (_keys.STUDY_OBJECTIVE, "inherit_lr_scale", "--inherit-lr-scale"),
    (_keys.STUDY_OBJECTIVE, "inherit_partial", "--no-partial-inherit"),
    (_keys.STUDY_OBJECTIVE, "save_checkpoints", "--no-checkpoints"),
)


def check_resume(
    study: optuna.Study,
    dataset: DatasetConfig,
    training: TrainingConfig,
    objective: ObjectiveConfig | None = None,
) -> None:
    """Refuses to resume ``study`` with settings that change a trial's value.

    Compares what the study stored with what is given: the dataset and its options (all
    but ``root``, a local path), the training settings (all but ``device``) and, when both
    sides have it, the objective settings. Settings a study created before they were
    stored are not compared.

    Raises:
        ValueError: Naming the first setting that differs, its stored and its given value.
    """
    given = {
        _keys.STUDY_DATASET: asdict(dataset),
        _keys.STUDY_TRAINING: asdict(training),
        _keys.STUDY_OBJECTIVE: None if objective is None else asdict(objective),
    }
    name = study.study_name
    for attr, field, option in _RESUME_CHECKS:
        stored_group = study.user_attrs.get(attr)
        given_group = given[attr]
        if not isinstance(stored_group, dict) or given_group is None:
            continue
        if field not in stored_group:
            continue
        if stored_group[field] != given_group[field]:
            raise ValueError(
                f"study {name!r} was created with {field}={stored_group[field]!r} "
                f"({option}), not {given_group[field]!r}; resume it with the same setting "
                "or choose another --study-name"
            )
    stored_options = dict((study.user_attrs.get(_keys.STUDY_DATASET) or {}).get("options", {}))
    given_options = dict(dataset.options)
    for key in sorted((set(stored_options) | set(given_options)) - {"root"}):
        if stored_options.get(key) != given_options.get(key):
            option = "--seed" if key == "seed" else f"dataset option {key}"
            raise ValueError(
                f"study {name!r} was created with dataset {key}={stored_options.get(key)!r} "
                f"({option}), not {given_options.get(key)!r}; resume it with the same "
                "setting or choose another --study-name"
            )


def objective_settings(study: optuna.Study) -> ObjectiveConfig:
    """The :class:`ObjectiveConfig` stored by :func:`create_study`.

    A study stored before these settings were recorded gets the defaults, with the seed
    of its sampler.
    """
    stored = study.user_attrs.get(_keys.STUDY_OBJECTIVE)
    if isinstance(stored, dict):
        return ObjectiveConfig(**stored)
    seed = (study.user_attrs.get(_keys.STUDY_SAMPLER) or {}).get("seed") or 0
    return ObjectiveConfig(seed=int(seed))


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
