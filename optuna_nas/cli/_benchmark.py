"""``optuna-nas benchmark``: compare samplers on NAS-Bench-201 over many seeds."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from optuna_nas.cli._common import (
    CLIError,
    positive_float,
    positive_int,
)


def add_parser(sub: Any) -> None:
    """Adds the subcommand to ``sub``, the parser's subparsers."""
    bench = sub.add_parser(
        "benchmark", help="compare samplers on NAS-Bench-201 over many seeds (no GPU needed)"
    )
    bench.add_argument("name", help="benchmark name: nb201")
    bench.add_argument(
        "--samplers",
        default="random,tpe",
        help="comma-separated sampler names, ours or optuna-random, optuna-gp "
        "(default: random,tpe)",
    )
    bench.add_argument(
        "--seeds", type=positive_int, default=20, help="runs per sampler, seeds 0..N-1"
    )
    bench.add_argument(
        "--protocol",
        default="A",
        help="A: 12-epoch reward, simulated time budget (NB201 paper); B: 200-epoch reward, "
        "--n-queries queries (default: A)",
    )
    bench.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet16-120")
    bench.add_argument(
        "--budget-seconds",
        type=positive_float,
        default=12000.0,
        help="protocol A: simulated seconds per run (default: 12000)",
    )
    bench.add_argument(
        "--n-queries", type=positive_int, default=100, help="protocol B: queries per run"
    )
    bench.add_argument(
        "--nb201-dir", default=None, help="folder of the tables (default: $OPTUNA_NAS_NB201_DIR)"
    )
    bench.add_argument(
        "--workers", type=positive_int, default=1, help="parallel processes (default: 1)"
    )
    bench.add_argument("--output", "-o", default=None, help="also write the table as Markdown")
    bench.add_argument("--json", default=None, help="also write every run's result as JSON")
    bench.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from optuna_nas import benchmarks, samplers

    if args.name != "nb201":
        raise CLIError(f"unknown benchmark {args.name!r}; choose one of: nb201")
    names = list(dict.fromkeys(n.strip() for n in args.samplers.split(",") if n.strip()))
    known = ", ".join(samplers.available())
    unknown = [n for n in names if n not in samplers.available()]
    if unknown:
        raise CLIError(f"unknown sampler {', '.join(unknown)}; choose from: {known}")
    if not names:
        raise CLIError(f"--samplers is empty; give a comma-separated list from: {known}")
    protocol = args.protocol.upper()
    try:
        bench = benchmarks.NASBench201(args.dataset, root=args.nb201_dir, protocol=protocol)
    except (ValueError, FileNotFoundError) as err:
        raise CLIError(str(err)) from None
    for path in (args.output, args.json):
        if path and not Path(path).resolve().parent.is_dir():
            raise CLIError(f"cannot write {path}: its folder does not exist; create it first")

    budget = (
        f"budget {args.budget_seconds:g} simulated s"
        if protocol == "A"
        else f"{args.n_queries} queries"
    )
    title = (
        f"NAS-Bench-201 {args.dataset}, protocol {protocol} (reward {bench.reward_column}, "
        f"{budget}), seeds 0..{args.seeds - 1}"
    )
    jobs = [(name, seed) for name in names for seed in range(args.seeds)]
    kwargs = {
        "protocol": protocol,
        "dataset": args.dataset,
        "budget_seconds": args.budget_seconds,
        "n_queries": args.n_queries,
        "root": args.nb201_dir,
    }
    print(f"{title}: {len(jobs)} runs on {args.workers} worker(s)", file=sys.stderr)
    results = {}
    for done, result in enumerate(benchmarks.run_many(jobs, args.workers, **kwargs), start=1):
        results[result.sampler, result.seed] = result
        print(
            f"[{done}/{len(jobs)}] {result.sampler} seed {result.seed}: test "
            f"{result.test_acc:.2f} after {result.n_queries} queries",
            file=sys.stderr,
        )
    runs = [results[job] for job in jobs]
    summaries = benchmarks.summarize(runs)
    table = benchmarks.format_table(summaries, bench.reward_column)
    reference = (
        f"Optimum test accuracy {bench.optimum_test():.2f}; test accuracy of the best-"
        f"{bench.reward_column} cell {bench.test_accuracy(bench.best_reward_arch()):.2f}."
    )
    print(f"{title}\n\n{table}\n\n{reference}")

    command = _benchmark_command(args, names, protocol)
    if args.output:
        benchmarks.write_markdown(
            args.output, title=title, command=command, table=table, reference=reference
        )
        print(f"Wrote the table to {args.output}")
    if args.json:
        benchmarks.write_json(
            args.json, title=title, command=command, summaries=summaries, runs=runs
        )
        print(f"Wrote {len(runs)} runs to {args.json}")
    return 0


def _benchmark_command(args: argparse.Namespace, names: Sequence[str], protocol: str) -> str:
    """The command line that reruns this benchmark, with every setting spelled out."""
    words = [
        "optuna-nas benchmark nb201",
        f"--samplers {','.join(names)}",
        f"--seeds {args.seeds}",
        f"--protocol {protocol}",
        f"--dataset {args.dataset}",
        f"--budget-seconds {args.budget_seconds:g}"
        if protocol == "A"
        else f"--n-queries {args.n_queries}",
        f"--workers {args.workers}",
    ]
    if args.nb201_dir:
        words.append(f"--nb201-dir {args.nb201_dir}")
    return " ".join(words)
