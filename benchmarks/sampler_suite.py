"""The sampler suite: ours and the peers on NAS-Bench-201 (two encodings) and NAS-Bench-Graph.

Runs every problem of :func:`optuna_nas.benchmarks.default_problems` with every sampler and
seed, appending each finished run to a JSON-lines file (an interrupted suite resumes where
it stopped: runs already in the file are not run again), then writes one Markdown table
with ours and the peers side by side, average ranks, time per query, and the anytime
curves as a PNG.

    python benchmarks/sampler_suite.py --seeds 10 --workers 2 \
        --runs benchmarks/results/sampler_suite.jsonl \
        --output benchmarks/results/sampler_suite.md \
        --plot benchmarks/results/sampler_suite_anytime.png

The runs file holds values looked up in NAS-Bench-201's tables, which are not the
project's to copy: keep it local (``benchmarks/results/sampler_suite*.jsonl`` is ignored by
git) and commit the table and the plot.

NAS-Bench-201's tables are read from ``--nb201-dir`` or ``$OPTUNA_NAS_NB201_DIR``;
NAS-Bench-Graph's ship with the ``nas-bench-graph`` package; SMAC3 is the ``smac`` package.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from optuna_nas.benchmarks import (
    OURS,
    PEERS,
    SuiteRun,
    default_problems,
    format_suite,
    plot_anytime,
    run_suite,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samplers", default=",".join(OURS + PEERS))
    parser.add_argument("--problems", default="", help="comma-separated name prefixes")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--nb201-dir", default=None)
    parser.add_argument("--runs", required=True, help="JSON-lines file of finished runs")
    parser.add_argument("--output", default=None, help="Markdown table")
    parser.add_argument("--plot", default=None, help="anytime curves, PNG or SVG")
    parser.add_argument("--report-only", action="store_true", help="only write the table")
    args = parser.parse_args()

    names = [s for s in args.samplers.split(",") if s]
    prefixes = [p for p in args.problems.split(",") if p]
    problems = [
        p
        for p in default_problems(args.nb201_dir)
        if not prefixes or any(p.name.startswith(x) for x in prefixes)
    ]
    path = Path(args.runs)
    runs = _read(path)
    done = {(r.problem, r.sampler, r.seed) for r in runs}
    start = time.perf_counter()
    if not args.report_only:
        for problem in problems:
            todo = [
                s
                for s in names
                if any((problem.name, s, k) not in done for k in range(args.seeds))
            ]
            if not todo:
                continue
            seeds = range(args.seeds)
            for run in run_suite([problem], todo, seeds, workers=args.workers):
                if (run.problem, run.sampler, run.seed) in done:
                    continue
                runs.append(run)
                with path.open("a") as f:
                    f.write(json.dumps(run.to_dict()) + "\n")
                print(
                    f"{run.problem} {run.sampler} seed {run.seed}: {run.best_value:.4f} "
                    f"(test {run.test_of_best:.4f}), {run.sampler_ms_per_trial:.1f} ms/query",
                    flush=True,
                )
    wanted = {p.name for p in problems}
    runs = [r for r in runs if r.problem in wanted and r.sampler in names and r.seed < args.seeds]
    table = format_suite(runs, problems, names)
    print(table)
    if args.output:
        command = "python " + " ".join(sys.argv)
        machine = f"{platform.processor() or platform.machine()}, {platform.python_version()}"
        Path(args.output).write_text(
            "# Sampler suite\n\n"
            f"```\n{command}\n```\n\n"
            f"Machine: {machine}; {args.seeds} seeds per sampler and problem; "
            f"this invocation ran for {time.perf_counter() - start:.0f} s.\n\n"
            f"{table}\n"
        )
    if args.plot:
        plot_anytime(runs, problems, args.plot)
    return 0


def _read(path: Path) -> list[SuiteRun]:
    if not path.exists():
        return []
    return [SuiteRun(**json.loads(line)) for line in path.read_text().splitlines() if line]


if __name__ == "__main__":
    raise SystemExit(main())
