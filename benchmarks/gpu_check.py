"""One pass over the CUDA paths of :func:`optuna_nas.training.fit`, for a lent GPU.

Three checks, written as a Markdown report:

1. **Precision and memory format.** A forward hook on the first convolution records the
   dtype and memory format its output has *inside* ``fit``'s training loop, and the
   weights' memory format afterwards: bfloat16 and ``channels_last`` when ``amp`` and
   ``channels_last`` are on, float32 and contiguous when they are off.
2. **Throughput.** CIFAR-shaped input (3 x 32 x 32, random values: the speed of a step does
   not depend on them) through two cell networks, the NAS-Bench-201 skeleton with its
   CIFAR-10 optimum cell and a DARTS network, each trained by ``fit`` in four settings:
   float32, bfloat16 autocast, bfloat16 with ``channels_last``, and that with
   ``torch.compile``. The table gives the training throughput of the last epoch (the first
   one pays for compilation), the speed-up over float32 and the peak GPU memory.
3. **Same learning on both devices.** A small convolutional chain trained on MNIST-1D with
   ``device="cuda"`` (bfloat16) and ``device="cpu"`` (float32), same seed and recipe: the
   validation accuracies should agree to within a few points.

Usage (on a machine with CUDA)::

    python benchmarks/gpu_check.py --output benchmarks/results/gpu_check.md
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch
from torch import nn

from optuna_nas import data, spaces, training
from optuna_nas.data import Dataset, Split

NB201_OPTIMUM = (
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
    "nor_conv_3x3~2|"
)
"""The cell with the best mean 200-epoch CIFAR-10 test accuracy in NAS-Bench-201 (94.37)."""

SETTINGS: dict[str, dict[str, bool]] = {
    "float32": {"amp": False, "channels_last": False, "compile": False},
    "bf16": {"amp": True, "channels_last": False, "compile": False},
    "bf16 + channels_last": {"amp": True, "channels_last": True, "compile": False},
    "bf16 + channels_last + compile": {"amp": True, "channels_last": True, "compile": True},
}


class _Rows(list[str]):
    """Report lines that are also printed as they come, so a run cut short shows its part."""

    def append(self, line: str) -> None:
        print(line, flush=True)
        super().append(line)


def synthetic_cifar(n_train: int, n_valid: int, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)

    def split(n: int) -> Split:
        x = torch.randn(n, 3, 32, 32, generator=generator)
        return Split(x, torch.randint(0, 10, (n,), generator=generator))

    return Dataset(
        name="synthetic-cifar",
        train=split(n_train),
        valid=split(n_valid),
        test=split(0),
        input_shape=(3, 32, 32),
        num_classes=10,
    )


def _nb201_net() -> nn.Module:
    space = spaces.create("nb201", channels=16, cells_per_stage=5)
    return space.from_nb201_string(NB201_OPTIMUM).build((3, 32, 32), 10)


def _darts_net() -> nn.Module:
    space = spaces.create("darts", channels=16, layers=8)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return space.suggest(study.ask()).build((3, 32, 32), 10)


NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "NB201 C=16 N=5 (optimum cell)": _nb201_net,
    "DARTS C=16, 8 layers (random cell)": _darts_net,
}
"""Builders of the two networks: each setting trains a fresh one (the cells are fixed)."""


def _first_conv(model: nn.Module) -> nn.Module:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def check_precision(batch_size: int, device: str) -> list[str]:
    """Check 1: what the first convolution sees inside ``fit``, per setting."""
    dataset = synthetic_cifar(4 * batch_size, batch_size)
    rows = _Rows()
    for line in [
        "| setting | conv output dtype in training | output channels_last | "
        "weights channels_last after fit |",
        "| --- | --- | --- | --- |",
    ]:
        rows.append(line)
    for name, setting in SETTINGS.items():
        if setting["compile"]:
            continue  # hooks see the same tensors; compile is measured below
        model = _nb201_net()
        seen: dict[str, Any] = {}

        def hook(
            module: nn.Module, inputs: Any, output: torch.Tensor, seen: dict[str, Any] = seen
        ) -> None:
            if module.training and "dtype" not in seen:
                seen["dtype"] = output.dtype
                seen["cl"] = output.is_contiguous(memory_format=torch.channels_last)

        conv = _first_conv(model)
        handle = conv.register_forward_hook(hook)
        training.fit(model, dataset, epochs=1, batch_size=batch_size, device=device, **setting)
        handle.remove()
        weight_cl = conv.weight.is_contiguous(memory_format=torch.channels_last)
        rows.append(f"| {name} | {seen['dtype']} | {seen['cl']} | {weight_cl} |")
    return rows


def check_throughput(n_train: int, epochs: int, batch_size: int, device: str) -> list[str]:
    """Check 2: training throughput per network and setting."""
    dataset = synthetic_cifar(n_train, 2048)
    rows = _Rows()
    for line in [
        "| network | setting | samples/s (last epoch) | vs float32 | first epoch s | "
        "peak GPU MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]:
        rows.append(line)
    base: dict[str, float] = {}
    for name, setting in SETTINGS.items():  # compile last: it is the slow one to start
        for net_name, build in NETWORKS.items():
            model = build()
            try:
                result = training.fit(
                    model, dataset, epochs=epochs, batch_size=batch_size, device=device, **setting
                )
            except Exception as err:  # a failed setting is a finding, not a crash
                rows.append(f"| {net_name} | {name} | failed: {type(err).__name__}: {err} | | | |")
                continue
            speed = n_train / result.history[-1]["seconds"]
            base.setdefault(net_name, speed)
            rows.append(
                f"| {net_name} | {name} | {speed:,.0f} | {speed / base[net_name]:.2f}x | "
                f"{result.history[0]['seconds']:.2f} | {result.peak_memory_mb or 0:,.0f} |"
            )
    return rows


def check_parity(epochs: int, device: str) -> list[str]:
    """Check 3: the same net and recipe on CUDA (bf16) and the CPU (float32)."""
    dataset = data.load("mnist1d")
    space = spaces.create("chain")
    params = {"n_layers": 3}
    for i, filters in enumerate((32, 64, 64)):
        params |= {
            f"layer{i}/op": "conv",
            f"layer{i}/filters": filters,
            f"layer{i}/kernel_size": 5,
            f"layer{i}/stride": 2 if i else 1,
            f"layer{i}/dilation": 1,
        }
    arch = space.from_params(params)
    rows = _Rows()
    for line in ["| device | valid accuracy | seconds |", "| --- | --- | --- |"]:
        rows.append(line)
    for dev in (device, "cpu"):
        start = time.perf_counter()
        result = training.fit(
            arch.build(dataset.input_shape, dataset.num_classes),
            dataset,
            epochs=epochs,
            device=dev,
        )
        rows.append(
            f"| {result.device} | {result.valid_accuracy:.4f} | "
            f"{time.perf_counter() - start:.1f} |"
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--parity-epochs", type=int, default=15)
    parser.add_argument("--output", default=None, help="also write the report here")
    parser.add_argument(
        "--device", default="cuda", help="'cuda' (the point), or 'cpu' for a dry run of the script"
    )
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check.py needs CUDA; torch.cuda.is_available() is False here", file=sys.stderr)
        return 2
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(args.device)
        machine = (
            f"{props.name} ({props.total_memory / 2**30:.0f} GiB, "
            f"{props.multi_processor_count} SMs), CUDA {torch.version.cuda}"
        )
    else:
        machine = f"{platform.processor() or platform.machine()} CPU (dry run)"
    lines = [
        "# CUDA check of `optuna_nas.training.fit`",
        "",
        f"`python {' '.join(sys.argv)}`, {datetime.date.today()}: {machine}, "
        f"torch {torch.__version__}, "
        f"Python {platform.python_version()}, optuna {optuna.__version__}.",
        "",
        "## Precision and memory format inside the training loop (NB201 net)",
        "",
        *check_precision(args.batch_size, args.device),
        "",
        f"## MNIST-1D, conv chain 32-64-64, {args.parity_epochs} epochs, seed 0",
        "",
        *check_parity(args.parity_epochs, args.device),
        "",
        f"## Training throughput, {args.train_size:,} CIFAR-shaped samples, batch "
        f"{args.batch_size}, {args.epochs} epochs",
        "",
        *check_throughput(args.train_size, args.epochs, args.batch_size, args.device),
        "",
    ]
    report = "\n".join(lines)
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
