"""The GPU throughput script runs end to end (on the CPU here, in its quick mode), so that a
lent GPU's short session measures instead of debugging it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_writes_every_row(tmp_path: Path) -> None:
    output = tmp_path / "throughput.md"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "gpu_throughput.py"),
            "--quick",
            "--output",
            str(output),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    table = output.read_text()
    for network in ("nb201", "darts"):
        for loop in ("fit", "loop"):
            row = re.search(rf"\| {network} \| 16 \| {loop} \| ([\d,]+) \|", table)
            assert row is not None, (network, loop, table)
            assert int(row.group(1).replace(",", "")) > 0
        graph = re.search(rf"\| {network} \| 16 \| graph \| ([^|]+) \|", table)
        assert graph is not None
        if not torch.cuda.is_available():
            assert graph.group(1).startswith("n/a: CUDA graphs need CUDA")
    totals = dict(re.findall(r"^\| (\d+) \| ([\d,]+) \|$", table, re.M))
    assert set(totals) == {"1", "2"}
    assert all(int(v.replace(",", "")) > 0 for v in totals.values())
