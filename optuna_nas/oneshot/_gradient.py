"""Gradient-based architecture search on a supernet: DARTS, GDAS, DrNAS and beta-DARTS.

Each searched decision gets a vector of architecture parameters ``alpha``, one per
candidate operation, shared by the edges of that decision in every cell. Training
alternates a step on the network's weights (on a training batch) with a step on the
architecture parameters (on a validation batch), first order: the weights are held fixed
while ``alpha`` moves. The architecture derived at the end takes each decision's
strongest candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from optuna_nas.training._device import select_device
from optuna_nas.training._evaluate import autocast, batch, image_memory_format

if TYPE_CHECKING:
    from optuna_nas.data import Dataset, Split
    from optuna_nas.oneshot._supernet import Supernet

GRADIENT_METHODS = ("darts", "gdas", "drnas", "beta-darts")
"""The gradient-based methods of :func:`gradient_search`."""

PUBLISHED_ARCH_LR = 3e-4
PUBLISHED_ARCH_STEPS = 50 * 391  # NAS-Bench-201's DARTS: 50 epochs of 25,000 images at 64


@dataclass
class GradientSearchResult:
    """What a gradient-based search found.

    Attributes:
        method: The method, one of :data:`GRADIENT_METHODS`.
        params: The derived architecture (:meth:`~optuna_nas.oneshot.Supernet.derive`):
            in ``nb201`` each edge's most probable candidate.
        history: The architecture distribution after each epoch, starting with the one at
            initialisation: per decision, each candidate's probability (the softmax of
            ``alpha`` for DARTS, GDAS and beta-DARTS, the Dirichlet mean for DrNAS).
        losses: The mean training loss of each epoch.
    """

    method: str
    params: dict[str, str]
    history: list[dict[str, dict[str, float]]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def gradient_search(
    supernet: Supernet,
    data: Dataset,
    *,
    method: str = "darts",
    epochs: int = 20,
    batch_size: int = 64,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    arch_lr: float | None = None,
    arch_weight_decay: float = 1e-3,
    temperature: tuple[float, float] = (10.0, 0.1),
    kl_weight: float = 1e-3,
    beta_weight: float = 1.0,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
) -> GradientSearchResult:
    """Searches the supernet's space by gradient descent on architecture parameters.

    - ``"darts"``: every edge computes the softmax-weighted sum of all its candidates.
      First-order DARTS, which on NAS-Bench-201 is known to collapse to skip connections
      and parameter-free operations.
    - ``"gdas"``: every step samples one candidate per decision from a Gumbel-softmax with
      temperature annealed linearly from ``temperature[0]`` to ``temperature[1]``; only
      the sampled candidate runs, and the gradient reaches ``alpha`` straight through.
    - ``"drnas"``: the mixture weights are drawn from a Dirichlet distribution whose
      concentration is ``elu(alpha) + 1`` (reparameterised), with a KL penalty of weight
      ``kl_weight`` towards the uniform Dirichlet; the noise keeps the search from
      collapsing.
    - ``"beta-darts"``: DARTS with the beta-decay regularisation: the architecture loss
      adds ``lambda`` times the sum over decisions of ``logsumexp(alpha)``, whose gradient
      is the softmax itself, so the largest parameters decay fastest and no candidate
      runs away early. ``lambda`` rises linearly from 0 at the first epoch to
      ``beta_weight`` at the last.

    The network's weights follow :func:`optuna_nas.training.fit`'s recipe (AdamW with a
    cosine schedule; on CUDA bfloat16 autocast and ``channels_last`` images) on
    ``data.train``; ``alpha`` follows DARTS's Adam (betas 0.5 and
    0.999) on ``data.valid``.

    Args:
        supernet: From :func:`optuna_nas.oneshot.build_supernet`, untrained.
        data: The dataset: weights learn on ``train``, architecture parameters on ``valid``.
        method: One of :data:`GRADIENT_METHODS`.
        epochs: Passes over the training split.
        batch_size: Examples per step, for both kinds of step.
        lr: Peak AdamW learning rate of the weights.
        weight_decay: AdamW weight decay of the weights.
        arch_lr: Adam learning rate of the architecture parameters. ``None`` sets it so
            that the run's architecture steps add up to those of the published NAS-Bench-201
            runs (3e-4 for 50 epochs of 391 steps): ``5.87 / steps``, at least 3e-4 and at
            most 3e-2. Small datasets take few steps, and at 3e-4 their ``alpha`` would
            hardly move.
        arch_weight_decay: Weight decay of the architecture parameters.
        temperature: GDAS's Gumbel-softmax temperature at the first and the last epoch.
        kl_weight: DrNAS's weight of the KL penalty.
        beta_weight: beta-DARTS's weight of the beta-decay term at the last epoch.
        seed: Seeds ``alpha``'s initialisation, the batch order and the samples (the
            supernet's weights are as :func:`build_supernet` made them: seed before).
        device: ``None`` picks CUDA, then MPS, then the CPU.
        progress: Show a progress bar.

    Returns:
        The derived architecture's parameters and the run's history.

    Raises:
        ValueError: For an unknown method or non-positive sizes.

    Example:
        .. code-block:: python

            from optuna_nas import data, oneshot, spaces

            dataset = data.load("mnist1d", num_samples=1000)
            space = spaces.create("nb201", channels=4, cells_per_stage=1)
            supernet = oneshot.build_supernet(space, dataset.input_shape, 10)
            result = oneshot.gradient_search(supernet, dataset, method="drnas", epochs=1)
            arch = space.from_params(result.params)

    References:
        H. Liu, K. Simonyan and Y. Yang. DARTS: Differentiable Architecture Search. ICLR
        2019.

        X. Dong and Y. Yang. Searching for a Robust Neural Architecture in Four GPU Hours
        (GDAS). CVPR 2019.

        X. Chen, R. Wang, M. Cheng, X. Tang and C.-J. Hsieh. DrNAS: Dirichlet Neural
        Architecture Search. ICLR 2021.

        P. Ye, B. Li, Y. Li, T. Chen, J. Fan and W. Ouyang. beta-DARTS: Beta-Decay
        Regularization for Differentiable Architecture Search. CVPR 2022.
    """
    from tqdm.auto import tqdm

    if method not in GRADIENT_METHODS:
        raise ValueError(
            f"unknown gradient method {method!r}; choose one of: {', '.join(GRADIENT_METHODS)}"
        )
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if not (math.isfinite(beta_weight) and beta_weight >= 0):
        raise ValueError(f"beta_weight must be a finite number >= 0, got {beta_weight}")
    dev = select_device(device)
    memory_format = image_memory_format(dev, data)
    supernet.to(dev).train()
    if memory_format is not None:
        supernet.to(memory_format=memory_format)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    noise = torch.Generator(device=dev).manual_seed(seed)
    decisions = supernet.decisions
    alphas = {
        name: nn.Parameter(1e-3 * torch.randn(len(ops), generator=generator).to(dev))
        for name, ops in decisions.items()
    }
    weights_opt = torch.optim.AdamW(supernet.parameters(), lr=lr, weight_decay=weight_decay)
    steps = max(1, math.ceil(len(data.train) / batch_size))
    if arch_lr is None:
        arch_lr = min(max(1.0, PUBLISHED_ARCH_STEPS / (epochs * steps)), 100.0) * PUBLISHED_ARCH_LR
    arch_opt = torch.optim.Adam(
        list(alphas.values()), lr=arch_lr, betas=(0.5, 0.999), weight_decay=arch_weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(weights_opt, epochs * steps)
    criterion = nn.CrossEntropyLoss()
    valid = _Cycle(data.valid, batch_size, generator, dev, memory_format)
    result = GradientSearchResult(method, {}, [_distribution(method, alphas, decisions)])
    bar = tqdm(total=epochs * steps, disable=not progress, unit="step", desc=method)
    for epoch in range(epochs):
        fraction = epoch / max(1, epochs - 1)
        tau = temperature[0] + (temperature[1] - temperature[0]) * fraction
        beta_lambda = beta_weight * fraction
        order = torch.randperm(len(data.train), generator=generator)
        total = torch.zeros((), device=dev)
        for step in range(steps):
            # The architecture step, first order: the weights stay as they are.
            x, y = valid.next()
            supernet.set_mixture(_mixture(method, alphas, tau, noise), hard=method == "gdas")
            with autocast(dev, True):
                loss = criterion(supernet(x), y)
            if method == "drnas":
                loss = loss + kl_weight * _dirichlet_kl(alphas)
            elif method == "beta-darts" and beta_lambda > 0:
                loss = loss + beta_lambda * sum(
                    torch.logsumexp(a, dim=-1) for a in alphas.values()
                )
            grads = torch.autograd.grad(loss, list(alphas.values()))
            for alpha, grad in zip(alphas.values(), grads, strict=True):
                alpha.grad = grad
            arch_opt.step()
            # The weight step, with the mixture held fixed.
            index = order[step * batch_size : (step + 1) * batch_size]
            x, y = batch(data.train.x, data.train.y, index, dev, memory_format, data.train)
            with torch.no_grad():
                mixture = _mixture(method, alphas, tau, noise)
            supernet.set_mixture(mixture, hard=method == "gdas")
            weights_opt.zero_grad(set_to_none=True)
            with autocast(dev, True):
                loss = criterion(supernet(x), y)
            loss.backward()
            weights_opt.step()
            scheduler.step()
            total += loss.detach() * len(index)
            bar.update()
        result.losses.append(float(total) / len(data.train))
        result.history.append(_distribution(method, alphas, decisions))
    bar.close()
    result.params = supernet.derive(_distribution(method, alphas, decisions, digits=None))
    supernet.set_path(result.params)
    return result


def encode_history(history: list[dict[str, dict[str, float]]]) -> dict[str, Any]:
    """A compact JSON form of :attr:`GradientSearchResult.history` for a trial attribute.

    Candidate names are stored once, probabilities to 4 decimals; at most 101 snapshots
    are kept (the first, the last and evenly spaced ones between), so the attribute stays
    small on every storage.

    Returns:
        ``{"decisions": {name: [candidate, ...]}, "epoch_numbers": [0, ...], "epochs":
        [[[p, ...], ...], ...]}``: per snapshot, per decision, each candidate's probability.
    """
    if not history:
        return {"decisions": {}, "epochs": [], "epoch_numbers": []}
    spaced = np.linspace(0, len(history) - 1, min(len(history), 101))
    keep = sorted(set(spaced.round().astype(int)))
    decisions = {name: list(probs) for name, probs in history[0].items()}
    return {
        "decisions": decisions,
        "epoch_numbers": [int(k) for k in keep],
        "epochs": [
            [[round(history[k][name][op], 4) for op in ops] for name, ops in decisions.items()]
            for k in keep
        ],
    }


def _mixture(
    method: str, alphas: dict[str, nn.Parameter], tau: float, noise: torch.Generator
) -> dict[str, torch.Tensor]:
    if method in ("darts", "beta-darts"):
        return {name: torch.softmax(a, dim=-1) for name, a in alphas.items()}
    if method == "gdas":
        mixture = {}
        for name, a in alphas.items():
            gumbel = -torch.empty_like(a).exponential_(generator=noise).log()
            soft = torch.softmax((torch.log_softmax(a, dim=-1) + gumbel) / tau, dim=-1)
            hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(-1, keepdim=True), 1.0)
            mixture[name] = hard - soft.detach() + soft
        return mixture
    # DrNAS; torch's Dirichlet sampler draws from the global generator, seeded above.
    return {name: _dirichlet(a).rsample() for name, a in alphas.items()}


def _dirichlet(alpha: torch.Tensor) -> torch.distributions.Dirichlet:
    return torch.distributions.Dirichlet(nn.functional.elu(alpha) + 1.0)


def _dirichlet_kl(alphas: dict[str, nn.Parameter]) -> torch.Tensor:
    uniform = torch.distributions.Dirichlet
    kls = [
        torch.distributions.kl_divergence(_dirichlet(a), uniform(torch.ones_like(a)))
        for a in alphas.values()
    ]
    return torch.stack(kls).sum()


@torch.no_grad()
def _distribution(
    method: str,
    alphas: dict[str, nn.Parameter],
    decisions: dict[str, tuple[str, ...]],
    digits: int | None = 6,
) -> dict[str, dict[str, float]]:
    out = {}
    for name, a in alphas.items():
        if method == "drnas":
            concentration = nn.functional.elu(a) + 1.0
            probs = concentration / concentration.sum()
        else:
            probs = torch.softmax(a, dim=-1)
        values = [float(p) if digits is None else round(float(p), digits) for p in probs]
        out[name] = dict(zip(decisions[name], values, strict=True))
    return out


class _Cycle:
    """Batches of a split in shuffled order, reshuffled after each pass."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        generator: torch.Generator,
        dev: torch.device,
        memory_format: torch.memory_format | None,
    ) -> None:
        self.split, self.batch_size, self.generator, self.dev = split, batch_size, generator, dev
        self.memory_format = memory_format
        self.order = torch.randperm(len(split), generator=generator)
        self.position = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position >= len(self.split):
            self.order = torch.randperm(len(self.split), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch(self.split.x, self.split.y, index, self.dev, self.memory_format, self.split)
