"""How much slower :func:`optuna_nas.training.fit` trains than a bare PyTorch loop.

Both sides train the same network (one build, deep-copied per run, so the initial weights
match) on the same in-memory data with the same recipe: AdamW, a per-step cosine learning
rate, cross-entropy, the same batch size and epochs, the same ``torch.Generator`` batch
order, and validation accuracy after every epoch. The bare loop is what one would write by
hand for that recipe; on CUDA it also keeps the data on the GPU and uses bfloat16 autocast
and ``channels_last`` for images, as ``fit`` does. Whatever ``fit`` costs beyond it is
overhead: FLOP counting, trial attributes, reporting and pruning, per-batch bookkeeping.

Three variants run interleaved, in rotating order, ``--repeats`` times per case:

* ``bare``: the hand-written loop;
* ``fit``: ``fit(model, data)``, without a trial;
* ``fit+trial``: ``fit(model, data, trial=study.ask())`` on a fresh in-memory study with
  the default pruner, so every epoch also reports, asks the pruner and sets attributes.

``fit`` counts FLOPs once per call (:func:`optuna_nas.nn.estimate_flops`); that setup is
timed on its own as well, so the table shows the overhead with and without it.

Each run is timed twice: wall clock, and the CPU time of this process. On a shared machine
other processes stretch the wall clock at random; the CPU time of a single-threaded run
(``--threads 1``) is what the work itself costs, so its overheads are the steadier ones. On
CUDA read the wall clock: there the host's CPU time depends on how it waits for the GPU.

Usage::

    python benchmarks/fit_overhead.py --epochs 10 --repeats 5 --threads 1 \\
        --output benchmarks/results/fit_overhead.md
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import math
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import optuna
import torch
import torch.nn.functional as F
from torch import nn

from optuna_nas import data, spaces, training
from optuna_nas.nn import count_params, estimate_flops

BATCH_SIZE = 128
LR = 3e-3
WEIGHT_DECAY = 1e-4
SEED = 0
EVAL_BATCH_SIZE = max(BATCH_SIZE, 512)
"""``fit`` evaluates in batches of at least 512; the bare loop does the same."""

VARIANTS = ("bare", "fit", "fit+trial")
SETUP = "setup"
"""Pseudo-variant: ``count_params`` plus ``estimate_flops``, which ``fit`` runs per call."""
CLOCKS = {"wall": "Wall clock", "cpu": "Process CPU time"}


def _chain_params(*layers: tuple[str, int, int, int, int]) -> dict[str, int | str]:
    """``ChainSpace.from_params`` input for layers given as
    ``(op, filters, kernel_size, stride, dilation)``."""
    params: dict[str, int | str] = {"n_layers": len(layers)}
    for i, (op, filters, kernel_size, stride, dilation) in enumerate(layers):
        params |= {
            f"layer{i}/op": op,
            f"layer{i}/filters": filters,
            f"layer{i}/kernel_size": kernel_size,
            f"layer{i}/stride": stride,
            f"layer{i}/dilation": dilation,
        }
    return params


MODELS = {
    "tiny": _chain_params(("conv", 16, 3, 1, 1)),
    "small": _chain_params(("conv", 32, 5, 1, 1), ("conv", 32, 3, 2, 1)),
    "medium": _chain_params(
        ("conv", 64, 5, 1, 1),
        ("sepconv", 64, 3, 2, 1),
        ("conv", 64, 3, 1, 2),
        ("conv", 64, 3, 1, 1),
    ),
}
"""Chain-space architectures of increasing size, as ``ChainSpace.from_params`` input."""

DATASETS = ("mnist1d", "digits")

T = TypeVar("T")


@dataclass
class CaseResult:
    """Timings and accuracies of one model on one dataset.

    Attributes:
        model: Key of :data:`MODELS`.
        description: The architecture in the space's one-line form.
        n_params: Trainable parameters.
        dataset: Dataset name.
        device: Where it trained.
        seconds: Seconds of each run of the whole training, by clock (``wall``, ``cpu``)
            and variant; variant :data:`SETUP` holds the one-off size and FLOP counting.
        curves: Validation accuracy per epoch of the last run, per variant.
    """

    model: str
    description: str
    n_params: int
    dataset: str
    device: str
    seconds: dict[str, dict[str, list[float]]] = field(
        default_factory=lambda: {
            clock: {variant: [] for variant in (*VARIANTS, SETUP)} for clock in CLOCKS
        }
    )
    curves: dict[str, list[float]] = field(default_factory=dict)

    def add(self, variant: str, wall: float, cpu: float) -> None:
        self.seconds["wall"][variant].append(wall)
        self.seconds["cpu"][variant].append(cpu)

    def median(self, clock: str, variant: str) -> float:
        return statistics.median(self.seconds[clock][variant])

    def overhead(self, clock: str, variant: str, *, minus_setup: bool = False) -> float:
        """Relative extra time of ``variant`` over ``bare``, e.g. ``0.05`` for 5% slower."""
        seconds = self.median(clock, variant)
        if minus_setup:
            seconds -= self.median(clock, SETUP)
        return seconds / self.median(clock, "bare") - 1.0

    def spread(self, clock: str, variant: str) -> float:
        """``(max - min) / median`` of the runs: the noise the overheads compete with."""
        runs = self.seconds[clock][variant]
        return (max(runs) - min(runs)) / statistics.median(runs)


def train_bare(
    model: nn.Module,
    dataset: data.Dataset,
    *,
    device: torch.device,
    epochs: int,
    batch_size: int = BATCH_SIZE,
    lr: float = LR,
    weight_decay: float = WEIGHT_DECAY,
    seed: int = SEED,
) -> list[float]:
    """The hand-written reference loop: ``fit``'s recipe without its bookkeeping.

    Returns:
        Validation accuracy after each epoch.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    use_amp = device.type == "cuda"
    channels_last = device.type == "cuda" and dataset.train.x.dim() == 4
    model.to(device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    train_x, train_y = dataset.train.x.to(device), dataset.train.y.to(device)
    valid_x, valid_y = dataset.valid.x.to(device), dataset.valid.y.to(device)
    n_train = len(train_y)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)

    curve = []
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n_train, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            x, y = train_x[index], train_y[index]
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with _autocast(use_amp):
                loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(index)
        # A hand-written loop also watches its loss; this is fit's one sync per epoch.
        if not math.isfinite(float(loss_sum)):
            raise RuntimeError("the bare loop diverged; the benchmark recipe is broken")
        curve.append(_accuracy(model, valid_x, valid_y, channels_last, use_amp))
    return curve


@torch.no_grad()
def _accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, channels_last: bool, use_amp: bool
) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for start in range(0, len(y), EVAL_BATCH_SIZE):
        xb = x[start : start + EVAL_BATCH_SIZE]
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with _autocast(use_amp):
            logits = model(xb)
        correct += (logits.argmax(dim=1) == y[start : start + EVAL_BATCH_SIZE]).sum()
    model.train()
    return float(correct) / len(y)


def _autocast(enabled: bool) -> contextlib.AbstractContextManager[object]:
    if enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def run_variant(
    variant: str, model: nn.Module, dataset: data.Dataset, *, device: torch.device, epochs: int
) -> tuple[float, float, list[float]]:
    """Trains ``model`` once the ``variant`` way; returns wall and CPU seconds and the curve.

    The study and trial of ``fit+trial`` are created outside the timed region: that is the
    caller's cost, not ``fit``'s.
    """
    if variant == "bare":
        return _timed(
            lambda: train_bare(model, dataset, device=device, epochs=epochs), device=device
        )
    trial = None
    if variant == "fit+trial":
        trial = optuna.create_study(direction="maximize").ask()
    elif variant != "fit":
        raise ValueError(f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    wall, cpu, result = _timed(
        lambda: training.fit(
            model,
            dataset,
            trial=trial,
            epochs=epochs,
            batch_size=BATCH_SIZE,
            lr=LR,
            weight_decay=WEIGHT_DECAY,
            device=device,
            seed=SEED,
        ),
        device=device,
    )
    return wall, cpu, result.learning_curve


def _timed(work: Callable[[], T], *, device: torch.device) -> tuple[float, float, T]:
    """Wall and process CPU seconds of ``work()``, and its value."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    wall, cpu = time.perf_counter(), time.process_time()
    value = work()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - wall, time.process_time() - cpu, value


def run_case(
    model_name: str, dataset: data.Dataset, *, device: torch.device, epochs: int, repeats: int
) -> CaseResult:
    """Times all variants on one model and dataset, interleaved in rotating order."""
    space = spaces.create("chain")
    arch = space.from_params(MODELS[model_name])
    training.seed_everything(SEED)
    template = arch.build(dataset.input_shape, dataset.num_classes)
    case = CaseResult(
        model=model_name,
        description=space.describe(space.decode(arch.param_dict)),
        n_params=count_params(template),
        dataset=dataset.name,
        device=str(device),
    )
    # One untimed epoch each pays for lazy imports, kernel selection and allocator growth.
    for variant in VARIANTS:
        run_variant(variant, copy.deepcopy(template), dataset, device=device, epochs=1)
    for repeat in range(repeats):
        shift = repeat % len(VARIANTS)
        for variant in VARIANTS[shift:] + VARIANTS[:shift]:
            wall, cpu, curve = run_variant(
                variant, copy.deepcopy(template), dataset, device=device, epochs=epochs
            )
            case.add(variant, wall, cpu)
            case.curves[variant] = curve
        case.add(SETUP, *time_setup(copy.deepcopy(template), dataset, device=device))
    return case


def time_setup(
    model: nn.Module, dataset: data.Dataset, *, device: torch.device
) -> tuple[float, float]:
    """Wall and CPU seconds of the size and FLOP counting that ``fit`` does once per call."""
    wall, cpu, _ = _timed(
        lambda: (count_params(model), estimate_flops(model, dataset.input_shape)), device=device
    )
    return wall, cpu


def format_table(cases: Sequence[CaseResult], clock: str) -> str:
    """The results on one clock (``wall`` or ``cpu``) as a markdown table, one row per case."""
    header = (
        "| model | params | dataset | device | bare s | fit s | fit+trial s | flops setup s "
        "| fit overhead | fit overhead excl. setup | fit+trial overhead | bare spread "
        "| final valid acc bare / fit / fit+trial | same curves |"
    )
    rows = [header, "|---" * (header.count("|") - 1) + "|"]
    for case in cases:
        curves = [case.curves[v] for v in VARIANTS]
        accuracies = " / ".join(f"{curve[-1]:.4f}" for curve in curves)
        rows.append(
            f"| {case.model} (`{case.description}`) | {case.n_params:,} | {case.dataset} "
            f"| {case.device} | {case.median(clock, 'bare'):.3f} "
            f"| {case.median(clock, 'fit'):.3f} | {case.median(clock, 'fit+trial'):.3f} "
            f"| {case.median(clock, SETUP):.4f} | {case.overhead(clock, 'fit'):+.1%} "
            f"| {case.overhead(clock, 'fit', minus_setup=True):+.1%} "
            f"| {case.overhead(clock, 'fit+trial'):+.1%} | {case.spread(clock, 'bare'):.1%} "
            f"| {accuracies} | {'yes' if all(c == curves[0] for c in curves) else 'no'} |"
        )
    return "\n".join(rows)


def describe_machine(device: torch.device, threads: int) -> list[str]:
    """Lines that say where and with what the numbers were taken."""
    lines = [
        f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- python {platform.python_version()}, torch {torch.__version__}, "
        f"optuna {optuna.__version__}",
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores, "
        f"`torch.set_num_threads({threads})`",
    ]
    if hasattr(os, "getloadavg"):
        load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
        lines.append(f"- load average at the end (1, 5, 15 min): {load}")
    if device.type == "cuda":
        lines.append(f"- GPU: {torch.cuda.get_device_name(device)}")
    return lines


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed runs of each variant (default 5)"
    )
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA if available, else CPU), cpu, cuda, ..."
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads; 1 (default) keeps CPU timings stable",
    )
    parser.add_argument(
        "--models", nargs="+", choices=sorted(MODELS), default=list(MODELS), metavar="MODEL"
    )
    parser.add_argument(
        "--datasets", nargs="+", choices=DATASETS, default=list(DATASETS), metavar="DATASET"
    )
    parser.add_argument("--output", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--epochs, --repeats and --threads must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the benchmark, prints the markdown report and optionally writes it."""
    args = parse_args(argv)
    command = shlex.join(["python", sys.argv[0], *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = training.select_device(args.device)

    cases = []
    for dataset_name in args.datasets:
        dataset = data.load(dataset_name, seed=SEED)
        for model_name in args.models:
            case = run_case(
                model_name, dataset, device=device, epochs=args.epochs, repeats=args.repeats
            )
            print(
                f"{model_name} on {dataset_name}: bare {case.median('wall', 'bare'):.3f} s, "
                f"fit {case.overhead('wall', 'fit'):+.1%} wall "
                f"{case.overhead('cpu', 'fit'):+.1%} cpu, "
                f"fit+trial {case.overhead('wall', 'fit+trial'):+.1%} wall "
                f"{case.overhead('cpu', 'fit+trial'):+.1%} cpu",
                file=sys.stderr,
            )
            cases.append(case)

    report = "\n".join(
        [
            "# fit() overhead against a bare PyTorch loop",
            "",
            f"`{command}`",
            "",
            *describe_machine(device, args.threads),
            f"- {args.epochs} epochs, batch size {BATCH_SIZE}, AdamW lr {LR} weight decay "
            f"{WEIGHT_DECAY}, per-step cosine schedule; medians of {args.repeats} runs per "
            f"variant, interleaved in rotating order after one untimed warm-up epoch each",
            "- overhead = median(variant) / median(bare) - 1; 'excl. setup' subtracts the "
            "median time of `count_params` + `estimate_flops`, which fit runs once per call; "
            "'bare spread' = (max - min) / median of the bare runs, the timing noise",
            "- process CPU time counts only this process's work, so other load on the "
            "machine inflates it far less than the wall clock",
        ]
    )
    for clock, title in CLOCKS.items():
        report += f"\n\n## {title}\n\n{format_table(cases, clock)}"
    report += "\n"
    print(report)
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
