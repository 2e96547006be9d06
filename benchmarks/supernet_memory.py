"""Memory of a supernet training step against one subnetwork's, counted exactly on any device.

For one training step at ``--batch-size`` on CIFAR-shaped inputs (3x32x32, random data),
the script counts the bytes a step needs beyond the input:

- **parameters**, and AdamW's two moments per parameter (``3 x`` the parameter bytes, plus
  the gradients of the parameters the step uses);
- **activations saved for the backward pass**: every tensor autograd keeps, counted once
  per storage through ``torch.autograd.graph.saved_tensors_hooks``. On a GPU these are the
  bulk of the peak memory; the count leaves out the allocator's caching and cuDNN's
  workspaces, which a GPU run would add.

Rows: a stand-alone subnetwork (the mean over ``--architectures`` uniform draws), the
supernet on one path (SPOS, FairNAS per path, GDAS: only the sampled operation runs), and
the supernet as a DARTS or DrNAS mixture (every operation of every edge runs). Ratios are
against the subnetwork. Nothing is tuned.

Usage::

    python benchmarks/supernet_memory.py --output benchmarks/results/supernet_memory.md
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from optuna_nas import oneshot, spaces, training


def _saved_bytes(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[int, int]:
    """Bytes of the activations one forward pass saves for backward, and of the gradients
    the backward pass then writes."""
    model.zero_grad(set_to_none=True)
    saved = training.saved_activation_bytes(model, x, y)
    grads = sum(
        p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None
    )
    return saved, int(grads)


def _param_bytes(model: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--architectures", type=int, default=10)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    shape, classes = (3, 32, 32), 10
    x = torch.randn(args.batch_size, *shape)
    y = torch.randint(0, classes, (args.batch_size,))
    settings = {
        "nb201": spaces.create("nb201", channels=16, cells_per_stage=5),
        "darts": spaces.create("darts", channels=16, layers=8),
    }
    lines = [
        f"Command: `python benchmarks/supernet_memory.py {shlex.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        "CPU (the counts are the same on any device; a GPU adds allocator caching and "
        "workspaces).",
        "",
        f"Batch {args.batch_size} of 3x32x32; float32; training state = parameters + AdamW "
        "moments + gradients of the parameters used + saved activations.",
        "",
        "| space | network | parameters (MB) | saved activations (MB) | training state (MB) "
        "| ratio to the subnetwork |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    mb = 2**20
    for name, space in settings.items():
        rng = np.random.RandomState(0)
        supernet = oneshot.build_supernet(space, shape, classes).train()
        params = _param_bytes(supernet)
        subnet_rows, path_rows = [], []
        for _ in range(args.architectures):
            arch = space.from_params(space.sample_params(rng))
            model = arch.build(shape, classes).train()
            sub_params = _param_bytes(model)
            saved, grads = _saved_bytes(model, x, y)
            subnet_rows.append((sub_params, saved, 3 * sub_params + grads + saved))
            supernet.set_path(arch)
            saved, grads = _saved_bytes(supernet, x, y)
            path_rows.append((saved, 3 * params + grads + saved))
        sub_params, sub_saved, sub_total = (
            statistics.mean(c) for c in zip(*subnet_rows, strict=True)
        )
        path_saved, path_total = (statistics.mean(c) for c in zip(*path_rows, strict=True))
        lines.append(
            f"| {name} | subnetwork (mean of {args.architectures}) | {sub_params / mb:.2f} | "
            f"{sub_saved / mb:.1f} | {sub_total / mb:.1f} | 1.00 |"
        )
        print(lines[-1], flush=True)
        lines.append(
            f"| {name} | supernet on the same paths (SPOS, FairNAS, GDAS) | {params / mb:.2f} | "
            f"{path_saved / mb:.1f} | {path_total / mb:.1f} | {path_total / sub_total:.2f} |"
        )
        print(lines[-1], flush=True)
        weights = {
            edge: torch.full((len(ops),), 1 / len(ops), requires_grad=True)
            for edge, ops in supernet.decisions.items()
        }
        supernet.set_mixture(weights)
        saved, grads = _saved_bytes(supernet, x, y)
        total = 3 * params + grads + saved
        lines.append(
            f"| {name} | supernet, mixture (DARTS, DrNAS) | {params / mb:.2f} | "
            f"{saved / mb:.1f} | {total / mb:.1f} | {total / sub_total:.2f} |"
        )
        print(lines[-1], flush=True)
    args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
