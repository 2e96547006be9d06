"""Adds curve sources with varied training recipes to the pruner replay's curve bank.

:mod:`benchmarks.curve_bank` trains every architecture with the project's own recipe
(AdamW, cosine schedule, one learning rate). Pruners must also hold on curves they were
not tuned on, so this script trains with recipes drawn at random per curve: the
optimizer (SGD with momentum, Adam, RMSprop), the peak learning rate (log-uniform over
three to four decades, so that some runs stall and some diverge), and the schedule
(constant, cosine, or step decay at half and three quarters of the epochs). A diverged
run keeps reporting what its network predicts, as a careless training loop would.

Sources (``--source``), each a different model family, dataset and recipe range:

============== ============================================================================
source         what is trained
============== ============================================================================
mnist1d-sgd    ``chain`` space architectures on MNIST-1D, recipes drawn per curve
digits-nb201   ``nb201`` cells (C=8, one cell per stage) on digits, recipes drawn per curve
tabular-mlp    MLPs (1-4 layers, 16-256 units, optional dropout) on a synthetic 20-class
               tabular task made by :func:`sklearn.datasets.make_classification`
mnist1d-mlp    the same MLPs on MNIST-1D's 40 flattened inputs, 25 epochs
tabular-hard   the same MLPs on a harder synthetic 8-class task (60 features, 12
               informative, little class separation, 5% flipped labels), 50 epochs
digits-chain   ``chain`` space architectures on digits, 30 epochs
tabular-noisy  the same MLPs on a 3-class task with 10% flipped labels, 30 epochs
============== ============================================================================

Each row stores the validation accuracy and the validation cross-entropy after every
epoch, so the bank holds every curve in two metric scales. The columns are those of
``curve_bank.csv`` plus ``source``, ``recipe`` (JSON) and ``valid_loss``; one file per
source, ``benchmarks/data/curve_bank_recipes_SOURCE.csv``. The script appends and skips
the indices already in the file. The committed bank was made with ``--count 170`` for
``tabular-mlp`` (complete), ``--count 170`` for ``mnist1d-sgd`` (stopped at 115 curves)
and ``--count 110`` for ``digits-nb201`` (stopped at 73 curves). ``mnist1d-mlp`` and
``tabular-hard`` were added later, after every setting of the pruners had been chosen, as
sources that no choice has seen (``--count 150`` each); once they had been used to revise
the rank pruner's halving, ``digits-chain`` and ``tabular-noisy`` were added as the next
unseen pair.

Usage::

    nohup nice python benchmarks/curve_recipes.py --source tabular-mlp --count 150 &
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import csv  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from optuna_nas import data, spaces  # noqa: E402

SOURCES = (
    "mnist1d-sgd",
    "digits-nb201",
    "tabular-mlp",
    "mnist1d-mlp",
    "tabular-hard",
    "digits-chain",
    "tabular-noisy",
)
EPOCHS = {
    "mnist1d-sgd": 30,
    "digits-nb201": 30,
    "tabular-mlp": 40,
    "mnist1d-mlp": 25,
    "tabular-hard": 50,
    "digits-chain": 30,
    "tabular-noisy": 30,
}
FIELDS = (
    "source",
    "dataset",
    "space",
    "index",
    "arch",
    "recipe",
    "n_params",
    "epochs",
    "seconds",
    "test_acc",
    "valid",
    "valid_loss",
)


def _recipe(rng: np.random.Generator) -> dict[str, Any]:
    optimizer = str(rng.choice(["sgd", "adam", "rmsprop"]))
    # Each optimizer's usual range, widened a decade upwards so that some runs diverge.
    low, high = {"sgd": (1e-3, 3.0), "adam": (1e-4, 0.1), "rmsprop": (1e-5, 0.03)}[optimizer]
    lr = float(math.exp(rng.uniform(math.log(low), math.log(high))))
    schedule = str(rng.choice(["constant", "cosine", "step"]))
    batch_size = int(rng.choice([32, 64, 128]))
    return {"optimizer": optimizer, "lr": lr, "schedule": schedule, "batch_size": batch_size}


def _optimizer(name: str, params: Any, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=5e-4)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    return torch.optim.RMSprop(params, lr=lr)


def _lr_factor(schedule: str, epoch: int, epochs: int) -> float:
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))
    if schedule == "step":
        return 1.0 if epoch < epochs // 2 else 0.1 if epoch < 3 * epochs // 4 else 0.01
    return 1.0


_TABULAR: dict[str, dict[str, Any]] = {
    "tabular-mlp": {
        "n_features": 40,
        "n_informative": 24,
        "n_redundant": 8,
        "n_classes": 20,
        "class_sep": 1.2,
        "flip_y": 0.02,
        "random_state": 0,
    },
    "tabular-hard": {
        "n_features": 60,
        "n_informative": 12,
        "n_redundant": 12,
        "n_classes": 8,
        "class_sep": 0.7,
        "flip_y": 0.05,
        "random_state": 1,
    },
    "tabular-noisy": {
        "n_features": 30,
        "n_informative": 6,
        "n_redundant": 4,
        "n_classes": 3,
        "class_sep": 0.8,
        "flip_y": 0.1,
        "random_state": 2,
    },
}


def _tabular(source: str = "tabular-mlp") -> data.Dataset:
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=4000, n_clusters_per_class=2, **_TABULAR[source])
    x = (x - x.mean(0)) / x.std(0)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.int64)
    cut = [2400, 3200]
    return data.Dataset(
        name="tabular" if source == "tabular-mlp" else source,
        train=data.Split(xt[: cut[0]], yt[: cut[0]]),
        valid=data.Split(xt[cut[0] : cut[1]], yt[cut[0] : cut[1]]),
        test=data.Split(xt[cut[1] :], yt[cut[1] :]),
        input_shape=(x.shape[1],),
        num_classes=int(y.max()) + 1,
    )


def _mlp(rng: np.random.Generator, n_in: int, n_out: int) -> tuple[nn.Module, dict[str, Any]]:
    depth = int(rng.integers(1, 5))
    units = int(rng.choice([16, 32, 64, 128, 256]))
    dropout = float(rng.choice([0.0, 0.0, 0.2, 0.5]))
    layers: list[nn.Module] = [nn.Flatten()]
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, units), nn.ReLU()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = units
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers), {"depth": depth, "units": units, "dropout": dropout}


def _evaluate(model: nn.Module, split: data.Split) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(split.x)
        loss = nn.functional.cross_entropy(logits, split.y).item()
        accuracy = (logits.argmax(1) == split.y).float().mean().item()
    model.train()
    return accuracy, loss


def _train(
    model: nn.Module, dataset: data.Dataset, recipe: dict[str, Any], epochs: int, seed: int
) -> tuple[list[float], list[float], float]:
    optimizer = _optimizer(recipe["optimizer"], model.parameters(), recipe["lr"])
    generator = torch.Generator().manual_seed(seed)
    n = len(dataset.train)
    accuracies: list[float] = []
    losses: list[float] = []
    model.train()
    for epoch in range(epochs):
        for group in optimizer.param_groups:
            group["lr"] = recipe["lr"] * _lr_factor(recipe["schedule"], epoch, epochs)
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, recipe["batch_size"]):
            batch = order[start : start + recipe["batch_size"]]
            logits = model(dataset.train.x[batch])
            loss = nn.functional.cross_entropy(logits, dataset.train.y[batch])
            optimizer.zero_grad(set_to_none=True)
            if torch.isfinite(loss):  # a diverged run goes on predicting whatever it predicts
                loss.backward()
                optimizer.step()
        accuracy, loss_value = _evaluate(model, dataset.valid)
        accuracies.append(accuracy)
        losses.append(loss_value if math.isfinite(loss_value) else 1e6)
    test_accuracy, _ = _evaluate(model, dataset.test)
    return accuracies, losses, test_accuracy


def _build(source: str, index: int, dataset: data.Dataset) -> tuple[nn.Module, str, str]:
    rng = np.random.default_rng(10_000 + index)
    if source in (*_TABULAR, "mnist1d-mlp"):
        # Seeded since digits-chain and tabular-noisy; the MLP curves of tabular-mlp,
        # mnist1d-mlp and tabular-hard were made with an unseeded initialisation.
        torch.manual_seed(index)
        n_in = int(np.prod(dataset.input_shape))
        model, config = _mlp(rng, n_in, dataset.num_classes)
        return model, "mlp", json.dumps(config, sort_keys=True)
    if source in ("mnist1d-sgd", "digits-chain"):
        space = spaces.create("chain", max_layers=4, filters=[8, 16, 32], units=[32, 64, 128])
        name = "chain"
    else:
        space = spaces.create("nb201", channels=8, cells_per_stage=1)
        name = "nb201"
    arch = space.from_params(space.sample_params(np.random.RandomState(10_000 + index)))
    torch.manual_seed(index)
    return arch.build(dataset.input_shape, dataset.num_classes), name, arch.to_json()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=SOURCES, required=True)
    parser.add_argument("--count", type=int, default=150)
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="CSV to append to (default: benchmarks/data/curve_bank_recipes_SOURCE.csv)",
    )
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = Path(f"benchmarks/data/curve_bank_recipes_{args.source}.csv")
    torch.set_num_threads(1)
    epochs = EPOCHS[args.source]
    done: set[tuple[str, int]] = set()
    if args.output.exists():
        with args.output.open(newline="") as fh:
            done = {(r["source"], int(r["index"])) for r in csv.DictReader(fh)}
    new_file = not args.output.exists() or args.output.stat().st_size == 0
    if args.source in _TABULAR:
        dataset = _tabular(args.source)
    else:
        dataset = data.load("mnist1d" if args.source.startswith("mnist1d") else "digits", seed=0)
    with args.output.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new_file:
            writer.writeheader()
        for index in range(args.count):
            if (args.source, index) in done:
                continue
            recipe = _recipe(np.random.default_rng(index))
            model, space_name, arch = _build(args.source, index, dataset)
            start = time.perf_counter()
            accuracies, losses, test_accuracy = _train(model, dataset, recipe, epochs, index)
            seconds = time.perf_counter() - start
            writer.writerow(
                {
                    "source": args.source,
                    "dataset": dataset.name,
                    "space": space_name,
                    "index": index,
                    "arch": arch,
                    "recipe": json.dumps(recipe, sort_keys=True),
                    "n_params": sum(p.numel() for p in model.parameters()),
                    "epochs": epochs,
                    "seconds": f"{seconds:.2f}",
                    "test_acc": f"{test_accuracy:.4f}",
                    "valid": " ".join(f"{v:.4f}" for v in accuracies),
                    "valid_loss": " ".join(f"{v:.4g}" for v in losses),
                }
            )
            fh.flush()
            print(
                f"{args.source} #{index} {recipe['optimizer']} lr={recipe['lr']:.2g} "
                f"{recipe['schedule']}: valid {accuracies[-1]:.4f} (max {max(accuracies):.4f}) "
                f"{seconds:.1f}s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
