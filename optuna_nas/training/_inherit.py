"""Weight inheritance: start a child architecture from its parent's trained weights.

Evolutionary NAS mutates a trained parent into a child that shares most of its layers.
Training the child from the parent's weights instead of from a fresh initialisation
reaches the same accuracy in fewer epochs (Real et al., "Large-Scale Evolution of Image
Classifiers", ICML 2017; Elsken, Metzen and Hutter, "Efficient Multi-Objective Neural
Architecture Search via Lamarckian Evolution", ICLR 2019).

Checkpoints are plain ``name -> tensor`` dictionaries stored with Optuna's artifact API
(recorded as :func:`optuna.artifacts.upload_artifact` records them, but only after the
write succeeded), so any Optuna artifact store works. They are
written with :func:`torch.save` and read back with ``torch.load(weights_only=True)``, which
refuses to unpickle anything but tensors and plain containers: a checkpoint from a shared
folder cannot run code. A missing, truncated or foreign checkpoint is reported with a
warning and the child trains from scratch.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    import optuna
    from optuna.artifacts._protocol import ArtifactStore

CHECKPOINT_ATTR = "checkpoint_artifact"
"""Trial user attribute holding the artifact id of the trial's trained weights."""
INHERITED_ATTR = "inherited_tensors"
"""Trial user attribute: tensors copied from the parent's checkpoint."""
MODEL_TENSORS_ATTR = "model_tensors"
"""Trial user attribute: tensors (parameters and buffers) in the model's state dict."""
PEAK_LR_ATTR = "peak_lr"
"""Trial user attribute of a warm-started run: the peak learning rate of its inherited
tensors (see ``fit``'s ``inherit_lr_scale``)."""
INHERIT_LR_SCALE = 1.0
"""Default peak learning rate of the inherited tensors of a warm-started run, as a fraction
of the scratch one (freshly initialised tensors always train at the full rate).

Restarting a nearly converged parent at the full peak rate of a fresh cosine schedule can
cost it some accuracy, so continuing gently is tempting (Elsken, Metzen and Hutter, ICLR
2019, train each morphed child briefly with cosine annealing). Measured on evolution
children on MNIST-1D (BENCHMARKS.md), a reduced rate (0.3 or 0.1) lost more than it saved,
for converged children too: a mutated child needs the full rate to adapt its inherited
weights to the new structure. Hence 1.0, as in Real et al. (ICML 2017), where children keep
training at the usual rate."""
CHECKPOINT_FILENAME = "checkpoint.pt"
CHECKPOINT_MIMETYPE = "application/x-pytorch-state-dict"


class InheritanceWarning(UserWarning):
    """A parent checkpoint could not be used; the child trains from scratch."""


def save_checkpoint(trial: optuna.Trial, model: nn.Module, artifact_store: ArtifactStore) -> str:
    """Stores ``model``'s state dict as an artifact of ``trial``.

    Parameters and buffers are copied to the CPU and written with :func:`torch.save` as a
    plain ``dict[str, Tensor]``; the artifact id goes to the trial's
    :data:`CHECKPOINT_ATTR` user attribute.

    Args:
        trial: The running trial that owns the weights.
        model: The trained network.
        artifact_store: Any Optuna artifact store, e.g.
            :func:`optuna_nas.open_artifact_store`.

    Returns:
        The artifact id.
    """
    from optuna_nas._artifacts import write_trial_artifact

    state = {
        name: tensor.detach().to("cpu", copy=True).contiguous()
        for name, tensor in model.state_dict().items()
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    # Written before it is recorded, so a failed write (a full disk) leaves no record of a
    # checkpoint that does not exist; the dashboard lists it as checkpoint.pt.
    artifact_id = write_trial_artifact(
        trial,
        artifact_store,
        buffer.getvalue(),
        filename=CHECKPOINT_FILENAME,
        mimetype=CHECKPOINT_MIMETYPE,
    )
    trial.set_user_attr(CHECKPOINT_ATTR, artifact_id)
    return artifact_id


def load_checkpoint(
    study: optuna.Study, trial_number: int, artifact_store: ArtifactStore
) -> dict[str, torch.Tensor] | None:
    """The state dict saved by :func:`save_checkpoint` for trial ``trial_number``.

    Loading never unpickles arbitrary objects: the file is read with
    ``torch.load(weights_only=True)`` and must hold a ``dict[str, Tensor]``.

    Args:
        study: The study holding the trial.
        trial_number: The trial's number (e.g. a child's parent).
        artifact_store: The store the checkpoint was saved to.

    Returns:
        The tensors on the CPU, or ``None`` with an :class:`InheritanceWarning` when the
        trial does not exist, has no checkpoint, or its checkpoint is missing, truncated,
        not a tensor dictionary, or contains objects that are not safe to load.
    """
    try:
        return _read_checkpoint(study, trial_number, artifact_store)
    except _Unusable as err:
        warnings.warn(f"{err}; training from scratch", InheritanceWarning, stacklevel=2)
        return None


def inherit_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> int:
    """Copies every tensor of ``state_dict`` whose name and shape match into ``model``.

    Parameters and persistent buffers (batch-norm statistics) are both copied, in place and
    without gradient tracking; everything else keeps its current (fresh) initialisation.
    Tensors match when their names and shapes are equal and both are floating point or
    both are not, so an integer counter is never filled from a float.

    Args:
        model: The network to warm-start, e.g. a child architecture.
        state_dict: Tensors by name, e.g. from :func:`load_checkpoint`.

    Returns:
        How many tensors were copied; ``len(model.state_dict())`` is the total.
    """
    return len(copy_matching(model, state_dict))


def copy_matching(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> set[str]:
    """:func:`inherit_weights`, returning the names of the copied tensors instead."""
    copied = set()
    with torch.no_grad():
        # state_dict() tensors share storage with the module's parameters and buffers.
        for name, target in model.state_dict().items():
            source = state_dict.get(name)
            if (
                source is None
                or source.shape != target.shape
                or source.is_floating_point() != target.is_floating_point()
            ):
                continue
            target.copy_(source)
            copied.add(name)
    return copied


class _Unusable(Exception):
    """Why a checkpoint cannot be used."""


def _read_checkpoint(
    study: optuna.Study, trial_number: int, artifact_store: ArtifactStore
) -> dict[str, torch.Tensor]:
    where = f"trial {trial_number} of study {study.study_name!r}"
    try:
        storage = study._storage
        trial_id = storage.get_trial_id_from_study_id_trial_number(study._study_id, trial_number)
        attrs = storage.get_trial(trial_id).user_attrs
    except KeyError:
        raise _Unusable(f"{where} does not exist") from None
    artifact_id = attrs.get(CHECKPOINT_ATTR)
    if artifact_id is None:
        raise _Unusable(f"{where} has no checkpoint (no {CHECKPOINT_ATTR!r} user attribute)")
    # Any store may raise anything here (a missing file, a refused id, a network error);
    # an unreadable parent must not fail the child.
    try:
        with artifact_store.open_reader(str(artifact_id)) as reader:
            payload = reader.read()
    except Exception as err:
        raise _Unusable(f"cannot read checkpoint {artifact_id!r} of {where}: {err}") from None
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:
        # Truncated zips, foreign formats and forbidden globals all land here.
        raise _Unusable(
            f"checkpoint {artifact_id!r} of {where} is corrupt or not safe to load "
            f"({type(err).__name__}: {_first_line(err)})"
        ) from None
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _Unusable(
            f"checkpoint {artifact_id!r} of {where} is a {type(state).__name__}, not a "
            "dict of tensors"
        )
    return dict(state)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else ""
