"""What :func:`~optuna_nas.training.fit` returns, and how it says a trial failed."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from optuna_nas import _keys

FAIL_REASON_ATTR = _keys.FAIL_REASON
"""User attribute that says why :func:`fit` failed a trial (``oom``, ``nan_loss``)."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; raised by :func:`fit` when no trial is given."""


@dataclass
class FitResult:
    """What :func:`fit` measured.

    Attributes:
        valid_accuracy: Validation accuracy after the last epoch, in ``[0, 1]``; NaN when
            training failed (see ``fail_reason``), which makes Optuna mark the trial failed
            and carry on with the study.
        best_valid_accuracy: Highest validation accuracy over the epochs.
        test_accuracy: Test accuracy after the last epoch, if ``evaluate_test`` was set.
        history: One dict per finished epoch (``epoch``, ``train_loss``,
            ``valid_accuracy``, ``seconds``).
        fail_reason: ``None``, ``"oom"`` or ``"nan_loss"``.
        n_params: Trainable parameters.
        flops: Forward FLOPs for one example.
        seconds_per_epoch: Mean wall time of a training epoch (evaluation excluded).
        samples_per_second: Training throughput.
        device: Where it trained.
        peak_memory_mb: Peak CUDA memory allocated, or ``None`` off CUDA.
        latency_ms: Median wall time of one inference forward pass on a batch of
            ``batch_size`` validation examples, in eval mode on the training device (see
            :data:`LATENCY_REPEATS`).
        inherited_tensors: Tensors that start from ``init_state_dict``'s values, copied
            whole or transferred in part; ``None`` without one.
        partially_inherited_tensors: Those of ``inherited_tensors`` transferred in part
            (their shapes differ); ``None`` without ``init_state_dict``.
    """

    valid_accuracy: float
    best_valid_accuracy: float
    test_accuracy: float | None
    history: list[dict[str, float]] = field(default_factory=list)
    fail_reason: str | None = None
    n_params: int = 0
    flops: int = 0
    seconds_per_epoch: float = 0.0
    samples_per_second: float = 0.0
    device: str = "cpu"
    peak_memory_mb: float | None = None
    latency_ms: float = math.nan
    inherited_tensors: int | None = None
    partially_inherited_tensors: int | None = None

    @property
    def learning_curve(self) -> list[float]:
        """Validation accuracy per epoch."""
        return [h["valid_accuracy"] for h in self.history]
