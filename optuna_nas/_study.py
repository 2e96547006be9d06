"""Architecture-search studies: the objective and the study metadata that makes them resumable.

A study created here remembers its space, dataset and training settings as study user
attributes, so a later process (``optuna-nas train-best``, another worker) can rebuild the
same objective from storage alone, and so that resuming a study with another space is
refused instead of silently mixing incompatible trials.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas import _keys
from optuna_nas._artifacts import STUDY_ARTIFACTS_ATTR
from optuna_nas._compat import trial_id
from optuna_nas.spaces import SearchSpace, create

_logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import torch

    from optuna_nas._compat import ArtifactStore
    from optuna_nas.data import Dataset
    from optuna_nas.spaces import Architecture

STUDY_SPACE_ATTR = _keys.STUDY_SPACE
STUDY_DATASET_ATTR = _keys.STUDY_DATASET
STUDY_TRAINING_ATTR = _keys.STUDY_TRAINING
DRAWING_ATTR = _keys.DRAWING
"""Trial user attribute: artifact id of the architecture's SVG drawing."""
ARTIFACT_ERROR_ATTR = _keys.ARTIFACT_ERROR
"""Trial user attribute: why an artifact of the trial could not be written."""
STUDY_SAMPLER_ATTR = _keys.STUDY_SAMPLER
"""Study user attribute ``{"name": ..., "seed": ...}``: the sampler a worker rebuilds."""
STUDY_PRUNER_ATTR = _keys.STUDY_PRUNER
"""Study user attribute ``{"name": ...}``: the pruner a worker rebuilds."""
BATCH_SIZE_ATTR = _keys.BATCH_SIZE
"""Trial user attribute: the batch size the trial trains with. Set before the trial starts
(e.g. by :class:`optuna_nas.OOMRetryCallback` through ``study.enqueue_trial``), it
overrides the study's batch size for that trial."""


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
    every trial is repeatable. The batch size is ``training.batch_size`` unless the trial
    arrives with its own ``batch_size`` user attribute (a retry that
    :class:`optuna_nas.OOMRetryCallback` queued after running out of memory); either way
    it is stored in that attribute.

    Args:
        space: The search space.
        dataset: The loaded dataset.
        training: Training settings.
        seed: Base seed.
        artifact_store: Optuna artifact store for per-trial files (checkpoints, drawings);
            ``None`` stores none. See :func:`optuna_nas.open_artifact_store`. With a store,
            every trained (or pruned) trial saves its weights there, and the artifact id
            goes to its ``checkpoint_artifact`` user attribute
            (:func:`optuna_nas.training.save_checkpoint`). Before training, every trial
            also stores an SVG drawing of its architecture there, which optuna-dashboard
            previews; its id goes to the ``architecture_svg`` user attribute. If the
            drawing cannot be written (a full disk), the trial fails at once with
            ``fail_reason`` ``artifact_write`` and the study goes on.
        save_checkpoints: Whether trials save their weights to ``artifact_store``.
            Each checkpoint is the size of its model, so a long search of large models
            can fill a disk; ``False`` keeps only the drawings. Must stay ``True`` with
            ``inherit_weights``, whose children read their parents' checkpoints.
        inherit_weights: Warm-start a trial whose sampler recorded a parent (the
            ``optuna_nas:parent`` system attribute or ``parent_trial`` user attribute, as
            :class:`~optuna_nas.samplers.RegularizedEvolutionSampler` writes) from the
            parent's checkpoint: every tensor whose name and shape match is copied, one
            whose shape a mutation changed (a layer's width or kernel) is transferred in
            part (:func:`optuna_nas.training.transfer_weights`), and the counts go to the
            ``inherited_tensors`` and ``partially_inherited_tensors`` user attributes. A
            parent without a usable checkpoint gives a warning and training from scratch.
            Needs ``artifact_store``.
        inherit_lr_scale: Peak learning rate of the tensors a child inherited, as a
            fraction of ``training.lr`` (see ``fit``'s argument of the same name); fresh
            tensors train at ``training.lr``. ``None`` takes
            :data:`optuna_nas.training.INHERIT_LR_SCALE`, chosen by measuring evolution
            children (BENCHMARKS.md).
        inherit_partial: With ``inherit_weights``, also transfer the tensors whose shape
            a mutation changed (``fit``'s argument of the same name); ``False`` copies
            only the tensors whose name and shape match.

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
        inherit_weights: bool = False,
        inherit_lr_scale: float | None = None,
        inherit_partial: bool = True,
        save_checkpoints: bool = True,
    ) -> None:
        from optuna_nas.training import INHERIT_LR_SCALE

        if inherit_lr_scale is None:
            inherit_lr_scale = INHERIT_LR_SCALE
        if not inherit_lr_scale > 0:
            raise ValueError(
                f"inherit_lr_scale must be positive (a fraction of the training lr, 1.0 for "
                f"the full rate), got {inherit_lr_scale!r}"
            )
        if inherit_weights and artifact_store is None:
            raise ValueError(
                "inherit_weights=True needs an artifact store to keep the parents' weights; "
                "pass artifact_store=optuna_nas.open_artifact_store(folder)"
            )
        if inherit_weights and not save_checkpoints:
            raise ValueError(
                "inherit_weights=True reads the parents' checkpoints, which "
                "save_checkpoints=False would not write; keep save_checkpoints=True"
            )
        self.space = space
        self.dataset = dataset
        self.training = training or TrainingConfig()
        self.seed = seed
        self.artifact_store = artifact_store
        self.inherit_weights = inherit_weights
        self.inherit_lr_scale = inherit_lr_scale
        self.inherit_partial = inherit_partial
        self.save_checkpoints = save_checkpoints

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_nas.training import fit, seed_everything

        arch = self.space.suggest(trial)
        if self.artifact_store is not None and not self._save_drawing(trial, arch):
            return math.nan
        seed = self.seed + trial.number
        seed_everything(seed)
        model = self.build_model(arch)
        try:
            result = fit(
                model,
                self.dataset,
                trial=trial,
                epochs=self.training.epochs,
                batch_size=self._batch_size(trial),
                lr=self.training.lr,
                weight_decay=self.training.weight_decay,
                device=self.training.device,
                seed=seed,
                evaluate_test=True,
                init_state_dict=self._parent_weights(trial) if self.inherit_weights else None,
                inherit_lr_scale=self.inherit_lr_scale,
                inherit_partial=self.inherit_partial,
            )
        except optuna.TrialPruned:
            # Samplers may still pick a pruned trial as a parent.
            self._save_weights(trial, model)
            raise
        if math.isfinite(result.valid_accuracy):
            self._save_weights(trial, model)
        return result.valid_accuracy

    def _save_drawing(self, trial: optuna.Trial, arch: Architecture) -> bool:
        """Stores the SVG drawing of ``arch`` as an artifact; ``False`` if that failed.

        The drawing is written before training, so when the store cannot take it (a full
        disk) the trial fails at once with ``fail_reason`` ``artifact_write``, losing no
        training, and the study goes on with the next trial.
        """
        from optuna_nas._artifacts import write_trial_artifact
        from optuna_nas.training import FAIL_REASON_ATTR

        assert self.artifact_store is not None
        try:
            artifact_id = write_trial_artifact(
                trial,
                self.artifact_store,
                arch.to_svg().encode(),
                filename="architecture.svg",
                mimetype="image/svg+xml",
            )
        except OSError as err:
            message = (
                f"cannot write the architecture drawing to the artifact store "
                f"({err.strerror or err}); free space there or choose another --artifact-dir"
            )
            trial.set_user_attr(FAIL_REASON_ATTR, "artifact_write")
            trial.set_user_attr(ARTIFACT_ERROR_ATTR, message)
            _logger.warning("trial %d fails: %s", trial.number, message)
            return False
        trial.set_user_attr(DRAWING_ATTR, artifact_id)
        return True

    def build_model(self, arch: Architecture) -> torch.nn.Module:
        """The network trained for ``arch``; override to wrap or adapt it."""
        return arch.build(self.dataset.input_shape, self.dataset.num_classes)

    def _batch_size(self, trial: optuna.Trial) -> int:
        """The study's batch size, or the trial's own from :data:`BATCH_SIZE_ATTR`."""
        override = _keys.read(trial.user_attrs, BATCH_SIZE_ATTR)
        batch_size = self.training.batch_size
        if isinstance(override, int) and not isinstance(override, bool) and override > 0:
            batch_size = override
        trial.set_user_attr(BATCH_SIZE_ATTR, batch_size)
        return batch_size

    def _parent_weights(self, trial: optuna.Trial) -> dict[str, torch.Tensor] | None:
        from optuna_nas.training import InheritanceWarning, load_checkpoint

        assert self.artifact_store is not None
        # The sampler records the parent after the Trial object cached its attributes.
        frozen = trial.storage.get_trial(trial_id(trial))
        parent = frozen.system_attrs.get(
            _keys.PARENT, _keys.read(frozen.user_attrs, _keys.PARENT_TRIAL)
        )
        if parent is None:
            return None
        if not isinstance(parent, int) or isinstance(parent, bool):
            warnings.warn(
                f"trial {trial.number}: parent {parent!r} is not a trial number; training "
                "from scratch",
                InheritanceWarning,
                stacklevel=2,
            )
            return None
        return load_checkpoint(trial.study, parent, self.artifact_store)

    def _save_weights(self, trial: optuna.Trial, model: torch.nn.Module) -> None:
        from optuna_nas.training import save_checkpoint

        if self.artifact_store is None or not self.save_checkpoints:
            return
        # A checkpoint is a by-product: a full disk or an unreachable store must not fail
        # a trial whose result is already measured.
        try:
            save_checkpoint(trial, model, self.artifact_store)
        except Exception as err:
            warnings.warn(
                f"trial {trial.number}: could not save its checkpoint ({err}); children "
                "cannot inherit its weights",
                stacklevel=2,
            )


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
        storage: Optuna storage or URL; ``None`` keeps the study in memory.
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
        recorded[STUDY_SAMPLER_ATTR] = {"name": sampler, "seed": seed}
        sampler = samplers.create(sampler, seed=seed, space=space)
    if isinstance(pruner, str):
        recorded[STUDY_PRUNER_ATTR] = {"name": pruner}
        pruner = pruners.create(pruner, max_step=training.epochs - 1)
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
        stored_dir = existing.user_attrs.get(STUDY_ARTIFACTS_ATTR)
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
        existing is None or STUDY_ARTIFACTS_ATTR not in existing.user_attrs
    ):
        study.set_user_attr(STUDY_ARTIFACTS_ATTR, str(Path(artifact_dir).expanduser().resolve()))
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
