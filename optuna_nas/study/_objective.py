"""The ready-made objective: suggest an architecture, build it, fit it.

Everything else a trial may do (draw the architecture, save its weights, start from its
parent's weights) is a small hook the caller passes, so the objective itself stays the
three steps of the data flow and knows no sampler.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import optuna

from optuna_nas import _keys
from optuna_nas._compat import fresh_trial
from optuna_nas.study._config import TrainingConfig

if TYPE_CHECKING:
    import torch

    from optuna_nas._compat import ArtifactStore
    from optuna_nas.data import Dataset
    from optuna_nas.oneshot import EstimateRung
    from optuna_nas.spaces import Architecture, SearchSpace

_logger = logging.getLogger(__name__)


@runtime_checkable
class TrialHook(Protocol):
    """Something an :class:`ArchitectureObjective` does around training a trial.

    A hook implements any of these methods; the objective calls those it finds, in the
    order the hooks were given.

    * ``before_fit(trial, arch) -> bool``: before the network is built; returning
      ``False`` fails the trial at once (its reason is the hook's to record).
    * ``initial_weights(trial) -> dict[str, torch.Tensor] | None``: a state dict the
      network starts from (the first hook that returns one wins).
    * ``after_fit(trial, model, pruned) -> None``: after training, also when the trial
      was pruned (``pruned=True``); not called when the result is not finite.
    """


class DrawingHook:
    """Stores an SVG drawing of each trial's architecture in an artifact store.

    optuna-dashboard previews it; its id goes to the ``optuna_nas:architecture_svg`` user
    attribute. The drawing is written before training, so when the store cannot take it
    (a full disk) the trial fails at once with ``optuna_nas:fail_reason`` =
    ``artifact_write``, losing no training, and the study goes on.

    Args:
        artifact_store: Any Optuna artifact store, e.g. from
            :func:`optuna_nas.open_artifact_store`.
    """

    def __init__(self, artifact_store: ArtifactStore) -> None:
        self.artifact_store = artifact_store

    def before_fit(self, trial: optuna.Trial, arch: Architecture) -> bool:
        from optuna_nas._artifacts import write_trial_artifact

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
            trial.set_user_attr(_keys.FAIL_REASON, "artifact_write")
            trial.set_user_attr(_keys.ARTIFACT_ERROR, message)
            _logger.warning("trial %d fails: %s", trial.number, message)
            return False
        trial.set_user_attr(_keys.DRAWING, artifact_id)
        return True


class CheckpointHook:
    """Saves every trained (or pruned) trial's weights to an artifact store.

    The artifact id goes to the ``optuna_nas:checkpoint_artifact`` user attribute
    (:func:`optuna_nas.training.save_checkpoint`). A checkpoint is a by-product: one that
    cannot be written (a full disk) gives a warning and the measured trial is kept.

    Args:
        artifact_store: Any Optuna artifact store.
    """

    def __init__(self, artifact_store: ArtifactStore) -> None:
        self.artifact_store = artifact_store

    def after_fit(self, trial: optuna.Trial, model: torch.nn.Module, pruned: bool) -> None:
        from optuna_nas.training import save_checkpoint

        try:
            save_checkpoint(trial, model, self.artifact_store)
        except Exception as err:
            warnings.warn(
                f"trial {trial.number}: could not save its checkpoint ({err}); children "
                "cannot inherit its weights",
                stacklevel=2,
            )


class InheritanceHook:
    """Starts a child trial from its parent's saved weights.

    A sampler that records a parent (the ``optuna_nas:parent`` system attribute, as
    :class:`~optuna_nas.samplers.RegularizedEvolutionSampler` writes) makes the trial a
    child; its parent's checkpoint (saved by a :class:`CheckpointHook`) is loaded. A parent
    without a usable checkpoint gives an :class:`~optuna_nas.training.InheritanceWarning`
    and training from scratch.

    Args:
        artifact_store: The store the parents' checkpoints are in.
    """

    def __init__(self, artifact_store: ArtifactStore) -> None:
        self.artifact_store = artifact_store

    def initial_weights(self, trial: optuna.Trial) -> dict[str, torch.Tensor] | None:
        from optuna_nas.training import InheritanceWarning, load_checkpoint

        # The sampler records the parent after the Trial object cached its attributes.
        frozen = fresh_trial(trial)
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


class ArchitectureObjective:
    """An Optuna objective that suggests, builds and trains one architecture per trial.

    It returns the validation accuracy after the last epoch (maximise it), reports the
    learning curve for pruning, and stores the test accuracy, parameter count and FLOPs
    as user attributes. The test accuracy is recorded for reporting only; nothing in the
    search selects on it. Weight initialisation is seeded with ``seed + trial.number`` so
    every trial is repeatable. The batch size is ``training.batch_size`` unless the trial
    arrives with its own ``optuna_nas:batch_size`` user attribute (a retry that
    :class:`optuna_nas.OOMRetryCallback` queued after running out of memory); either way
    it is stored in that attribute.

    Args:
        space: The search space.
        dataset: The loaded dataset.
        training: Training settings.
        seed: Base seed.
        artifact_store: Optuna artifact store for per-trial files; ``None`` stores none.
            With a store, the objective adds a :class:`DrawingHook` (every trial's SVG
            drawing, which optuna-dashboard previews) and, with ``save_checkpoints``, a
            :class:`CheckpointHook` (every trained or pruned trial's weights).
        save_checkpoints: Whether trials save their weights to ``artifact_store``. Each
            checkpoint is the size of its model; ``False`` keeps only the drawings. Must
            stay ``True`` with ``inherit_weights``.
        inherit_weights: Warm-start a child trial from its parent's checkpoint
            (:class:`InheritanceHook`): tensors whose name and shape match are copied, one
            whose shape a mutation changed is transferred in part
            (:func:`optuna_nas.training.transfer_weights`). Needs ``artifact_store``.
        inherit_lr_scale: Peak learning rate of the inherited tensors, as a fraction of
            ``training.lr``; ``None`` takes :data:`optuna_nas.training.INHERIT_LR_SCALE`.
        inherit_partial: With ``inherit_weights``, also transfer reshaped tensors;
            ``False`` copies only exact matches.
        hooks: More :class:`TrialHook` objects, run after the ones above.
        estimate_rung: A cheap estimate (:class:`optuna_nas.oneshot.EstimateRung`: a
            zero-cost proxy or a one-shot score, or a proxy's name for an ``EstimateRung``
            on ``dataset`` seeded with ``seed``) reported at step 0, after the hooks'
            ``before_fit`` and before training; the epochs then report from step 1 on.
            Pair it with ``LowFidelityPruner(..., estimate_rung=True)``.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import ArchitectureObjective, TrainingConfig, data, spaces

            objective = ArchitectureObjective(
                spaces.create("chain", max_layers=2),
                data.load("digits"),
                TrainingConfig(epochs=1),
            )
            study = optuna.create_study(direction="maximize")
            study.optimize(objective, n_trials=2)
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
        hooks: Sequence[object] = (),
        estimate_rung: EstimateRung | str | None = None,
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
        self.inherit_lr_scale = inherit_lr_scale
        self.inherit_partial = inherit_partial
        built: list[object] = []
        if artifact_store is not None:
            built.append(DrawingHook(artifact_store))
            if save_checkpoints:
                built.append(CheckpointHook(artifact_store))
            if inherit_weights:
                built.append(InheritanceHook(artifact_store))
        self.hooks: list[object] = [*built, *hooks]
        if isinstance(estimate_rung, str):
            from optuna_nas.oneshot import EstimateRung

            estimate_rung = EstimateRung(dataset, proxy=estimate_rung, seed=seed)
        self.estimate_rung = estimate_rung

    def __call__(self, trial: optuna.Trial) -> float:
        from optuna_nas.training import fit, seed_everything

        arch = self.space.suggest(trial)
        for hook in self.hooks:
            before = getattr(hook, "before_fit", None)
            if before is not None and before(trial, arch) is False:
                return math.nan
        if self.estimate_rung is not None:
            self.estimate_rung.before_fit(trial, arch)  # raises TrialPruned at this rung
        seed = self.seed + trial.number
        seed_everything(seed)
        model = self.build_model(arch)
        init = self._initial_weights(trial)
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
                init_state_dict=init,
                inherit_lr_scale=self.inherit_lr_scale,
                inherit_partial=self.inherit_partial,
                first_step=0 if self.estimate_rung is None else 1,
            )
        except optuna.TrialPruned:
            # Samplers may still pick a pruned trial as a parent.
            self._after_fit(trial, model, pruned=True)
            raise
        if math.isfinite(result.valid_accuracy):
            self._after_fit(trial, model, pruned=False)
        return result.valid_accuracy

    def build_model(self, arch: Architecture) -> torch.nn.Module:
        """The network trained for ``arch``; override to wrap or adapt it."""
        return arch.build(self.dataset.input_shape, self.dataset.num_classes)

    def _initial_weights(self, trial: optuna.Trial) -> dict[str, torch.Tensor] | None:
        for hook in self.hooks:
            initial = getattr(hook, "initial_weights", None)
            if initial is not None:
                state = initial(trial)
                if state is not None:
                    return dict(state)
        return None

    def _after_fit(self, trial: optuna.Trial, model: torch.nn.Module, pruned: bool) -> None:
        for hook in self.hooks:
            after = getattr(hook, "after_fit", None)
            if after is not None:
                after(trial, model, pruned)

    def _batch_size(self, trial: optuna.Trial) -> int:
        """The study's batch size, or the trial's own from its batch-size attribute."""
        override = _keys.read(trial.user_attrs, _keys.BATCH_SIZE)
        batch_size = self.training.batch_size
        if isinstance(override, int) and not isinstance(override, bool) and override > 0:
            batch_size = override
        trial.set_user_attr(_keys.BATCH_SIZE, batch_size)
        return batch_size
