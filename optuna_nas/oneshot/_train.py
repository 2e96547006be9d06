"""Training a supernet by sampled paths, and scoring its subnetworks with shared weights."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from optuna_nas.training._device import select_device
from optuna_nas.training._evaluate import autocast, batch, evaluate, image_memory_format

if TYPE_CHECKING:
    from optuna_nas.data import Dataset, Split
    from optuna_nas.oneshot._supernet import Supernet
    from optuna_nas.spaces import Architecture

SCORE_METRICS = ("accuracy", "loss")
"""What :func:`score_architecture` scores: validation accuracy or negative loss."""

STRATEGIES = ("spos", "fair")
"""How :func:`train_supernet` picks the paths it trains."""

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def train_supernet(
    supernet: Supernet,
    data: Dataset,
    *,
    epochs: int = 10,
    strategy: str = "spos",
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> list[float]:
    """Trains the supernet's shared weights on ``data.train``, one sampled path per step.

    On CUDA, as in :func:`optuna_nas.training.fit`, steps run under bfloat16 autocast and
    image batches in ``channels_last``.

    ``"spos"`` draws every edge's operation uniformly at each step (single-path one-shot).
    ``"fair"`` draws, for each step, one permutation of the operations per edge and trains
    the ``m`` paths it forms (one gradient step over their summed losses), so that every
    operation of every edge is trained exactly as often (FairNAS's strict fairness); a
    step then costs ``m`` forward and backward passes. AdamW with a cosine schedule, as
    :func:`optuna_nas.training.fit`.

    Args:
        supernet: From :func:`optuna_nas.oneshot.build_supernet`.
        data: The dataset; only ``train`` is used.
        epochs: Passes over the training split.
        strategy: One of :data:`STRATEGIES`.
        batch_size: Examples per step.
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        seed: Seeds the batch order and the paths.
        device: ``None`` picks CUDA, then MPS, then the CPU.
        progress: Show a progress bar.

    Returns:
        The mean training loss of each epoch.

    Raises:
        ValueError: For an unknown strategy or non-positive sizes.

    References:
        Z. Guo, X. Zhang, H. Mu, W. Heng, Z. Liu, Y. Wei and J. Sun. Single Path One-Shot
        Neural Architecture Search with Uniform Sampling. ECCV 2020.

        X. Chu, B. Zhang and R. Xu. FairNAS: Rethinking Evaluation Fairness of Weight
        Sharing Neural Architecture Search. ICCV 2021.
    """
    from tqdm.auto import tqdm

    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown supernet strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    dev = select_device(device)
    memory_format = image_memory_format(dev, data)
    supernet.to(dev).train()
    if memory_format is not None:
        supernet.to(memory_format=memory_format)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    split = data.train
    steps = max(1, math.ceil(len(split) / batch_size))
    optimizer = torch.optim.AdamW(supernet.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps)
    criterion = nn.CrossEntropyLoss()
    losses = []
    bar = tqdm(total=epochs * steps, disable=not progress, unit="step", desc="supernet")
    for _ in range(epochs):
        order = torch.randperm(len(split), generator=generator)
        total = torch.zeros((), device=dev)
        for step in range(steps):
            index = order[step * batch_size : (step + 1) * batch_size]
            x, y = batch(split.x, split.y, index, dev, memory_format, split)
            optimizer.zero_grad(set_to_none=True)
            paths = [supernet.sample_path(rng)] if strategy == "spos" else supernet.fair_paths(rng)
            for path in paths:
                supernet.set_path(path)
                with autocast(dev, True):
                    loss = criterion(supernet(x), y)
                loss.backward()
                total += loss.detach() * len(index)
            optimizer.step()
            scheduler.step()
            bar.update()
        losses.append(float(total) / (len(split) * len(paths)))
    bar.close()
    return losses


@torch.no_grad()
def recalibrate_batch_norm(
    supernet: Supernet,
    split: Split,
    *,
    batches: int = 8,
    batch_size: int = 128,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> None:
    """Re-estimates the batch-norm statistics of the active path on training batches.

    Shared weights serve many paths, so the running statistics a supernet accumulates
    belong to none of them. Before a subnetwork is scored, its statistics are reset and
    recomputed as a plain average over ``batches`` batches with its own path.

    References:
        Z. Guo et al. Single Path One-Shot Neural Architecture Search with Uniform
        Sampling. ECCV 2020 (Section 3.4).
    """
    dev = select_device(device)
    norms = [m for m in supernet.modules() if isinstance(m, _BATCH_NORMS)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    was_training = supernet.training
    supernet.train()
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(split), generator=generator)
    try:
        for k in range(min(batches, max(1, math.ceil(len(split) / batch_size)))):
            index = order[k * batch_size : (k + 1) * batch_size]
            x, _ = batch(split.x, split.y, index, dev, None, split)
            supernet(x)
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        supernet.train(was_training)


def score_architecture(
    supernet: Supernet,
    arch: Architecture | dict[str, str],
    data: Dataset,
    *,
    recalibration_batches: int = 8,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    metric: str = "accuracy",
) -> float:
    """Validation score of an architecture with the supernet's shared weights.

    Sets the path, recalibrates its batch norms on training batches (see
    :func:`recalibrate_batch_norm`) and scores ``data.valid``. Seconds instead of a
    training run.

    ``metric="loss"`` scores the negative mean cross-entropy instead of the accuracy: a
    continuous score that separates architectures the accuracy of a small validation split
    ties. On our ground truth it ranks cells better (``benchmarks/oneshot_rank.py``
    reports both).

    Args:
        supernet: A trained supernet.
        arch: The architecture, or its parameters.
        data: The dataset.
        recalibration_batches: Training batches for the batch-norm statistics.
        batch_size: Examples per batch.
        device: ``None`` picks CUDA, then MPS, then the CPU.
        metric: ``"accuracy"`` or ``"loss"``; higher is better for both.

    Returns:
        Accuracy in ``[0, 1]``, or the negative mean cross-entropy.

    Raises:
        ValueError: For an unknown metric.
    """
    if metric not in SCORE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of: {', '.join(SCORE_METRICS)}")
    dev = select_device(device)
    supernet.to(dev)
    supernet.set_path(arch)
    recalibrate_batch_norm(
        supernet, data.train, batches=recalibration_batches, batch_size=batch_size, device=dev
    )
    if metric == "loss":
        return -_mean_loss(supernet, data.valid, dev, max(batch_size, 512))
    return evaluate(supernet, data.valid, dev, batch_size=max(batch_size, 512))


@torch.no_grad()
def _mean_loss(model: nn.Module, split: Split, dev: torch.device, batch_size: int) -> float:
    model.eval()
    total = torch.zeros((), device=dev)
    for start in range(0, len(split), batch_size):
        index = torch.arange(start, min(start + batch_size, len(split)))
        x, y = batch(split.x, split.y, index, dev, None, split)
        with autocast(dev, True):
            logits = model(x)
        total += nn.functional.cross_entropy(logits.float(), y, reduction="sum")
    return float(total) / len(split)
