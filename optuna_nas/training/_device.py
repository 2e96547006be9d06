"""Device choice and seeding."""

from __future__ import annotations

import random

import numpy as np
import torch


def select_device(device: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``device`` if given, else CUDA, then MPS, then the CPU.

    Args:
        device: ``"cuda"``, ``"cuda:1"``, ``"mps"``, ``"cpu"``, ``"auto"`` or ``None``.

    Raises:
        ValueError: If an explicitly requested accelerator is not available here.
    """
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as err:
        raise ValueError(
            f"invalid device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from err
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but CUDA is not available; use 'cpu' or 'auto'"
        )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {device!r} requested but MPS is not available; use 'cpu' or 'auto'"
        )
    return chosen


def seed_everything(seed: int) -> None:
    """Seeds Python's, NumPy's and PyTorch's global generators (all CUDA devices too).

    Call it before building a model so that weight initialisation is repeatable; :func:`fit`
    seeds its own batch order and dropout from its ``seed`` argument.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
