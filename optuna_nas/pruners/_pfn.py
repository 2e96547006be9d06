"""A prior-fitted network that predicts where a learning curve ends (LC-PFN).

LC-PFN (Adriaensen et al., NeurIPS 2023) is a transformer trained on curves drawn from a
prior (:mod:`optuna_nas.pruners._pfn_prior`). Given the first values of a curve, it outputs
the posterior predictive distribution of a later value in one forward pass, as a histogram
over fixed bins (the "bar distribution" of Müller et al., ICLR 2022). This module holds
this project's own small network, its loading and its predictions; the weights ship with
the package (``lcpfn.pt``, 0.6 MB) and are made by ``benchmarks/train_lcpfn.py``.

The authors' ``lcpfn`` package is not used: it requires ``torch<=1.11`` and ``numpy<2``,
downloads its weights at run time, and loads them as a pickled module. Ours loads a state
dict with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import functools
import math
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from optuna_nas.pruners._pfn_prior import MAX_STEPS

WEIGHTS_FILE = "lcpfn.pt"
"""The file, in this package, that holds the shipped network."""

_ERROR_FLOOR = 1e-3


def _features(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Observed point features: time, value, and the log error, which resolves values near 1."""
    log_error = torch.log10(1.0 - y + _ERROR_FLOOR) / 3.0
    return torch.stack([x, y, log_error], dim=-1)


class CurvePFN(nn.Module):
    """A transformer that predicts the distribution of a curve's later values.

    The observed points ``(x, y)`` attend to one another; each query time attends to the
    observed points only, so queries do not see each other and any number can be asked at
    once. The output is, per query, logits over the bins between ``borders``, the
    quantiles of the prior's final values.

    Args:
        borders: Increasing bin edges in ``[0, 1]``, from 0 to 1.
        d_model: Width of the transformer.
        n_layers: Encoder layers.
        n_heads: Attention heads.
        d_ff: Width of the feed-forward layers.

    References:
        Samuel Müller, Noah Hollmann, Sebastian Pineda Arango, Josif Grabocka, Frank Hutter.
        "Transformers Can Do Bayesian Inference". ICLR 2022.

        Steven Adriaensen, Herilalaina Rakotoarison, Samuel Müller, Frank Hutter. "Efficient
        Bayesian Learning Curve Extrapolation using Prior-Data Fitted Networks". NeurIPS 2023.
    """

    borders: torch.Tensor

    def __init__(
        self,
        borders: torch.Tensor,
        d_model: int = 64,
        n_layers: int = 3,
        n_heads: int = 4,
        d_ff: int = 128,
    ) -> None:
        super().__init__()
        self.register_buffer("borders", borders.to(torch.float32))
        self.config = {"d_model": d_model, "n_layers": n_layers, "n_heads": n_heads, "d_ff": d_ff}
        self.observed = nn.Linear(3, d_model)
        self.query = nn.Linear(1, d_model)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout=0.0, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.head = nn.Sequential(
            nn.LayerNorm(d_model),
            nn.Linear(d_model, d_ff),
            nn.GELU(),
            nn.Linear(d_ff, len(borders) - 1),
        )

    def forward(
        self, x_observed: torch.Tensor, y_observed: torch.Tensor, x_query: torch.Tensor
    ) -> torch.Tensor:
        """Logits of shape ``(batch, n_query, n_bins)`` from ``(batch, n)`` observed times and
        values and ``(batch, n_query)`` query times."""
        n = x_observed.shape[1]
        tokens = torch.cat(
            [self.observed(_features(x_observed, y_observed)), self.query(x_query[..., None])],
            dim=1,
        )
        blocked = torch.zeros(
            tokens.shape[1], tokens.shape[1], dtype=torch.bool, device=tokens.device
        )
        blocked[:, n:] = True
        out = self.encoder(tokens, mask=blocked)
        return self.head(out[:, n:])

    def target_bins(self, y: torch.Tensor) -> torch.Tensor:
        """The bin each value falls in (values at 1 fall in the last bin)."""
        inner = self.borders[1:-1].contiguous()
        return torch.bucketize(y.contiguous(), inner, right=True)


def bin_moments(
    probs: npt.NDArray[np.float64], borders: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Mean and standard deviation of a histogram density (uniform within each bin)."""
    lo, hi = borders[:-1], borders[1:]
    mean = float(np.sum(probs * (lo + hi) / 2.0))
    second = float(np.sum(probs * (lo**2 + lo * hi + hi**2) / 3.0))
    return mean, math.sqrt(max(second - mean**2, 0.0))


def bin_survival(
    probs: npt.NDArray[np.float64], borders: npt.NDArray[np.float64], threshold: float
) -> float:
    """``P(Y > threshold)`` under a histogram density, uniform within each bin."""
    lo, hi = borders[:-1], borders[1:]
    above = np.clip((hi - threshold) / (hi - lo), 0.0, 1.0)
    return float(np.sum(probs * above))


def save(model: CurvePFN, path: str, meta: dict[str, Any]) -> None:
    """Writes ``model`` as plain tensors and numbers, loadable with ``weights_only=True``."""
    torch.save({"config": model.config, "state": model.state_dict(), "meta": meta}, path)


def load(path: str | None = None) -> CurvePFN:
    """Loads a network saved by :func:`save`; ``None`` loads the shipped one (cached).

    Raises:
        FileNotFoundError: If the file is missing.
    """
    if path is None:
        return _shipped()
    return _load(path)


def _load(path: Any) -> CurvePFN:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob["state"]
    model = CurvePFN(state["borders"], **blob["config"])
    model.load_state_dict(state)
    model.eval()
    return model


@functools.cache
def _shipped() -> CurvePFN:
    with resources.as_file(resources.files("optuna_nas.pruners") / WEIGHTS_FILE) as path:
        return _load(path)


@torch.no_grad()
def predict(
    model: CurvePFN, steps: npt.ArrayLike, values: npt.ArrayLike, max_step: int
) -> npt.NDArray[np.float64]:
    """The predicted distribution of the value at ``max_step``, as bin probabilities.

    Args:
        model: The network.
        steps: The steps reported so far (from 0), increasing.
        values: Their values, in the unit interval with higher being better.
        max_step: The step whose value is predicted.

    Returns:
        Probabilities over the bins between ``model.borders``.
    """
    s = np.asarray(steps, dtype=np.float64)
    y = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if len(s) > MAX_STEPS - 1:  # longer than any context in training: thin it evenly
        keep = np.unique(np.linspace(0, len(s) - 1, MAX_STEPS - 1).round().astype(int))
        s, y = s[keep], y[keep]
    x = (s + 1.0) / (max_step + 1.0)
    logits = model(
        torch.as_tensor(x, dtype=torch.float32)[None],
        torch.as_tensor(y, dtype=torch.float32)[None],
        torch.ones(1, 1),
    )
    return torch.softmax(logits[0, 0].double(), dim=-1).numpy()


__all__ = ["CurvePFN", "bin_moments", "bin_survival", "load", "predict", "save"]
