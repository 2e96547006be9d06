"""Averages NB201 ground-truth tables trained with different seeds, and measures their noise.

``nb201_ground_truth.py`` trains each cell once. One training seed ranks cells with noise
of its own, which caps the rank correlation any estimator can reach against it. This
script joins tables of the same cells trained with other ``--train-seed`` values: each
cell's ``valid_accuracy`` and ``test_accuracy`` become their means over the tables that
hold it (``n_seeds`` says how many), ``seconds`` the mean time of one training, so that
costs stay in units of one stand-alone training. It prints, and writes beside the CSV as
Markdown, how well one seed's test accuracy ranks the cells like another seed's (Kendall
tau and Spearman rho for every pair of tables), which is the noise floor of a
single-seed table.

Usage::

    python benchmarks/ground_truth_mean.py \\
        --inputs benchmarks/results/nb201_ground_truth_mnist1d.csv \\
                 benchmarks/results/nb201_ground_truth_mnist1d_train1.csv \\
                 benchmarks/results/nb201_ground_truth_mnist1d_train2.csv \\
        --output benchmarks/results/nb201_ground_truth_mnist1d_mean3.csv
"""

from __future__ import annotations

import argparse
import csv
import itertools
import statistics
import sys
from pathlib import Path

from scipy.stats import kendalltau, spearmanr

FIELDS = ("arch", "n_params", "flops", "valid_accuracy", "test_accuracy", "seconds", "n_seeds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, nargs="+", required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)

    tables = []
    for path in args.inputs:
        with path.open(newline="") as handle:
            tables.append({row["arch"]: row for row in csv.DictReader(handle)})
    order = list(tables[0])  # the first table's cells, in its order
    rows = []
    for arch in order:
        held = [t[arch] for t in tables if arch in t]

        def mean(field: str, held: list[dict[str, str]] = held) -> float:
            return statistics.mean(float(r[field]) for r in held)

        rows.append(
            {
                "arch": arch,
                "n_params": held[0]["n_params"],
                "flops": held[0]["flops"],
                "valid_accuracy": f"{mean('valid_accuracy'):.4f}",
                "test_accuracy": f"{mean('test_accuracy'):.4f}",
                "seconds": f"{mean('seconds'):.1f}",
                "n_seeds": len(held),
            }
        )
    with args.output.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)

    lines = [
        f"`python benchmarks/ground_truth_mean.py {' '.join(sys.argv[1:])}`",
        "",
        f"{len(rows)} cells; seeds per cell: "
        f"{min(r['n_seeds'] for r in rows)} to {max(r['n_seeds'] for r in rows)}.",
        "",
        "| table | other table | cells in both | Kendall tau (test) | Spearman rho (test) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for (i, a), (j, b) in itertools.combinations(enumerate(tables), 2):
        common = [arch for arch in a if arch in b]
        x = [float(a[arch]["test_accuracy"]) for arch in common]
        y = [float(b[arch]["test_accuracy"]) for arch in common]
        tau, rho = kendalltau(x, y).statistic, spearmanr(x, y).statistic
        lines.append(
            f"| {args.inputs[i].name} | {args.inputs[j].name} | {len(common)} | "
            f"{tau:.3f} | {rho:.3f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    args.output.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
