"""One-shot search inside an Optuna study: weight-sharing scores for any sampler, supernet
checkpoints, and the architecture a search derives as an ordinary trial."""

from __future__ import annotations

import io
import logging
import math
from typing import TYPE_CHECKING, Any

import optuna
import torch

from optuna_nas import _keys
from optuna_nas.oneshot._combined import CombinedScore
from optuna_nas.oneshot._supernet import Supernet, build_supernet
from optuna_nas.oneshot._train import score_architecture

if TYPE_CHECKING:
    from optuna_nas.data import Dataset
    from optuna_nas.spaces import SearchSpace

_logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "optuna-nas-supernet"
"""The ``format`` field of a supernet checkpoint."""


class WeightSharingObjective:
    """An Optuna objective that scores each trial's architecture with a supernet's weights.

    Any sampler can search on it (SPOS's search is evolution on this objective): a trial
    takes seconds instead of a training run. The score goes to the trial's
    ``optuna_nas:oneshot_score`` user attribute as well as being its value; with a
    ``proxy``, the value is the combined estimate.

    Args:
        space: The space the trials suggest from; the supernet's.
        supernet: A trained supernet of ``space``.
        data: The dataset: batch norms recalibrate on ``train``, scores come from ``valid``.
        recalibration_batches: Training batches for each path's batch-norm statistics.
        device: ``None`` picks CUDA, then MPS, then the CPU.
        metric: ``"accuracy"`` or ``"loss"`` (see :func:`score_architecture`).
        proxy: A zero-cost proxy (a name of :data:`PROXIES`, e.g. ``"zico"``) to combine
            with the one-shot score (see :class:`CombinedScore`): the trial's value is then
            the combined estimate, and the proxy's score goes to the
            ``optuna_nas:proxy_score`` user attribute. ``None`` scores with shared weights
            alone.
        reference_size: Architectures that put the two scores on one scale, when ``proxy``
            is given; scoring them is part of the construction.
        seed: Seeds that reference sample and the proxy's initialisation and batch.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, oneshot, spaces

            dataset = data.load("mnist1d", num_samples=1000)
            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            supernet = oneshot.build_supernet(space, dataset.input_shape, 10)
            oneshot.train_supernet(supernet, dataset, epochs=1)
            study = optuna.create_study(direction="maximize")
            study.optimize(oneshot.WeightSharingObjective(space, supernet, dataset), n_trials=5)
    """

    def __init__(
        self,
        space: SearchSpace,
        supernet: Supernet,
        data: Dataset,
        *,
        recalibration_batches: int = 8,
        device: str | torch.device | None = None,
        metric: str = "accuracy",
        proxy: str | None = None,
        reference_size: int = 64,
        seed: int = 0,
    ) -> None:
        if supernet.space.name != space.name or supernet.space.config != space.config:
            raise ValueError(
                f"the supernet belongs to space {supernet.space.name!r} "
                f"{supernet.space.config}, not to {space.name!r} {space.config}"
            )
        self.space = space
        self.supernet = supernet
        self.data = data
        self.recalibration_batches = recalibration_batches
        self.device = device
        self.metric = metric
        self.combined = (
            None
            if proxy is None
            else CombinedScore(
                space,
                supernet,
                data,
                proxy=proxy,
                metric=metric,
                reference_size=reference_size,
                recalibration_batches=recalibration_batches,
                seed=seed,
                device=device,
            )
        )

    def __call__(self, trial: optuna.Trial) -> float:
        arch = self.space.suggest(trial)
        if self.combined is not None:
            oneshot, proxy = self.combined.components(arch)
            trial.set_user_attr(_keys.ONESHOT_SCORE, oneshot)
            trial.set_user_attr(_keys.PROXY_SCORE, proxy if math.isfinite(proxy) else None)
            return self.combined.combine(oneshot, proxy)
        score = score_architecture(
            self.supernet,
            arch,
            self.data,
            recalibration_batches=self.recalibration_batches,
            device=self.device,
            metric=self.metric,
        )
        trial.set_user_attr(_keys.ONESHOT_SCORE, score)
        return score


def save_supernet(supernet: Supernet) -> bytes:
    """The supernet as checkpoint bytes: its weights and the space they belong to.

    :func:`load_supernet` reads them back with ``weights_only=True``.
    """
    buffer = io.BytesIO()
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "space": {"space": supernet.space.name, "config": supernet.space.config},
            "input_shape": list(supernet.input_shape),
            "num_classes": supernet.num_classes,
            "state_dict": {k: v.cpu() for k, v in supernet.state_dict().items()},
        },
        buffer,
    )
    return buffer.getvalue()


def load_supernet(
    checkpoint: bytes, space: SearchSpace, input_shape: tuple[int, ...], num_classes: int
) -> Supernet:
    """A supernet of ``space`` with the weights of a :func:`save_supernet` checkpoint.

    Raises:
        ValueError: If the bytes are no supernet checkpoint, or one of another space, input
            shape or number of classes.
    """
    try:
        state: Any = torch.load(io.BytesIO(checkpoint), map_location="cpu", weights_only=True)
        ok = isinstance(state, dict) and state.get("format") == CHECKPOINT_FORMAT
    except Exception as err:  # truncated, or not a torch file
        raise ValueError(f"not a supernet checkpoint ({err}); train the supernet again") from None
    if not ok:
        raise ValueError("not a supernet checkpoint; pass a file that optuna-nas oneshot saved")
    spec = {"space": space.name, "config": space.config}
    if state["space"] != spec:
        raise ValueError(
            f"the checkpoint is a supernet of space {state['space']['space']!r} "
            f"{state['space']['config']}, not of {space.name!r} {space.config}; train one for "
            "this space or pass the matching --space and --space-arg"
        )
    if tuple(state["input_shape"]) != tuple(input_shape) or state["num_classes"] != num_classes:
        raise ValueError(
            f"the checkpoint's supernet takes inputs {tuple(state['input_shape'])} and "
            f"{state['num_classes']} classes, not {tuple(input_shape)} and {num_classes}; "
            "use it with the dataset it was trained on"
        )
    supernet = build_supernet(space, input_shape, num_classes)
    supernet.load_state_dict(state["state_dict"])
    return supernet


def derive_architecture(
    space: SearchSpace,
    supernet: Supernet,
    data: Dataset,
    *,
    candidates: int = 100,
    sampler: optuna.samplers.BaseSampler | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    metric: str = "accuracy",
    proxy: str | None = None,
) -> tuple[dict[str, Any], float]:
    """Searches the supernet with weight-sharing scores and returns the best architecture.

    An in-memory Optuna study of ``candidates`` trials runs :class:`WeightSharingObjective`
    with ``sampler`` (regularized evolution, as SPOS searches, by default), scoring with
    ``metric`` (see :func:`score_architecture`), combined with the zero-cost ``proxy`` when
    one is named (see :class:`CombinedScore`).

    Returns:
        The best architecture's parameters and its score (the combined estimate, with a
        ``proxy``).
    """
    from optuna_nas.samplers import create

    study = optuna.create_study(
        direction="maximize",
        sampler=sampler or create("evolution", seed=seed, space=space),
    )
    study.optimize(
        WeightSharingObjective(
            space, supernet, data, device=device, metric=metric, proxy=proxy, seed=seed
        ),
        n_trials=candidates,
    )
    return dict(study.best_trial.params), float(study.best_value)
