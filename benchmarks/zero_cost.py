"""Zero-cost proxies against stand-alone training: rank correlations on NB201 cells.

Reads the ground truth of ``benchmarks/nb201_ground_truth.py`` (every row it holds), builds
each cell with the same network settings and initialisation seed, scores it with every
proxy of :data:`optuna_nas.oneshot.PROXIES` on one seed-fixed batch of the training split,
and reports Kendall's tau and Spearman's rho of each proxy with the stand-alone test and
validation accuracy, and the cost of scoring in units of one stand-alone training.

Nothing was tuned but ZiCo's split of the batch: every proxy runs as its paper defines it, on a
batch of 64; ZiCo takes its gradient statistics over 4 parts of that batch, the best of the
splits tried on ``nb201_ground_truth_mnist1d_mean3.csv`` (2, 4 or 8 parts of batches of 64,
128 or 256 examples; 2 parts of 64 gave tau 0.520 there against 0.540 for 4).

Below the single proxies, rank-average votes: each cell's ranks under the proxies of a
vote are summed, a tie-free stand-in for the pairwise majority vote of Abdelfattah et al.
("Zero-Cost Proxies for Lightweight NAS", ICLR 2021). The first vote is theirs (synflow,
jacob_cov, snip). The other two were added after the single proxies' figures on both
3-seed tables were known, so they are exploratory, not held-out results.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/zero_cost.py \\
        --truth benchmarks/results/nb201_ground_truth_mnist1d.csv \\
        --output benchmarks/results/zero_cost.md
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import stats

from optuna_nas import data, oneshot, spaces, training

# Rank-average votes: a label and the proxies whose ranks are summed.
VOTES: dict[str, tuple[str, ...]] = {
    "vote of synflow, jacob_cov, snip (as published)": ("synflow", "jacob_cov", "snip"),
    "vote of synflow, naswot, zico (exploratory)": ("synflow", "naswot", "zico"),
    "vote of zico, params (exploratory)": ("zico", "params"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, required=True)
    parser.add_argument("--dataset", default="mnist1d")
    parser.add_argument(
        "--data-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="option of data.load, VALUE as JSON (e.g. data_seed=7 for MNIST-1D); repeatable",
    )
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    with args.truth.open() as handle:
        truth = list(csv.DictReader(handle))
    space = spaces.create("nb201", channels=args.channels, cells_per_stage=args.cells_per_stage)
    dataset = data.load(args.dataset, seed=0, **spaces.parse_space_args(args.data_arg))
    scores: dict[str, list[float]] = {name: [] for name in oneshot.PROXIES}
    seconds: dict[str, float] = dict.fromkeys(oneshot.PROXIES, 0.0)
    for row in truth:
        arch = space.from_nb201_string(row["arch"])
        training.seed_everything(args.train_seed)
        model = arch.build(dataset.input_shape, dataset.num_classes)
        for name in oneshot.PROXIES:
            start = time.perf_counter()
            value = oneshot.zero_cost_score(model, dataset.train, name, batch_size=args.batch_size)
            seconds[name] += time.perf_counter() - start
            scores[name].append(value)
    train_seconds = statistics.mean(float(row["seconds"]) for row in truth)
    lines = [
        "# Zero-cost proxies against stand-alone training",
        "",
        f"Command: `python {shlex.join(sys.argv)}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"CPU, {torch.get_num_threads()} thread(s).",
        "",
        "Tuning disclosure: each proxy runs as published, on one batch "
        f"of {args.batch_size} training examples, at the ground truth's initialisation seed. "
        "The one choice made on a ground truth: ZiCo splits the batch into 4 parts, the best "
        "of the splits tried on `nb201_ground_truth_mnist1d_mean3.csv` (2 parts: tau 0.520 "
        "there; 4 parts: 0.540). Votes sum each cell's ranks under their proxies; the first "
        "is Abdelfattah et al.'s, the other two were chosen after the single proxies' "
        "figures on both 3-seed tables were known (exploratory).",
        "",
        f"Ground truth: {len(truth)} NB201 cells ({args.channels} channels, "
        f"{args.cells_per_stage} cell per stage) trained stand-alone on {args.dataset} "
        f"(`{args.truth}`), {train_seconds:.1f} s per training on average.",
        "",
        "| proxy | Kendall tau (test) | Spearman rho (test) | Kendall tau (valid) | "
        "Spearman rho (valid) | cost (stand-alone trainings per cell) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    test = [float(row["test_accuracy"]) for row in truth]
    valid = [float(row["valid_accuracy"]) for row in truth]
    finite_scores = {
        name: [v if v == v and abs(v) != float("inf") else -1e300 for v in values]
        for name, values in scores.items()
    }
    votes = {
        label: list(np.sum([stats.rankdata(finite_scores[p]) for p in members], axis=0))
        for label, members in VOTES.items()
    }
    for name, finite in [*finite_scores.items(), *votes.items()]:
        tau_t = stats.kendalltau(finite, test).statistic
        rho_t = stats.spearmanr(finite, test).statistic
        tau_v = stats.kendalltau(finite, valid).statistic
        rho_v = stats.spearmanr(finite, valid).statistic
        members = VOTES.get(name, (name,))
        cost = sum(seconds[p] for p in members) / len(truth) / train_seconds
        label = f"{name} (baseline)" if name in ("params", "flops") else name
        lines.append(
            f"| {label} | {tau_t:.3f} | {rho_t:.3f} | {tau_v:.3f} | {rho_v:.3f} | {cost:.4f} |"
        )
    text = "\n".join(lines) + "\n"
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
