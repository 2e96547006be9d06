"""The ground-truth averaging script: means per cell, and the seed-to-seed noise table."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEADER = "arch,n_params,flops,valid_accuracy,test_accuracy,seconds\n"


def test_means_per_cell_and_rank_agreement(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text(HEADER + "x,1,2,0.5,0.6,10\ny,1,2,0.7,0.8,20\nz,1,2,0.9,0.9,30\n")
    b.write_text(HEADER + "y,1,2,0.9,0.9,30\nz,1,2,0.7,0.8,10\n")  # no x; y and z swap
    out = tmp_path / "mean.csv"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "ground_truth_mean.py"),
            "--inputs",
            str(a),
            str(b),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {r["arch"]: r for r in csv.DictReader(out.open())}
    assert list(rows) == ["x", "y", "z"]
    assert (rows["x"]["test_accuracy"], rows["x"]["n_seeds"]) == ("0.6000", "1")
    assert (rows["y"]["test_accuracy"], rows["y"]["valid_accuracy"]) == ("0.8500", "0.8000")
    assert (rows["z"]["seconds"], rows["z"]["n_seeds"]) == ("20.0", "2")
    # y and z are ranked the other way round in b: tau -1 on the two cells both hold.
    assert "| a.csv | b.csv | 2 | -1.000 | -1.000 |" in out.with_suffix(".md").read_text()
