"""Training throughput on one GPU: ``fit`` against hand-written loops, and concurrent trials.

Prepared for a lent GPU, so that one short call measures everything issue 20 asks; it also
runs on the CPU (``--quick``) so that the script itself is tested. Every row is printed as
it is measured, and the whole table goes to ``--output``.

1. **One trial.** CIFAR-shaped synthetic data (3x32x32, random values: a step's speed does
   not depend on them) through the NAS-Bench-201 network (C=16, N=5, the CIFAR-10 optimum
   cell) and a DARTS network (C=16, 8 cells), at each batch size of ``--batch-sizes``:

   - ``fit``: :func:`optuna_nas.training.fit` as trials run it (its own settings: bf16
     autocast and ``channels_last`` on CUDA), throughput of its last epoch;
   - ``loop``: a bare loop with the same settings, AdamW ``fused=True`` on CUDA, data on
     the device and no host synchronisation inside the timed steps;
   - ``graph``: that loop with the whole step (forward, backward, optimizer) captured once
     in a CUDA graph with static input buffers and replayed (CUDA only).

   Samples per second over ``--steps`` timed steps after ``--warmup`` steps, and the peak
   GPU memory of each; for ``fit``, also the memory a trial reserves when it shares the
   GPU (:func:`optuna_nas.training.estimate_training_memory` times
   :data:`~optuna_nas.training.MEMORY_MARGIN`), which should lie above its peak.
2. **Concurrent trials.** For each count of ``--concurrency``, that many processes train
   the NB201 network with ``fit`` at batch 256 at the same time on the device; the total
   samples per second is the sum of their last-epoch throughputs. They share one GPU
   memory ledger (as a worker pool's slots do), so a trial that would not fit waits.

Usage (on a machine with CUDA)::

    python benchmarks/gpu_throughput.py --output benchmarks/results/gpu_throughput.md

On the CPU, a smoke run: ``python benchmarks/gpu_throughput.py --quick --output /tmp/t.md``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from optuna_nas import spaces, training

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import NB201_OPTIMUM, synthetic_cifar


def build(network: str, channels: int, depth: int) -> nn.Module:
    """The benchmark's NB201 or DARTS network."""
    if network == "nb201":
        space = spaces.create("nb201", channels=channels, cells_per_stage=depth)
        arch = space.from_nb201_string(NB201_OPTIMUM)
    else:
        space = spaces.create("darts", channels=channels, layers=depth)
        arch = space.from_params(space.sample_params(np.random.RandomState(0)))
    return arch.build((3, 32, 32), 10)


def _peak_mb(dev: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None


def _reset(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure_fit(
    model: nn.Module, batch_size: int, steps: int, dev: torch.device
) -> tuple[float, float | None]:
    """``fit``'s last-epoch samples per second, and its peak memory."""
    _reset(dev)
    dataset = synthetic_cifar(batch_size * steps, batch_size)
    result = training.fit(model, dataset, epochs=2, batch_size=batch_size, device=dev)
    history = result.history[-1]
    seconds = float(history.get("seconds", 0.0)) if isinstance(history, dict) else 0.0
    rate = batch_size * steps / seconds if seconds > 0 else result.samples_per_second
    return rate, _peak_mb(dev)


def measure_loop(
    model: nn.Module,
    batch_size: int,
    steps: int,
    warmup: int,
    dev: torch.device,
    *,
    graph: bool,
) -> tuple[float, float | None]:
    """A bare training loop's samples per second and peak memory; ``graph`` captures the
    step in a CUDA graph."""
    _reset(dev)
    image = dev.type == "cuda"
    model = model.to(dev)
    if image:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    x = torch.randn(batch_size, 3, 32, 32, device=dev)
    if image:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,), device=dev)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=3e-3, fused=dev.type == "cuda", capturable=graph
    )
    criterion = nn.CrossEntropyLoss()

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=not graph)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.detach()

    if graph:
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.cuda.stream(side):
            for _ in range(max(3, warmup)):  # warm up on a side stream before capture
                step()
        torch.cuda.current_stream(dev).wait_stream(side)
        captured = torch.cuda.CUDAGraph()
        with torch.cuda.graph(captured):
            step()
        run = captured.replay
    else:
        for _ in range(warmup):
            step()
        run = step  # type: ignore[assignment]
    _sync(dev)
    start = time.perf_counter()
    for _ in range(steps):
        run()
    _sync(dev)
    return batch_size * steps / (time.perf_counter() - start), _peak_mb(dev)


def _concurrent_worker(args: tuple[str, int, int, int, int]) -> float:
    device, channels, depth, batch_size, steps = args
    torch.set_num_threads(1)
    dev = torch.device(device)
    rate, _ = measure_fit(build("nb201", channels, depth), batch_size, steps, dev)
    return rate


def measure_concurrent(
    count: int, device: str, channels: int, depth: int, batch_size: int, steps: int
) -> float:
    """Total samples per second of ``count`` simultaneous ``fit`` processes."""
    context = multiprocessing.get_context("spawn")
    ledgers = tempfile.mkdtemp(prefix="gpu-ledger-")
    os.environ[training.LEDGER_DIR_ENV] = ledgers  # inherited by the pool's processes
    with context.Pool(count) as pool:
        rates = pool.map(
            _concurrent_worker, [(device, channels, depth, batch_size, steps)] * count
        )
    return float(sum(rates))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--networks", nargs="+", default=["nb201", "darts"])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument(
        "--quick", action="store_true", help="tiny networks and runs: a CPU smoke test"
    )
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    dev = training.select_device(None if args.device == "auto" else args.device)
    sizes = {"nb201": (16, 5), "darts": (16, 8)}
    if args.quick:
        sizes = {"nb201": (4, 1), "darts": (4, 3)}
        args.batch_sizes, args.steps, args.warmup = [16], 2, 1
        args.concurrency = [1, 2]
    lines = [
        f"Command: `python benchmarks/gpu_throughput.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {platform.machine()}, torch {torch.__version__}, device "
        f"{torch.cuda.get_device_name(dev) if dev.type == 'cuda' else dev.type}.",
        "",
        "| network | batch | loop | samples/s | peak memory (MB) | reserved (MB) | vs fit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    print("\n".join(lines), flush=True)
    for network in args.networks:
        channels, depth = sizes[network]
        for batch_size in args.batch_sizes:
            torch.manual_seed(0)
            rows: dict[str, tuple[float, float | None] | str] = {}
            model = build(network, channels, depth)
            reserved = (
                training.estimate_training_memory(model, (3, 32, 32), batch_size)
                * training.MEMORY_MARGIN
                / 2**20
            )
            rows["fit"] = measure_fit(model, batch_size, args.steps, dev)
            for name, graph in (("loop", False), ("graph", True)):
                if graph and dev.type != "cuda":
                    rows[name] = "n/a: CUDA graphs need CUDA"
                    continue
                try:
                    rows[name] = measure_loop(
                        build(network, channels, depth),
                        batch_size,
                        args.steps,
                        args.warmup,
                        dev,
                        graph=graph,
                    )
                except Exception as err:  # a capture that fails is a result too
                    rows[name] = f"failed: {type(err).__name__}: {err}"[:120]
            base = rows["fit"]
            for name, row in rows.items():
                if isinstance(row, str):
                    line = f"| {network} | {batch_size} | {name} | {row} | | | |"
                else:
                    rate, peak = row
                    ratio = rate / base[0] if isinstance(base, tuple) and base[0] else 0.0
                    memory = "" if peak is None else f"{peak:.0f}"
                    estimate = f"{reserved:.0f}" if name == "fit" else ""
                    line = (
                        f"| {network} | {batch_size} | {name} | {rate:,.0f} | {memory} | "
                        f"{estimate} | {ratio:.2f}x |"
                    )
                lines.append(line)
                print(line, flush=True)
    lines += [
        "",
        "| concurrent fit trials (NB201, batch 256) | total samples/s |",
        "| --- | --- |",
    ]
    channels, depth = sizes["nb201"]
    batch_size = 256 if not args.quick else args.batch_sizes[0]
    for count in args.concurrency:
        total = measure_concurrent(count, str(dev), channels, depth, batch_size, args.steps)
        lines.append(f"| {count} | {total:,.0f} |")
        print(lines[-1], flush=True)
    args.output.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
