"""Zero-cost proxies: scores of an untrained network that foretell its trained accuracy."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    import optuna

    from optuna_nas.data import Dataset, Split
    from optuna_nas.spaces import Architecture, SearchSpace

_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def synflow(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SynFlow: the synaptic saliency of every weight for a data-free, all-ones input.

    The weights are replaced by their absolute values and batch normalisation is bypassed,
    so the network is a positive linear map of its input; the score is
    ``sum |theta * dR/dtheta|`` for ``R`` the sum of the outputs on one all-ones input, in
    float64. It needs no labels and no data beyond the input shape.

    References:
        H. Tanaka, D. Kunin, D. L. K. Yamins and S. Ganguli. Pruning Neural Networks
        without Any Data by Iteratively Conserving Synaptic Flow. NeurIPS 2020.

        M. S. Abdelfattah, A. Mehrotra, L. Dudziak and N. D. Lane. Zero-Cost Proxies for
        Lightweight NAS. ICLR 2021.
    """
    net = copy.deepcopy(model).double().train()
    for module in net.modules():
        if isinstance(module, _BATCH_NORMS):
            module.forward = _identity  # type: ignore[method-assign, assignment]
    with torch.no_grad():
        for param in net.parameters():
            param.abs_()
    ones = torch.ones((1, *x.shape[1:]), dtype=torch.float64, device=x.device)
    net.zero_grad()
    net(ones).sum().backward()
    return float(
        sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None)
    )


def snip(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """SNIP: the connection sensitivity ``sum |theta * dL/dtheta|`` of the loss on a batch.

    References:
        N. Lee, T. Ajanthan and P. H. S. Torr. SNIP: Single-shot Network Pruning based on
        Connection Sensitivity. ICLR 2019.
    """
    net = copy.deepcopy(model).train()
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    return float(
        sum((p.detach() * p.grad).abs().sum() for p in net.parameters() if p.grad is not None)
    )


def grad_norm(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The sum over parameter tensors of the L2 norm of the loss gradient on a batch.

    References:
        M. S. Abdelfattah, A. Mehrotra, L. Dudziak and N. D. Lane. Zero-Cost Proxies for
        Lightweight NAS. ICLR 2021.
    """
    net = copy.deepcopy(model).train()
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    return float(sum(p.grad.norm() for p in net.parameters() if p.grad is not None))


def naswot(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """NASWOT: how differently the ReLUs of the untrained network split a batch.

    Each example's binary code is which ReLU units it activates; ``K[i, j]`` counts the
    units on which examples ``i`` and ``j`` agree, and the score is ``log |det K|``. A net
    that separates the inputs well at initialisation tends to train well.

    References:
        J. Mellor, J. Turner, A. Storkey and E. J. Crowley. Neural Architecture Search
        without Training. ICML 2021.
    """
    net = copy.deepcopy(model).train()
    n = len(x)
    kernel = torch.zeros((n, n), dtype=torch.float64, device=x.device)

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = (output.detach().reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for hook in hooks:
            hook.remove()
    if not hooks:
        return 0.0
    sign, logdet = torch.linalg.slogdet(kernel)
    return float(logdet) if sign != 0 else -math.inf


def jacob_cov(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Jacobian covariance: how uncorrelated the input Jacobians of a batch's examples are.

    The score is ``-sum(log(v + k) + 1 / (v + k))`` over the eigenvalues ``v`` of the
    correlation matrix of the per-example Jacobians of the summed logits, ``k = 1e-5``
    (the first version of NASWOT).

    References:
        J. Mellor, J. Turner, A. Storkey and E. J. Crowley. Neural Architecture Search
        without Training. arXiv:2006.04647v1, 2020.
    """
    net = copy.deepcopy(model).train()
    inputs = x.detach().clone().requires_grad_(True)
    net(inputs).sum().backward()
    assert inputs.grad is not None
    jacobians = inputs.grad.reshape(len(x), -1).to(torch.float64)
    correlation = torch.corrcoef(jacobians)
    if not torch.isfinite(correlation).all():
        return -math.inf
    values = torch.linalg.eigvalsh(correlation)
    k = 1e-5
    return float(-(torch.log(values.clamp_min(0) + k) + 1.0 / (values.clamp_min(0) + k)).sum())


def zico(model: nn.Module, x: torch.Tensor, y: torch.Tensor, chunks: int = 4) -> float:
    """ZiCo: how large and how steady the loss gradients of each layer are across batches.

    The batch is split into ``chunks`` equal parts (at least two; 4 ranked our ground truth
    best, see ``benchmarks/zero_cost.py``) and the loss gradient is taken on each. For every
    convolution and linear layer, each weight's mean absolute gradient is divided by its
    standard deviation across the parts; the score is the sum over layers of the log of the
    layer's sum of these ratios (weights whose gradient does not vary are left out). Large
    and consistent gradients foretell fast training and good generalisation. The paper's
    authors found it the first proxy to beat the parameter count consistently;
    ``benchmarks/zero_cost.py`` measures it here.

    References:
        G. Li, Y. Yang, K. Bhardwaj and R. Marculescu. ZiCo: Zero-shot NAS via Inverse
        Coefficient of Variation on Gradients. ICLR 2023.
    """
    parts = max(2, min(chunks, len(x)))
    net = copy.deepcopy(model).train()
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    grads: list[list[torch.Tensor]] = [[] for _ in layers]
    for xs, ys in zip(x.chunk(parts), y.chunk(parts), strict=True):
        net.zero_grad()
        nn.functional.cross_entropy(net(xs), ys).backward()
        for store, layer in zip(grads, layers, strict=True):
            if layer.weight.grad is not None:
                store.append(layer.weight.grad.detach().reshape(-1).to(torch.float64))
    total = 0.0
    for store in grads:
        if len(store) < 2:
            continue
        stacked = torch.stack(store)
        std = stacked.std(0, unbiased=False)
        varies = std > 0
        ratio = float((stacked.abs().mean(0)[varies] / std[varies]).sum())
        if ratio > 0:
            total += math.log(ratio)
    return total


def params(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Trainable parameters: the baseline every proxy must beat."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Forward FLOPs of one example: the second baseline."""
    from optuna_nas.nn import estimate_flops

    return float(estimate_flops(model, tuple(x.shape[1:])))


PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    "synflow": synflow,
    "snip": snip,
    "grad_norm": grad_norm,
    "naswot": naswot,
    "jacob_cov": jacob_cov,
    "zico": zico,
    "params": params,
    "flops": flops,
}
"""Every proxy by name; ``params`` and ``flops`` are the baselines. Higher is better.
Each takes a network, a batch of inputs and their labels."""


def zero_cost_score(
    model: nn.Module,
    split: Split,
    proxy: str = "synflow",
    *,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Scores an untrained network with a zero-cost proxy; higher foretells better.

    The network is copied, so ``model`` is left as it is. The batch is a seed-fixed,
    class-balanced draw of ``batch_size`` examples of ``split`` (standardised as training
    sees them).

    Args:
        model: A freshly initialised network.
        split: Where the batch comes from, e.g. ``dataset.train``.
        proxy: A name of :data:`PROXIES`.
        batch_size: Examples in the batch.
        seed: Fixes which examples are drawn.
        device: Where to compute.

    Returns:
        The score; ``-inf`` where it is undefined (a degenerate kernel).

    Raises:
        ValueError: For an unknown proxy.

    Example:
        .. code-block:: python

            import numpy as np
            from optuna_nas import data, oneshot, spaces

            dataset = data.load("mnist1d")
            space = spaces.create("nb201", channels=8, cells_per_stage=1)
            arch = space.from_params(space.sample_params(np.random.RandomState(0)))
            model = arch.build(dataset.input_shape, dataset.num_classes)
            print(oneshot.zero_cost_score(model, dataset.train, "synflow"))
    """
    from optuna_nas.data._dataset import stratified_subset

    try:
        score = PROXIES[proxy]
    except KeyError:
        raise ValueError(
            f"unknown zero-cost proxy {proxy!r}; choose one of: {', '.join(PROXIES)}"
        ) from None
    index = stratified_subset(split.y, min(batch_size, len(split)), seed=seed)
    x = split.decode(split.x[index]).to(device)
    y = split.y[index].to(device)
    model = model.to(device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return score(model, x, y)


def proxy_score(
    arch: Architecture,
    data: Dataset,
    proxy: str = "synflow",
    *,
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Scores an architecture with a zero-cost proxy: built with a ``seed``-fixed
    initialisation, scored on a ``seed``-fixed batch of ``data.train``.

    The same ``seed`` gives every architecture the same batch and initialisation stream,
    so their scores compare. See :func:`zero_cost_score` for the arguments.

    Raises:
        ValueError: For an unknown proxy.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = arch.build(data.input_shape, data.num_classes)
    return zero_cost_score(
        model, data.train, proxy, batch_size=batch_size, seed=seed, device=device
    )


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def enqueue_best_by_proxy(
    study: optuna.Study,
    space: SearchSpace,
    data: Dataset,
    *,
    proxy: str = "synflow",
    n_trials: int = 10,
    candidates: int = 100,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> list[dict[str, Any]]:
    """Seeds a study's first trials with the architectures a zero-cost proxy ranks best.

    ``candidates`` architectures are drawn uniformly from ``space``, each is built with a
    seed-fixed initialisation and scored by ``proxy`` (milliseconds each), and the best
    ``n_trials`` are enqueued into ``study``. Whatever the sampler, they are the first
    trials it runs, so an evolution's first population (or a GP's first observations)
    starts from them rather than from random architectures. Each enqueued trial carries
    its score in the ``optuna_nas:proxy_score`` user attribute.

    Args:
        study: The study to seed.
        space: The space the study's objective suggests from.
        data: The dataset; the proxy's batch comes from ``data.train``.
        proxy: A name of :data:`PROXIES`.
        n_trials: Architectures to enqueue.
        candidates: Architectures to score, at least ``n_trials``.
        seed: Seeds the draw, the initialisations and the batch.
        device: Where to score.

    Returns:
        The enqueued parameters, best first.

    Raises:
        ValueError: For an unknown proxy, or fewer candidates than trials.

    References:
        M. S. Abdelfattah, A. Mehrotra, L. Dudziak and N. D. Lane. Zero-Cost Proxies for
        Lightweight NAS. ICLR 2021 (Section 5, warm-up of the search).
    """
    import numpy as np

    from optuna_nas import _keys

    if proxy not in PROXIES:
        raise ValueError(f"unknown zero-cost proxy {proxy!r}; choose one of: {', '.join(PROXIES)}")
    if not 1 <= n_trials <= candidates:
        raise ValueError(
            f"candidates ({candidates}) must be at least n_trials ({n_trials}), and n_trials "
            "at least 1"
        )
    rng = np.random.RandomState(seed)
    scored: list[tuple[float, dict[str, Any]]] = []
    seen: set[str] = set()
    for _ in range(candidates):
        params = space.sample_params(rng)
        key = repr(sorted(params.items()))
        if key in seen:
            continue
        seen.add(key)
        score = proxy_score(space.from_params(params), data, proxy, seed=seed, device=device)
        scored.append((score, params))
    scored.sort(key=lambda item: -item[0] if math.isfinite(item[0]) else math.inf)
    best = scored[:n_trials]
    for score, params in best:
        study.enqueue_trial(params, user_attrs={_keys.PROXY_SCORE: score})
    return [params for _, params in best]
