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
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from optuna_nas import _keys
from optuna_nas._compat import study_id, study_storage

if TYPE_CHECKING:
    import optuna

    from optuna_nas._compat import ArtifactStore

CHECKPOINT_ATTR = _keys.CHECKPOINT
"""Trial user attribute holding the artifact id of the trial's trained weights."""
INHERITED_ATTR = _keys.INHERITED_TENSORS
"""Trial user attribute: tensors that start from the parent's checkpoint, copied whole or
transferred in part (see :func:`transfer_weights`)."""
PARTIAL_ATTR = _keys.PARTIALLY_INHERITED_TENSORS
"""Trial user attribute: those of :data:`INHERITED_ATTR` transferred in part, because a
mutation changed their shape."""
MODEL_TENSORS_ATTR = _keys.MODEL_TENSORS
"""Trial user attribute: tensors (parameters and buffers) in the model's state dict."""
PEAK_LR_ATTR = _keys.PEAK_LR
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


def inherit_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, partial: bool = True
) -> int:
    """Starts ``model`` from the tensors of ``state_dict`` that fit it, in place.

    A tensor whose name and shape match is copied whole. With ``partial``, one whose name
    matches but whose shape does not (a mutation changed a layer's width or kernel) is
    transferred as far as it maps, function-preservingly where possible; see
    :func:`transfer_weights` for the rules. Everything else keeps its current (fresh)
    initialisation.

    Args:
        model: The network to warm-start, e.g. a child architecture.
        state_dict: Tensors by name, e.g. from :func:`load_checkpoint`.
        partial: Also transfer tensors whose shapes differ; ``False`` copies only exact
            name and shape matches.

    Returns:
        How many tensors start from the parent's values, whole or in part;
        ``len(model.state_dict())`` is the total. :func:`transfer_weights` tells them apart.
    """
    return len(transfer_weights(model, state_dict, partial=partial).inherited)


@dataclass(frozen=True)
class WeightTransfer:
    """Which of a child's tensors :func:`transfer_weights` filled from its parent, and how.

    Attributes:
        copied: Names of the tensors copied whole (same name and shape).
        partial: Names of the tensors transferred in part (same name, different shape).
        fresh: Names of the tensors that keep their fresh initialisation.
    """

    copied: frozenset[str]
    partial: frozenset[str]
    fresh: frozenset[str]

    @property
    def inherited(self) -> frozenset[str]:
        """Tensors that start from the parent's values, whole or in part."""
        return self.copied | self.partial

    def counts(self) -> dict[str, int]:
        """``{"copied": ..., "partial": ..., "fresh": ...}``, e.g. for a log line."""
        return {"copied": len(self.copied), "partial": len(self.partial), "fresh": len(self.fresh)}


def transfer_weights(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, partial: bool = True
) -> WeightTransfer:
    """Fills ``model``'s parameters and buffers from ``state_dict``, in place.

    Tensors are paired by name; integer buffers (a batch-norm step counter) only take
    integers and floating-point tensors only floating point. A pair of equal shapes is
    copied whole. With ``partial``, a pair of different shapes but equal rank inside a
    convolution (not transposed), linear or batch-norm layer is mapped as a network
    morphism would map it (Chen, Goodfellow and Shlens 2016; Wei et al. 2016):

    - output units (dim 0 of a weight, a bias, batch-norm scale, shift and running
      statistics): the units both have are copied; extra units of the child keep their
      fresh initialisation, so widening adds new features and narrowing keeps the first;
    - input units (dim 1 of a weight): the columns both have are copied and the columns of
      the child's new inputs are zero, so a layer whose producer was widened computes what
      the parent's did: widening is function-preserving;
    - kernel (dims 2 and on of a convolution weight): a larger kernel holds the parent's in
      its centre with a zero border, exactly the parent's function under the "same"
      padding of this package's ops (``dilation * (k - 1) // 2``); a smaller kernel takes
      the centre crop of the parent's, an approximation.

    Only the units the parent had get zero columns and borders; the child's new output
    units keep their random initialisation in full, so they do not start symmetric.

    A tensor starts fresh instead when its rank changed, when its layer is of another
    kind, when the group structure of a convolution changed (a depthwise convolution only
    takes a depthwise one), when the input of a linear layer that directly follows an
    :class:`torch.nn.Flatten` changed width (its columns mix channels and positions, so
    which column is which is ambiguous), and when the operation around it changed: the
    tensors under the tensor's module's parent (``layer3`` for ``layer3.0.weight``) must
    have the same names and ranks in both, otherwise (a convolution mutated into a
    separable one, say) names and shapes may agree while meanings differ. A flatten done
    inside some module's ``forward`` cannot be seen and is not guarded against.

    Args:
        model: The network to warm-start, e.g. a child architecture.
        state_dict: Tensors by name, e.g. from :func:`load_checkpoint`.
        partial: Transfer tensors of different shapes as above; ``False`` copies only
            exact name and shape matches and starts the rest fresh.

    Returns:
        A :class:`WeightTransfer` naming every tensor of ``model.state_dict()`` as copied,
        partial or fresh.

    References:
        Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge
        Transfer", ICLR 2016.

        Wei, Wang, Rui and Chen, "Network Morphism", ICML 2016.

        Elsken, Metzen and Hutter, "Efficient Multi-Objective Neural Architecture Search
        via Lamarckian Evolution", ICLR 2019.

    Example:
        .. code-block:: python

            from torch import nn
            from optuna_nas.training import transfer_weights

            parent = nn.Sequential(nn.Conv1d(1, 8, 3, padding=1), nn.Conv1d(8, 4, 3, padding=1))
            child = nn.Sequential(nn.Conv1d(1, 16, 5, padding=2), nn.Conv1d(16, 4, 3, padding=1))
            done = transfer_weights(child, parent.state_dict())
            assert done.counts() == {"copied": 1, "partial": 3, "fresh": 0}
    """
    copied: set[str] = set()
    transferred: set[str] = set()
    fresh: set[str] = set()
    target_state = model.state_dict()
    roles = _tensor_roles(model) if partial else {}
    with torch.no_grad():
        # state_dict() tensors share storage with the module's parameters and buffers.
        for name, target in target_state.items():
            source = state_dict.get(name)
            if source is None or source.is_floating_point() != target.is_floating_point():
                fresh.add(name)
            elif source.shape == target.shape:
                target.copy_(source)
                copied.add(name)
            elif (
                name in roles
                and source.dim() == target.dim()
                and _same_structure(name, state_dict, target_state)
                and _transfer_partially(target, source, roles[name])
            ):
                transferred.add(name)
            else:
                fresh.add(name)
    return WeightTransfer(frozenset(copied), frozenset(transferred), frozenset(fresh))


# What each dimension of a tensor indexes: output units, input units or kernel positions.
_OUT, _IN, _KERNEL = "out", "in", "kernel"
# An input dimension that must not change (the 1 of a depthwise convolution, the columns
# of a linear layer after a flatten).
_FIXED = "fixed"


def _tensor_roles(model: nn.Module) -> dict[str, tuple[str, ...]]:
    """The role of each dimension of every tensor that may be transferred in part."""
    roles: dict[str, tuple[str, ...]] = {}
    after_flatten = False
    for owner, module in model.named_modules():
        prefix = f"{owner}." if owner else ""
        if isinstance(module, nn.Flatten):
            after_flatten = True
            continue
        tensors = [n for n, _ in module.named_parameters(recurse=False)]
        tensors += [n for n, _ in module.named_buffers(recurse=False)]
        if not tensors:
            continue
        if isinstance(module, nn.modules.conv._ConvNd) and not module.transposed:
            # A grouped convolution maps only when it is depthwise: output channel i then
            # reads input channel i alone, so the first channels stay paired.
            depthwise = module.groups > 1 and module.groups == module.in_channels
            if module.groups == 1 or depthwise:
                kernel = (_KERNEL,) * len(module.kernel_size)
                roles[f"{prefix}weight"] = (_OUT, _FIXED if depthwise else _IN, *kernel)
                roles[f"{prefix}bias"] = (_OUT,)
        elif isinstance(module, nn.Linear):
            roles[f"{prefix}weight"] = (_OUT, _FIXED if after_flatten else _IN)
            roles[f"{prefix}bias"] = (_OUT,)
        elif isinstance(module, nn.modules.batchnorm._NormBase):
            for tensor in ("weight", "bias", "running_mean", "running_var"):
                roles[f"{prefix}{tensor}"] = (_OUT,)
        after_flatten = False
    return roles


def _same_structure(
    name: str, source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor]
) -> bool:
    """Whether the operation holding ``name`` has the same tensor names and ranks in both."""
    owner = name.rpartition(".")[0]
    scope = owner.rpartition(".")[0] if "." in owner else owner
    prefix = f"{scope}." if scope else ""

    def layout(state: Mapping[str, torch.Tensor]) -> set[tuple[str, int]]:
        return {(key, tensor.dim()) for key, tensor in state.items() if key.startswith(prefix)}

    return layout(source) == layout(target)


def _transfer_partially(
    target: torch.Tensor, source: torch.Tensor, roles: tuple[str, ...]
) -> bool:
    """Maps ``source`` into ``target`` by the dimension ``roles``; ``False`` if it cannot."""
    if len(roles) != target.dim():
        return False
    into: list[slice] = []
    take: list[slice] = []
    for role, n_target, n_source in zip(roles, target.shape, source.shape, strict=True):
        if role == _FIXED and n_target != n_source:
            return False
        n = min(n_target, n_source)
        # Kernels are aligned at their centres, units at their first index.
        offset = abs(n_target - n_source) // 2 if role == _KERNEL else 0
        into.append(slice(offset, offset + n) if n_target > n_source else slice(0, n))
        take.append(slice(offset, offset + n) if n_source > n_target else slice(0, n))
    # The parent's units see zeros wherever the child has more than the parent (new input
    # columns, a kernel border); the child's extra units keep their fresh values.
    if roles[0] == _OUT and target.dim() > 1:
        target[: min(target.shape[0], source.shape[0])] = 0
    target[tuple(into)] = source[tuple(take)].to(target)
    return True


class _Unusable(Exception):
    """Why a checkpoint cannot be used."""


def _read_checkpoint(
    study: optuna.Study, trial_number: int, artifact_store: ArtifactStore
) -> dict[str, torch.Tensor]:
    where = f"trial {trial_number} of study {study.study_name!r}"
    try:
        storage = study_storage(study)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id(study), trial_number)
        attrs = storage.get_trial(trial_id).user_attrs
    except KeyError:
        raise _Unusable(f"{where} does not exist") from None
    artifact_id = _keys.read(attrs, CHECKPOINT_ATTR)
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
