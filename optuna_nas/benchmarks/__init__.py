"""Tabular benchmarks: architecture search objectives that look results up instead of training.

:class:`NASBench201` is an Optuna objective over the ``nb201`` space that needs no GPU;
:func:`run_nb201` runs the sampler comparison that ``optuna-nas benchmark nb201`` prints.
"""

from __future__ import annotations

from optuna_nas.benchmarks._nb201 import (
    DATASETS,
    NB201_DIR_ENV,
    PROTOCOLS,
    NASBench201,
    resolve_nb201_dir,
)
from optuna_nas.benchmarks._runner import (
    DEFAULT_BUDGET_SECONDS,
    DEFAULT_N_QUERIES,
    RunResult,
    SamplerSummary,
    available_samplers,
    create_sampler,
    format_table,
    run_nb201,
    summarize,
)

__all__ = [
    "DATASETS",
    "DEFAULT_BUDGET_SECONDS",
    "DEFAULT_N_QUERIES",
    "NASBench201",
    "NB201_DIR_ENV",
    "PROTOCOLS",
    "RunResult",
    "SamplerSummary",
    "available_samplers",
    "create_sampler",
    "format_table",
    "resolve_nb201_dir",
    "run_nb201",
    "summarize",
]
