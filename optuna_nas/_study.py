"""Architecture-search studies: the objective and the study metadata that makes them resumable.

A study created here remembers its space, dataset and training settings as study user
attributes, so a later process (``optuna-nas train-best``, another worker) can rebuild the
same objective from storage alone, and so that resuming a study with another space is
refused instead of silently mixing incompatible trials.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas.spaces import SearchSpace, create

if TYPE_CHECKING:
    from optuna.artifacts._protocol import ArtifactStore

    from optuna_nas.data import Dataset

STUDY_SPACE_ATTR = "optuna_nas:space"
STUDY_DATASET_ATTR = "optuna_nas:dataset"
STUDY_TRAINING_ATTR = "optuna_nas:training"


@dataclass(frozen=True)
class TrainingConfig:
    """How each architecture is trained; stored with the study.

    Attributes:
        epochs: Training epochs per trial; trials report steps 0 to ``epochs - 1``, so the
            pruners get ``max_step=epochs - 1``.
        batch_size: Examples per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    """

    epochs: int = 20
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-4
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"invalid training config {self}; epochs and batch_size must be positive, lr "
                "positive and weight_decay non-negative"
            )


@dataclass(frozen=True)
class DatasetConfig:
    """Which data a study trains on; stored with the study.

    Attributes:
        name: A name from :func:`optuna_nas.data.available`.
        options: Keyword arguments of :func:`optuna_nas.data.load` (``seed``, ``root``, ...).
    """

    name: str = "mnist1d"
    options: Mapping[str, Any] = field(default_factory=dict)

    def load(self, **overrides: Any) -> Dataset:
        """Loads the dataset; ``overrides`` replace stored options (e.g. a local ``root``)."""
        from optuna_nas import data

        return data.load(self.name, **{**dict(self.options), **overrides})


class ArchitectureObjective:
    """An Optuna objective that samples, builds and trains one architecture per trial.

    It returns the validation accuracy after the last epoch (maximise it), reports the
    learning curve for pruning, and stores the test accuracy, parameter count and FLOPs
    as user attributes. The test accuracy is recorded for reporting only; nothing in the
    search selects on it. Weight initialisation is seeded with ``seed + trial.number`` so
    every trial is repeatable.

    Args:
        space: The search space.
        dataset: The loaded dataset.
        training: Training settings.
        seed: Base seed.
        artifact_store: Optuna artifact store for per-trial files (checkpoints, drawings);
            ``None`` stores none. See :func:`optuna_nas.open_artifact_store`.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import ArchitectureObjective, data, spaces

            objective = ArchitectureObjective(spaces.create("chain"), data.load("mnist1d"))
            study = optuna.create_study(direction="maximize")
            study.optimize(objective, n_trials=3)
    """

    def __init__(
        self,
        space: SearchSpace,
        dataset: Dataset,
        training: TrainingConfig | None = None,
        seed: int = 0,
        artifact_store: ArtifactStore | None = None,
    ) -> None:
        self.space = space
        self.dataset = dataset
        self.training = training or TrainingConfig()
        self.seed = seed
        self.artifact_store = artifact_store

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_nas.training import fit, seed_everything

        arch = self.space.suggest(trial)
        seed = self.seed + trial.number
        seed_everything(seed)
        model = arch.build(self.dataset.input_shape, self.dataset.num_classes)
        result = fit(
            model,
            self.dataset,
            trial=trial,
            epochs=self.training.epochs,
            batch_size=self.training.batch_size,
            lr=self.training.lr,
            weight_decay=self.training.weight_decay,
            device=self.training.device,
            seed=seed,
            evaluate_test=True,
        )
        return result.valid_accuracy


def create_study(
    *,
    storage: str | optuna.storages.BaseStorage | None,
    study_name: str,
    space: SearchSpace,
    dataset: DatasetConfig,
    training: TrainingConfig,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Creates an architecture-search study, or resumes one with the same space.

    Args:
        storage: Optuna storage or URL; ``None`` keeps the study in memory.
        study_name: Name of the study in the storage.
        space: Search space; stored so that resuming with a different space is refused.
        dataset: Dataset settings, stored for later retraining.
        training: Training settings, stored for later retraining.
        sampler: Optuna sampler (default: Optuna's default).
        pruner: Optuna pruner (default: Optuna's default).

    Raises:
        ValueError: If a study of that name exists with another space, or was not created
            by optuna-nas. Nothing in the storage is changed then.
    """
    if isinstance(storage, str):
        storage = optuna.storages.get_storage(storage)
    existing = _find_study(storage, study_name)
    if existing is not None:
        stored = existing.user_attrs.get(STUDY_SPACE_ATTR)
        if stored is None:
            raise ValueError(
                f"study {study_name!r} exists but was not created by optuna-nas (it has no "
                f"{STUDY_SPACE_ATTR!r} attribute); choose another --study-name"
            )
        if stored != space.spec:
            raise ValueError(
                f"study {study_name!r} was created with space {_spec_text(stored)}, not "
                f"{_spec_text(space.spec)}; resume it with the same space or choose another "
                "--study-name"
            )
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    if existing is None:
        study.set_user_attr(STUDY_SPACE_ATTR, space.spec)
        study.set_user_attr(STUDY_DATASET_ATTR, asdict(dataset))
        study.set_user_attr(STUDY_TRAINING_ATTR, asdict(training))
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
    if STUDY_SPACE_ATTR not in attrs:
        raise ValueError(
            f"study {study.study_name!r} was not created by optuna-nas; it has no "
            f"{STUDY_SPACE_ATTR!r} attribute"
        )
    spec = attrs[STUDY_SPACE_ATTR]
    return (
        create(spec["space"], **spec.get("config", {})),
        DatasetConfig(**attrs.get(STUDY_DATASET_ATTR, {})),
        TrainingConfig(**attrs.get(STUDY_TRAINING_ATTR, {})),
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
