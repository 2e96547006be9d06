"""Many NAS-Bench-201 runs at once, and the tables and files that report them."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from optuna_nas.benchmarks._runner import RunResult, SamplerSummary, run_nb201


def run_many(jobs: Sequence[tuple[str, int]], workers: int, **kwargs: Any) -> Iterator[RunResult]:
    """Runs :func:`run_nb201` for each ``(sampler, seed)``, yielding results as they finish.

    Args:
        jobs: The sampler names and seeds to run.
        workers: Processes to run them in; ``1`` runs them here, one after another.
        **kwargs: Passed to every :func:`run_nb201` call (``protocol``, ``dataset``, ...).
    """
    if workers == 1:
        for name, seed in jobs:
            yield run_nb201(name, seed, **kwargs)
        return
    # One thread per process: torch's default of one per core oversubscribes the CPU
    # when several processes fit GPs at once.
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        futures = [pool.submit(run_nb201, name, seed, **kwargs) for name, seed in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


def write_markdown(
    path: str | Path, *, title: str, command: str, table: str, reference: str
) -> None:
    """Writes a comparison table as Markdown, with the command that reproduces it."""
    Path(path).write_text(
        f"# {title}\n\n```\n{command}\n```\n\n{table}\n\n{reference}\n\n"
        "Test accuracy: 200-epoch `test_acc` of the best-reward cell of each run. "
        "Sampler ms/trial: wall time of `study.ask()`, the suggests and `study.tell()`, "
        "without the table lookup. Std: over seeds, ddof=1.\n"
    )


def write_json(
    path: str | Path,
    *,
    title: str,
    command: str,
    summaries: Sequence[SamplerSummary],
    runs: Sequence[RunResult],
) -> None:
    """Writes every run's result and the per-sampler summaries as JSON.

    A run keeps its cell (``best_arch``) but not that cell's table values (``test_acc``,
    ``best_reward``): the tables are not ours to copy, so read them there.
    """
    payload = {
        "command": command,
        "title": title,
        "summaries": [s.to_dict() for s in summaries],
        "runs": [r.to_dict(table_values=False) for r in runs],
    }
    Path(path).write_text(json.dumps(payload, indent=2) + "\n")
