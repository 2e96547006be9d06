"""Trains the learning-curve network that ``LearningCurvePruner(predictor="pfn")`` uses.

The network (:class:`optuna_nas.pruners.CurvePFN`) learns to predict a curve's later values
from its first ones on curves drawn from the prior in :mod:`optuna_nas.pruners._pfn_prior`;
no real curve is used. Each batch draws one curve length ``T`` (8 to 64 steps) and one
number of observed steps ``n`` (1 to ``T - 1``); the targets are the final value and seven
other later values of each curve, scored by cross-entropy over the bins. The bins' edges
are the quantiles of 200,000 final values of the prior.

Reproduce the shipped weights (about 20 minutes on two CPU cores; with two threads the
last bits can differ from run to run, with ``--threads 1`` a run is repeatable bit for bit)::

    python benchmarks/train_lcpfn.py --output optuna_nas/pruners/lcpfn.pt
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from optuna_nas.pruners import _pfn, _pfn_prior


def borders(n_bins: int, rng: np.random.Generator) -> torch.Tensor:
    """Bin edges: quantiles of the prior's final values, with 0 and 1 at the ends."""
    finals = np.concatenate(
        [
            _pfn_prior.sample_curves(20_000, t, rng)[1][:, -1]
            for t in np.linspace(_pfn_prior.MIN_STEPS, _pfn_prior.MAX_STEPS, 10).astype(int)
        ]
    )
    edges = np.quantile(finals, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = 0.0, 1.0
    edges = np.maximum.accumulate(edges)
    # Ties (values clipped at 0 or 1) would give empty bins: spread the edges minimally.
    edges = np.maximum(edges, np.arange(n_bins + 1) * 1e-6)
    edges[-1] = 1.0
    return torch.as_tensor(np.unique(edges), dtype=torch.float32)


def batch(batch_size: int, n_queries: int, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Observed times and values, query times and targets of one batch."""
    t = int(rng.integers(_pfn_prior.MIN_STEPS, _pfn_prior.MAX_STEPS + 1))
    n = int(rng.integers(1, t))
    x, y = _pfn_prior.sample_curves(batch_size, t, rng)
    later = rng.integers(n, t, (batch_size, n_queries))
    later[:, 0] = t - 1  # the final value, which the pruner asks for, always
    rows = np.arange(batch_size)[:, None]
    return (
        _tensor(np.broadcast_to(x[:n], (batch_size, n))),
        _tensor(y[:, :n]),
        _tensor(x[later]),
        _tensor(y[rows, later]),
    )


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--bins", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = _pfn.CurvePFN(borders(args.bins, rng))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / (args.steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    start, running = time.perf_counter(), []
    for step in range(args.steps):
        xo, yo, xq, yq = batch(args.batch_size, 8, rng)
        logits = model(xo, yo, xq)
        loss = _loss(logits, model.target_bins(yq))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if (step + 1) % 500 == 0:
            print(
                f"step {step + 1}: loss {np.mean(running):.4f} "
                f"({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            running = []
    meta = {
        "script": "benchmarks/train_lcpfn.py",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
    }
    _pfn.save(model, args.output, meta)
    print(f"wrote {args.output}")


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
    )


if __name__ == "__main__":
    main()
