"""The prior over learning curves that :class:`~optuna_nas.pruners.CurvePFN` is trained on.

A prior-fitted network (Müller et al., ICLR 2022) learns Bayesian prediction under a prior
by training on data drawn from it; LC-PFN (Adriaensen et al., NeurIPS 2023) does this for
learning curves. This module is the prior of this project's own network. A curve lives on
normalised time ``x = (step + 1) / (max_step + 1)`` in ``(0, 1]`` and in the unit interval
of its metric, higher being better (the pruner maps accuracy, error or loss into that
frame). It is built in layers, each drawn independently per curve:

* a saturating rise from a start ``y0`` towards an asymptote ``y_inf``, whose shape is a
  power law, an exponential, or their mixture (the families of Domhan et al. 2015);
  ``1 - y_inf`` is log-uniform, so that curves ending near 1 are common and the network's
  bins are fine there;
* with some probability, a late lift (a cosine or step learning-rate decay) that starts in
  the second half of training, a slow decline after a peak (overfitting), a divergence to
  a constant level, or a curve that never leaves its start (a network that does not learn);
* Gaussian noise whose scale is log-uniform per curve, and rare downward spikes.

Every setting is a module constant, so the training script
(``benchmarks/train_lcpfn.py``) reproduces the shipped weights from a seed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MIN_STEPS = 8
"""The shortest curve drawn (``max_step + 1``)."""
MAX_STEPS = 64
"""The longest curve drawn; longer curves are subsampled by the pruner."""

P_LATE_LIFT = 0.3
P_STEP_DECAY = 0.15
P_DECLINE = 0.15
P_DIVERGE = 0.05
P_FLAT = 0.05
P_SPIKES = 0.3
"""Probabilities of each layer; a curve can have several (a flat curve has none)."""


def sample_curves(
    n_curves: int, n_steps: int, rng: np.random.Generator
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Draws ``n_curves`` curves of ``n_steps`` points from the prior.

    Args:
        n_curves: How many curves.
        n_steps: Points per curve, the steps ``0 .. n_steps - 1``.
        rng: The random generator; the draw is a function of its state.

    Returns:
        ``(x, y)``: the normalised times ``(step + 1) / n_steps``, shape ``(n_steps,)``, and
        the values in ``[0, 1]``, shape ``(n_curves, n_steps)``.
    """
    x = np.arange(1, n_steps + 1, dtype=np.float64) / n_steps
    n = n_curves
    column = (n, 1)

    # A saturating rise from y0 towards y_inf.
    err_inf = np.exp(rng.uniform(np.log(0.003), np.log(0.9), column))
    y_inf = 1.0 - err_inf
    y0 = y_inf * rng.uniform(0.0, 0.95, column) ** 1.5
    rate = np.exp(rng.uniform(np.log(0.5), np.log(40.0), column))
    power = np.exp(rng.uniform(np.log(0.3), np.log(3.0), column))
    mix = rng.uniform(0.0, 1.0, column) * (rng.uniform(size=column) < 0.5)
    decay_pow = (1.0 + rate * x) ** -power
    decay_exp = np.exp(-rate * x / 2.0)
    shape = mix * decay_exp + (1.0 - mix) * decay_pow
    y = y_inf - (y_inf - y0) * shape

    # A late lift: cosine-like (smooth) or a step decay (sudden), towards a higher level.
    headroom = 1.0 - y
    lift = rng.uniform(0.0, 0.5, column) * headroom[:, -1:]
    start = rng.uniform(0.4, 0.9, column)
    ramp = np.clip((x - start) / (1.0 - start), 0.0, 1.0)
    smooth = 0.5 - 0.5 * np.cos(np.pi * ramp)
    sudden = 1.0 - np.exp(-((x - start).clip(min=0.0)) * rng.uniform(20.0, 200.0, column))
    y = y + lift * smooth * (rng.uniform(size=column) < P_LATE_LIFT)
    y = y + lift * sudden * (rng.uniform(size=column) < P_STEP_DECAY)

    # A slow decline after a peak.
    peak = rng.uniform(0.2, 0.9, column)
    slope = rng.uniform(0.0, 0.3, column) * y[:, -1:]
    y = y - slope * (x - peak).clip(min=0.0) * (rng.uniform(size=column) < P_DECLINE)

    # Divergence: from a point on, a constant level near chance.
    onset = rng.uniform(0.05, 1.0, column)
    level = rng.uniform(0.0, 1.0, column) * y0
    diverged = (x >= onset) & (rng.uniform(size=column) < P_DIVERGE)
    y = np.where(diverged, level, y)

    # A network that does not learn.
    flat = rng.uniform(size=column) < P_FLAT
    y = np.where(flat, y0 * np.ones_like(x), y)

    # Noise, and rare downward spikes.
    sigma = np.exp(rng.uniform(np.log(0.0005), np.log(0.05), column))
    y = y + sigma * rng.standard_normal((n, n_steps))
    spiky = rng.uniform(size=column) < P_SPIKES
    spikes = (rng.uniform(size=(n, n_steps)) < 0.05) & spiky
    y = y - spikes * rng.uniform(0.0, 0.3, (n, n_steps)) * y
    return x, np.clip(y, 0.0, 1.0)


__all__ = ["MAX_STEPS", "MIN_STEPS", "sample_curves"]
