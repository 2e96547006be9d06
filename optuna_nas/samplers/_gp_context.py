"""Two helpers of the GP sampler: Hamming distances over an enumerated space, and the
seeded single-thread context its models are fitted in."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch


def check_count(name: str, value: object, minimum: int, alternative: str = "") -> None:
    """Raises ``ValueError`` unless ``value`` is an integer (not a bool) ``>= minimum``."""
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        kind = {0: "a non-negative integer", 1: "a positive integer"}.get(
            minimum, f"an integer >= {minimum}"
        )
        extra = f" {alternative}" if alternative else ""
        raise ValueError(f"{name} must be {kind}{extra}, got {value!r}")


class DecisionCodes:
    """The enumerated architectures as a matrix of value codes, one column per parameter,
    for counting in how many parameters each differs from a given assignment."""

    def __init__(self, genomes: Sequence[Mapping[str, Any]]) -> None:
        self.names = sorted({name for g in genomes for name in g})
        self.values: list[dict[Any, int]] = [{} for _ in self.names]
        self.codes = np.full((len(genomes), len(self.names)), -1, dtype=np.int64)
        for row, genome in enumerate(genomes):
            for col, name in enumerate(self.names):
                if name in genome:
                    table = self.values[col]
                    self.codes[row, col] = table.setdefault(genome[name], len(table))

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """``params``'s codes: -1 where a parameter is absent, -2 for an unseen value."""
        return np.array(
            [
                self.values[col].get(params[name], -2) if name in params else -1
                for col, name in enumerate(self.names)
            ],
            dtype=np.int64,
        )

    def within(self, centers: Sequence[Mapping[str, Any]], radius: int) -> np.ndarray:
        """Per architecture, whether it differs from some center in at most ``radius``
        parameters; parameters that are not the enumerated space's are ignored."""
        near = np.zeros(len(self.codes), dtype=bool)
        for center in centers:
            near |= (self.codes != self.encode(center)).sum(axis=1) <= radius
        return near


@contextlib.contextmanager
def model_context(seed: int) -> Iterator[None]:
    """Seeds PyTorch without touching the caller's random state, on one CPU thread.

    One thread avoids the oversubscription between PyTorch's and SciPy's thread pools
    that Optuna's ``GPSampler`` also guards against; the matrices here are small. The
    default device is pinned to the CPU in case the user set another one. Cholesky
    jitter is the expected remedy for near-identical architectures, so its warning is
    silenced.
    """
    from linear_operator.utils.warnings import NumericalWarning

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with (
            torch.random.fork_rng(devices=[]),
            torch.device("cpu"),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", NumericalWarning)
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(threads)
