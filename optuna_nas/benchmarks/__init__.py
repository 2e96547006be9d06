"""Tabular benchmarks: architecture search objectives that look results up instead of training.

:class:`NASBench201` is an Optuna objective over the ``nb201`` space that needs no GPU;
:func:`run_nb201` runs the sampler comparison that ``optuna-nas benchmark nb201`` prints.
:class:`NASBench201Conditional` asks for the same cells as a conditional space, and
:class:`NASBenchGraph` is a second tabular benchmark, on graph networks;
:func:`run_suite` runs ours and the peers (Optuna's samplers and SMAC3) on all of them.
:func:`replay_study` and its helpers replay recorded learning curves through a pruner, to
measure what it saves and what it loses (``benchmarks/pruner_replay.py``).
"""

from __future__ import annotations

from optuna_nas.benchmarks._nats import convert_nats_tss
from optuna_nas.benchmarks._nb201 import (
    DATASETS,
    NB201_DIR_ENV,
    PROTOCOLS,
    NASBench201,
    NASBench201Conditional,
    resolve_nb201_dir,
)
from optuna_nas.benchmarks._nbgraph import LINKS, NBG_DATASETS, OPERATIONS, NASBenchGraph
from optuna_nas.benchmarks._replay import (
    UNCHANGED_TOLERANCE,
    Curve,
    MethodSummary,
    PruneEvent,
    ReplayResult,
    ReplayScore,
    random_orders,
    reference_pick,
    replay_study,
    replay_top_k,
    run_methods,
    score_replay,
    summarize_scores,
)
from optuna_nas.benchmarks._replay_audit import (
    rank_correlation_before,
    unselected_rank_correlation_before,
)
from optuna_nas.benchmarks._runner import (
    DEFAULT_BUDGET_SECONDS,
    DEFAULT_N_QUERIES,
    RunResult,
    SamplerSummary,
    format_table,
    run_nb201,
    summarize,
)
from optuna_nas.benchmarks._sampler_suite import (
    OURS,
    PEERS,
    Problem,
    SuiteRun,
    default_problems,
    run_problem,
    run_suite,
)
from optuna_nas.benchmarks._suite import run_many, write_json, write_markdown
from optuna_nas.benchmarks._suite_report import (
    Cell,
    average_ranks,
    format_suite,
    plot_anytime,
    summarize_suite,
)

__all__ = [
    "Cell",
    "LINKS",
    "NASBench201Conditional",
    "NASBenchGraph",
    "NBG_DATASETS",
    "OPERATIONS",
    "OURS",
    "PEERS",
    "Problem",
    "SuiteRun",
    "average_ranks",
    "default_problems",
    "format_suite",
    "plot_anytime",
    "run_problem",
    "run_suite",
    "summarize_suite",
    "Curve",
    "DATASETS",
    "DEFAULT_BUDGET_SECONDS",
    "DEFAULT_N_QUERIES",
    "MethodSummary",
    "NASBench201",
    "NB201_DIR_ENV",
    "PROTOCOLS",
    "PruneEvent",
    "ReplayResult",
    "ReplayScore",
    "RunResult",
    "SamplerSummary",
    "UNCHANGED_TOLERANCE",
    "convert_nats_tss",
    "format_table",
    "random_orders",
    "rank_correlation_before",
    "unselected_rank_correlation_before",
    "reference_pick",
    "replay_study",
    "replay_top_k",
    "resolve_nb201_dir",
    "run_methods",
    "run_many",
    "run_nb201",
    "score_replay",
    "summarize",
    "summarize_scores",
    "write_json",
    "write_markdown",
]
