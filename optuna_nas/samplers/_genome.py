"""Pure operations on assignments of trial parameters ("genomes"), tested without a study.

A genome maps parameter names to external values (what ``trial.params`` holds) and comes
with the distributions those names were suggested with. Nothing here touches Optuna's
storage; the samplers translate between trials and genomes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

Genome = dict[str, Any]


def sample_value(dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A uniformly random value of ``dist`` (log-uniform for log distributions)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.randint(len(dist.choices))]
    if isinstance(dist, IntDistribution):
        if dist.log:
            value = math.exp(rng.uniform(math.log(dist.low), math.log(dist.high + 1)))
            return int(min(dist.high, max(dist.low, math.floor(value))))
        n = (dist.high - dist.low) // dist.step
        return int(dist.low + dist.step * rng.randint(n + 1))
    if isinstance(dist, FloatDistribution):
        if dist.log:
            return float(math.exp(rng.uniform(math.log(dist.low), math.log(dist.high))))
        if dist.step is not None:
            n = round((dist.high - dist.low) / dist.step)
            return float(min(dist.high, dist.low + dist.step * rng.randint(n + 1)))
        return float(rng.uniform(dist.low, dist.high))
    raise TypeError(f"unsupported distribution {dist!r}")


def _n_values(dist: BaseDistribution) -> float:
    if isinstance(dist, CategoricalDistribution):
        return len(dist.choices)
    if isinstance(dist, IntDistribution):
        return (dist.high - dist.low) // dist.step + 1
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        return round((dist.high - dist.low) / dist.step) + 1
    return math.inf


def mutate_value(value: Any, dist: BaseDistribution, rng: np.random.RandomState) -> Any:
    """A different value for one decision.

    Categorical and integer decisions move to another value chosen uniformly; continuous
    ones get a Gaussian step of a fifth of their (log) range, clipped to the bounds.
    A decision with a single value is returned unchanged.
    """
    n = _n_values(dist)
    if n <= 1:
        return value
    if isinstance(dist, FloatDistribution) and dist.step is None:
        lo, hi = (math.log(dist.low), math.log(dist.high)) if dist.log else (dist.low, dist.high)
        x = math.log(value) if dist.log else float(value)
        x = min(hi, max(lo, x + rng.normal(0.0, 0.2 * (hi - lo))))
        return float(math.exp(x) if dist.log else x)
    for _ in range(64):
        candidate = sample_value(dist, rng)
        if candidate != value:
            return candidate
    return candidate


def mutate(
    genome: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    rng: np.random.RandomState,
    n_mutations: int = 1,
) -> Genome:
    """A copy of ``genome`` with ``n_mutations`` distinct decisions changed.

    Only decisions that can take another value are picked. Decisions the change makes
    inactive stay in the copy; the objective simply never asks for them, and decisions it
    newly activates are left for the caller to sample.

    References:
        Real, Aggarwal, Huang and Le, "Regularized Evolution for Image Classifier
        Architecture Search", AAAI 2019 (mutation of one decision per child).
    """
    child = dict(genome)
    mutable = sorted(name for name in genome if _n_values(distributions[name]) > 1)
    if not mutable:
        return child
    picked = rng.choice(len(mutable), size=min(n_mutations, len(mutable)), replace=False)
    for index in picked:
        name = mutable[int(index)]
        child[name] = mutate_value(genome[name], distributions[name], rng)
    return child


def genome_key(genome: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """A hashable, order-free key of an assignment, for deduplication."""
    return tuple(sorted(genome.items()))
