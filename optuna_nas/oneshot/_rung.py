"""A cheap estimate as the lowest rung of a multi-fidelity search."""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import optuna
import torch

from optuna_nas import _keys
from optuna_nas.training._report import report_and_check

if TYPE_CHECKING:
    from optuna_nas.data import Dataset
    from optuna_nas.oneshot._supernet import Supernet
    from optuna_nas.spaces import Architecture

_logger = logging.getLogger(__name__)


class EstimateRung:
    """Scores each trial's architecture before it trains, as the rung at step 0.

    The score is a zero-cost proxy of the untrained network (:func:`zero_cost_score`) or,
    given a trained ``supernet``, the one-shot score with shared weights
    (:func:`score_architecture`). It is reported at step 0 and stored on the trial
    (``optuna_nas:proxy_score`` or ``optuna_nas:oneshot_score``); training then reports its
    epochs from step 1 on. With
    :class:`~optuna_nas.pruners.LowFidelityPruner` built with ``estimate_rung=True``, the
    rung prunes only once its measured rank correlation with the final rung is trusted, so
    a proxy that does not rank this problem's architectures well costs one cheap score per
    trial and prunes nothing.

    Use it through :class:`optuna_nas.ArchitectureObjective` (``estimate_rung=``), or call
    it yourself in an objective before training with ``fit(..., first_step=1)``.

    Args:
        data: The dataset: the proxy's batch comes from ``train``; the one-shot score
            recalibrates on ``train`` and scores ``valid``.
        proxy: A name of :data:`PROXIES`; ignored when ``supernet`` is given.
        supernet: A trained supernet of the space the trials suggest from.
        batch_size: Examples in the proxy's batch.
        seed: Seeds the proxy's network initialisation and batch, the same for every trial.
        device: Where to compute; ``None`` picks the CPU for a proxy and CUDA, MPS or the
            CPU for a supernet.

    Raises:
        ValueError: For an unknown proxy.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import ArchitectureObjective, TrainingConfig, data, oneshot, spaces
            from optuna_nas.pruners import LowFidelityPruner

            dataset = data.load("mnist1d", num_samples=1000)
            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            objective = ArchitectureObjective(
                space,
                dataset,
                TrainingConfig(epochs=3),
                estimate_rung=oneshot.EstimateRung(dataset, proxy="synflow"),
            )
            pruner = LowFidelityPruner(max_step=2, estimate_rung=True)  # rungs 0, 1, then 3
            study = optuna.create_study(direction="maximize", pruner=pruner)
            study.optimize(objective, n_trials=4)

    References:
        M. S. Abdelfattah, A. Mehrotra, L. Dudziak and N. D. Lane. Zero-Cost Proxies for
        Lightweight NAS. ICLR 2021 (proxies as a cheap first stage of a search).
    """

    def __init__(
        self,
        data: Dataset,
        *,
        proxy: str = "synflow",
        supernet: Supernet | None = None,
        batch_size: int = 64,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        from optuna_nas.oneshot._proxies import PROXIES

        if supernet is None and proxy not in PROXIES:
            raise ValueError(f"unknown proxy {proxy!r}; choose one of: {', '.join(PROXIES)}")
        self.data = data
        self.proxy = proxy
        self.supernet = supernet
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    @property
    def name(self) -> str:
        """``"oneshot"`` with a supernet, else the proxy's name."""
        return "oneshot" if self.supernet is not None else self.proxy

    def score(self, arch: Architecture) -> float:
        """The estimate of ``arch``: higher foretells better."""
        from optuna_nas.oneshot._proxies import proxy_score
        from optuna_nas.oneshot._train import score_architecture

        if self.supernet is not None:
            return score_architecture(self.supernet, arch, self.data, device=self.device)
        return proxy_score(
            arch,
            self.data,
            self.proxy,
            batch_size=self.batch_size,
            seed=self.seed,
            device=self.device or "cpu",
        )

    def before_fit(self, trial: optuna.Trial, arch: Architecture) -> bool:
        """Scores ``arch``, reports the score at step 0 and prunes if the pruner says so.

        Raises:
            optuna.TrialPruned: When the pruner stops the trial at this rung.
        """
        score = self.score(arch)
        key = _keys.ONESHOT_SCORE if self.supernet is not None else _keys.PROXY_SCORE
        trial.set_user_attr(key, score if math.isfinite(score) else None)
        if report_and_check(trial, score, 0):
            raise optuna.TrialPruned(f"pruned at the {self.name} rung (score {score:.4g})")
        return True
