"""Scoring a trained network: accuracy on a split, and inference latency."""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from optuna_nas.data import Dataset, Split

GPU_RESIDENT_LIMIT_BYTES = 4 * 2**30
"""Datasets up to this size are copied to the GPU once instead of batch by batch."""

LATENCY_REPEATS = 5
"""Timed forward passes behind the ``optuna_nas:latency_ms`` user attribute (after one warm-up)."""


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    x: torch.Tensor,
    device: str | torch.device | None = None,
    *,
    repeats: int = LATENCY_REPEATS,
    amp: bool = True,
    memory_format: torch.memory_format | None = None,
) -> float:
    """Median milliseconds of one inference forward pass of ``model`` on the batch ``x``.

    The model runs in eval mode (restored afterwards) under the same autocast as
    :func:`evaluate`; one untimed pass warms up kernels and caches, then ``repeats`` passes
    are timed, synchronising CUDA around each. Nothing in the model changes: batch-norm
    statistics are not updated and no random numbers are drawn.

    Args:
        model: The network, already on ``device``.
        x: One input batch (e.g. ``batch_size`` validation examples).
        device: Where to run; ``None`` uses the model's device.
        repeats: Timed passes, at least 1.
        amp: Use bfloat16 autocast on CUDA.
        memory_format: Memory format for 4-D inputs.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    dev = model_device(model) if device is None else torch.device(device)
    x = x.to(dev)
    if memory_format is not None:
        x = x.contiguous(memory_format=memory_format)
    was_training = model.training
    model.eval()
    times = []
    try:
        for i in range(repeats + 1):
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter()
            with autocast(dev, amp):
                model(x)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if i:
                times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times) * 1000.0


def model_device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split | tuple[torch.Tensor, torch.Tensor],
    device: str | torch.device | None = None,
    *,
    batch_size: int = 512,
    amp: bool = True,
    memory_format: torch.memory_format | None = None,
) -> float:
    """Accuracy of ``model`` on a split, in ``[0, 1]``.

    Args:
        model: A classifier returning logits.
        split: A :class:`optuna_nas.data.Split` (uint8 pixels are standardised batch by
            batch), or an ``(x, y)`` pair of float inputs and labels.
        device: Where to run; ``None`` uses the model's device.
        batch_size: Examples per forward pass.
        amp: Use bfloat16 autocast on CUDA.
        memory_format: Memory format for 4-D inputs.
    """
    x_all, y_all = split if isinstance(split, tuple) else (split.x, split.y)
    decode = (lambda x: x) if isinstance(split, tuple) else split.decode
    dev = model_device(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=dev)
    for start in range(0, len(y_all), batch_size):
        x = decode(x_all[start : start + batch_size].to(dev, non_blocking=True))
        y = y_all[start : start + batch_size].to(dev, non_blocking=True)
        if memory_format is not None:
            x = x.contiguous(memory_format=memory_format)
        with autocast(dev, amp):
            logits = model(x)
        correct += (logits.argmax(dim=1) == y).sum()
    model.train(was_training)
    return float(correct) / max(1, len(y_all))


def place(split: Split, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies small datasets to the accelerator once; pins big ones for async batch copies."""
    x, y = split.x, split.y
    if dev.type == "cpu" or split.on_disk:  # memory-mapped data is read batch by batch
        return x, y
    if x.numel() * x.element_size() <= GPU_RESIDENT_LIMIT_BYTES:
        return x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
    if dev.type == "cuda":
        return x.pin_memory(), y.pin_memory()
    return x, y


def batch(
    x: torch.Tensor,
    y: torch.Tensor,
    index: torch.Tensor,
    dev: torch.device,
    memory_format: torch.memory_format | None,
    split: Split | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples at ``index`` on ``dev``, standardised by ``split`` if it holds pixels."""
    if x.device != index.device:
        index = index.to(x.device)
    xb = x.index_select(0, index).to(dev, non_blocking=True)
    yb = y.index_select(0, index).to(dev, non_blocking=True)
    if split is not None:
        xb = split.decode(xb)
    if memory_format is not None:
        xb = xb.contiguous(memory_format=memory_format)
    return xb, yb


def image_memory_format(
    dev: torch.device, data: Dataset, channels_last: bool | None = None
) -> torch.memory_format | None:
    """``channels_last`` for image batches (4-D) when asked, or by default on CUDA."""
    is_image = data.train.x.dim() == 4
    if channels_last is None:
        channels_last = dev.type == "cuda"
    return torch.channels_last if channels_last and is_image else None


def autocast(dev: torch.device, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    """bfloat16 autocast on CUDA; a no-op context elsewhere (entering autocast costs time)."""
    if enabled and dev.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()
