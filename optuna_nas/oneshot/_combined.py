"""One estimate from two: the one-shot score and a zero-cost proxy, put on one scale."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from optuna_nas.data import Dataset
    from optuna_nas.oneshot._supernet import Supernet
    from optuna_nas.spaces import Architecture, SearchSpace


@dataclass(frozen=True)
class _Scale:
    """A robust standardisation: ``(value - median) / (1.4826 * MAD)``."""

    center: float
    spread: float
    floor: float

    @classmethod
    def of(cls, values: list[float]) -> _Scale:
        finite = [v for v in values if math.isfinite(v)]
        if not finite:
            return cls(0.0, 1.0, 0.0)
        center = statistics.median(finite)
        spread = 1.4826 * statistics.median(abs(v - center) for v in finite)
        if spread <= 0:
            spread = statistics.pstdev(finite) or 1.0
        return cls(center, spread, min(finite))

    def __call__(self, value: float) -> float:
        # A score the proxy leaves undefined (NASWOT's singular kernel) counts as the
        # lowest of the reference sample.
        return ((value if math.isfinite(value) else self.floor) - self.center) / self.spread


class CombinedScore:
    """The one-shot score and a zero-cost proxy, each standardised, then averaged.

    The two estimates err in different ways: shared weights favour the paths that trained
    best in the supernet, while a proxy sees only the untrained network. Averaging them
    ranks architectures better than either alone. Each is put on one scale by its median
    and median absolute deviation over a reference sample of ``reference_size``
    architectures drawn uniformly from the space, so the combination of one architecture
    does not depend on which others a search has scored, and the same architecture always
    gets the same value.

    On our stand-alone ground truth (``benchmarks/oneshot_rank.py``, ``--proxy``) FairNAS's
    loss score with ZiCo has a higher Kendall tau than either alone; the benchmarks page of
    the documentation gives the numbers on the tuning and the held-out ground truth.

    Args:
        space: The supernet's space.
        supernet: A trained supernet of ``space``.
        data: The dataset: the proxy's batch and the batch-norm recalibration come from
            ``train``, the one-shot score from ``valid``.
        proxy: A name of :data:`PROXIES`.
        metric: The one-shot score, ``"accuracy"`` or ``"loss"`` (see
            :func:`score_architecture`).
        reference_size: Architectures in the reference sample, at least 8.
        recalibration_batches: Training batches for each path's batch-norm statistics.
        seed: Seeds the reference sample, and the proxy's initialisation and batch.
        device: ``None`` picks CUDA, then MPS, then the CPU for the supernet; the proxy
            runs on the same device.

    Raises:
        ValueError: For an unknown proxy or metric, or a reference sample below 8.

    Example:
        .. code-block:: python

            from optuna_nas import data, oneshot, spaces

            dataset = data.load("mnist1d", num_samples=1000)
            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            supernet = oneshot.build_supernet(space, dataset.input_shape, 10)
            oneshot.train_supernet(supernet, dataset, epochs=1)
            combined = oneshot.CombinedScore(space, supernet, dataset, reference_size=8)
            arch = space.from_nb201_string(
                "|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|"
                "+|nor_conv_3x3~0|nor_conv_1x1~1|skip_connect~2|"
            )
            print(combined.score(arch))

    References:
        C. White, A. Zela, R. Ru, Y. Liu and F. Hutter. How Powerful are Performance
        Predictors in Neural Architecture Search? NeurIPS 2021 (combining the families of
        predictors beats each one).

        G. Li, Y. Yang, K. Bhardwaj and R. Marculescu. ZiCo: Zero-shot NAS via Inverse
        Coefficient of Variation on Gradients. ICLR 2023.
    """

    def __init__(
        self,
        space: SearchSpace,
        supernet: Supernet,
        data: Dataset,
        *,
        proxy: str = "zico",
        metric: str = "loss",
        reference_size: int = 64,
        recalibration_batches: int = 8,
        seed: int = 0,
        device: str | torch.device | None = None,
    ) -> None:
        from optuna_nas.oneshot._proxies import PROXIES
        from optuna_nas.oneshot._train import SCORE_METRICS
        from optuna_nas.pruners._common import is_int
        from optuna_nas.training import select_device

        if proxy not in PROXIES:
            raise ValueError(f"unknown proxy {proxy!r}; choose one of: {', '.join(PROXIES)}")
        if metric not in SCORE_METRICS:
            raise ValueError(
                f"unknown metric {metric!r}; choose one of: {', '.join(SCORE_METRICS)}"
            )
        if not is_int(reference_size) or reference_size < 8:
            raise ValueError(f"reference_size must be an integer >= 8, got {reference_size!r}")
        self.space = space
        self.supernet = supernet
        self.data = data
        self.proxy = proxy
        self.metric = metric
        self.recalibration_batches = recalibration_batches
        self.seed = seed
        self.device = select_device(device)
        rng = np.random.RandomState(seed)
        reference = [space.from_params(space.sample_params(rng)) for _ in range(reference_size)]
        pairs = [self.components(arch) for arch in reference]
        self._oneshot_scale = _Scale.of([a for a, _ in pairs])
        self._proxy_scale = _Scale.of([b for _, b in pairs])

    def components(self, arch: Architecture) -> tuple[float, float]:
        """The one-shot score and the proxy's score of ``arch``, each on its own scale."""
        from optuna_nas.oneshot._proxies import proxy_score
        from optuna_nas.oneshot._train import score_architecture

        oneshot = score_architecture(
            self.supernet,
            arch,
            self.data,
            recalibration_batches=self.recalibration_batches,
            device=self.device,
            metric=self.metric,
        )
        return oneshot, proxy_score(
            arch, self.data, self.proxy, seed=self.seed, device=self.device
        )

    def combine(self, oneshot: float, proxy: float) -> float:
        """The mean of the two standardised scores; higher foretells better."""
        return 0.5 * (self._oneshot_scale(oneshot) + self._proxy_scale(proxy))

    def score(self, arch: Architecture) -> float:
        """The combined estimate of ``arch``: higher foretells better."""
        return self.combine(*self.components(arch))
