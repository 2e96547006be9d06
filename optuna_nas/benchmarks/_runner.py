"""The sampler comparison on NAS-Bench-201: one search per sampler and seed, then a table.

A run follows the NB201 paper's protocol for non-weight-sharing searches: query cells one
by one until a simulated time budget is spent (protocol A) or a number of queries is made
(protocol B), and report the 200-epoch test accuracy of the cell with the best reward.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna

from optuna_nas import _keys, samplers
from optuna_nas.benchmarks._nb201 import NASBench201

DEFAULT_BUDGET_SECONDS = 12_000.0
"""Protocol A's simulated time budget: the NB201 paper's 12,000 s."""

DEFAULT_N_QUERIES = 100
"""Protocol B's number of queries."""

_CANONICALIZING = frozenset({"random", "evolution", "reinforce", "gp"})
"""Our samplers that take a ``canonicalize`` argument: they get NB201's isomorphism classes
(:func:`~optuna_nas.samplers.nb201_canonical`), so they never query a cell equivalent to
one already queried."""


@dataclass(frozen=True)
class RunResult:
    """The outcome of one search on NAS-Bench-201.

    Attributes:
        sampler: The sampler's name.
        seed: The sampler's seed.
        protocol: ``"A"`` or ``"B"``.
        dataset: The benchmark's dataset.
        test_acc: The 200-epoch test accuracy (%) of the best-reward cell, the reported metric.
        best_reward: That cell's reward (%).
        best_arch: That cell's NB201 arch string.
        n_queries: Queries counted: under protocol A those whose cost fit in the budget.
        simulated_seconds: The summed cost of the counted queries.
        sampler_ms_per_trial: Mean wall time per counted query spent outside the table lookup:
            ``study.ask()``, the six ``suggest_categorical`` calls and ``study.tell()``
            (which runs the sampler's ``after_trial``), in milliseconds.
        wall_seconds: Wall time of the whole run.
    """

    sampler: str
    seed: int
    protocol: str
    dataset: str
    test_acc: float
    best_reward: float
    best_arch: str
    n_queries: int
    simulated_seconds: float
    sampler_ms_per_trial: float
    wall_seconds: float

    def to_dict(self, table_values: bool = True) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict.

        Args:
            table_values: Include :data:`TABLE_FIELDS`, the values looked up in
                NAS-Bench-201's tables. Files the project keeps leave them out: the tables
                are not the project's to copy, and ``best_arch`` finds them again there.
        """
        record = dataclasses.asdict(self)
        if not table_values:
            for field in TABLE_FIELDS:
                del record[field]
        return record


TABLE_FIELDS = ("test_acc", "best_reward")
"""The fields of :class:`RunResult` that are NAS-Bench-201 table values of ``best_arch``."""


def run_nb201(
    sampler_name: str,
    seed: int,
    protocol: str = "A",
    dataset: str = "cifar10",
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    n_queries: int = DEFAULT_N_QUERIES,
    sampler_kwargs: dict[str, Any] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Runs one search on NAS-Bench-201 with an in-memory study and reports it.

    The loop uses Optuna's ask-and-tell interface on :class:`NASBench201`. Under protocol A
    every query charges its cell's 12-epoch simulated training time, and the search ends with
    the query whose cost would take the total past ``budget_seconds``: that query is told to
    the study as failed and not counted, so the counted cost never exceeds the budget. Under
    protocol B the search ends after ``n_queries``. A cell that is queried again is charged
    again, as in the benchmark's protocol. The result is the cell with the best reward among
    the counted queries (the first found on ties) and its 200-epoch test accuracy.

    All four of our samplers (``random``, ``evolution``, ``reinforce`` and ``gp``) receive
    the space and, unless ``sampler_kwargs`` says otherwise,
    ``canonicalize=nb201_canonical``: they skip cells computationally isomorphic to a cell
    already queried (6,466 classes among the 15,625 cells).

    Args:
        sampler_name: A name :func:`optuna_nas.samplers.create` accepts.
        seed: The sampler's seed.
        protocol: ``"A"`` (12-epoch reward, time budget) or ``"B"`` (200-epoch reward,
            query budget); see :class:`NASBench201`.
        dataset: ``cifar10``, ``cifar100`` or ``imagenet16-120``. The budget does not scale
            with the dataset: the recorded times are 2x (CIFAR-100) and 6.07x
            (ImageNet16-120) those of CIFAR-10, so fewer queries fit.
        budget_seconds: Protocol A's simulated time budget.
        n_queries: Protocol B's number of queries.
        sampler_kwargs: Passed to the sampler's constructor.
        root: Folder of the tables; by default ``$OPTUNA_NAS_NB201_DIR``.

    Raises:
        ValueError: For an unknown sampler, dataset or protocol, or a non-positive budget.
        FileNotFoundError: If the tables are not found.

    References:
        Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
        Architecture Search", ICLR 2020 (Section 5: 12,000 s budget, 12-epoch reward).

    Example:
        .. code-block:: python

            from optuna_nas.benchmarks import run_nb201

            # The tables' folder: root=..., or OPTUNA_NAS_NB201_DIR as here.
            result = run_nb201("tpe", seed=0, protocol="A")
            print(result.test_acc, result.n_queries, result.sampler_ms_per_trial)
    """
    if not budget_seconds > 0 or n_queries < 1:
        raise ValueError(
            f"budget_seconds={budget_seconds} and n_queries={n_queries} must both be positive"
        )
    bench = NASBench201(dataset, root=root, protocol=protocol)
    kwargs = dict(sampler_kwargs or {})
    if sampler_name in _CANONICALIZING:
        kwargs.setdefault("canonicalize", samplers.nb201_canonical)
    sampler = samplers.create(sampler_name, seed=seed, space=bench.space, **kwargs)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        start = time.perf_counter()
        study = optuna.create_study(direction="maximize", sampler=sampler)
        spent = sampling = 0.0
        counted = 0
        best: tuple[float, str, float] | None = None  # reward, arch, test accuracy
        while protocol != "B" or counted < n_queries:
            tick = time.perf_counter()
            trial = study.ask()
            arch = bench.space.suggest(trial)
            sampled = time.perf_counter()
            reward = bench.evaluate(trial, arch)
            cost = trial.user_attrs[_keys.BENCH_SIMULATED_SECONDS]
            if protocol == "A" and spent + cost > budget_seconds:
                trial.set_user_attr(_keys.BENCH_OVER_BUDGET, True)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                break
            told = time.perf_counter()
            study.tell(trial, reward)
            sampling += (sampled - tick) + (time.perf_counter() - told)
            spent += cost
            counted += 1
            if best is None or reward > best[0]:
                best = (
                    reward,
                    trial.user_attrs[_keys.BENCH_ARCH],
                    trial.user_attrs[_keys.BENCH_TEST_ACCURACY],
                )
        wall = time.perf_counter() - start
    finally:
        optuna.logging.set_verbosity(verbosity)
    if best is None:
        raise ValueError(
            f"the budget of {budget_seconds} simulated seconds does not cover one query; "
            "raise budget_seconds"
        )
    return RunResult(
        sampler=sampler_name,
        seed=seed,
        protocol=protocol,
        dataset=dataset,
        test_acc=best[2],
        best_reward=best[0],
        best_arch=best[1],
        n_queries=counted,
        simulated_seconds=spent,
        sampler_ms_per_trial=1000.0 * sampling / counted,
        wall_seconds=wall,
    )


@dataclass(frozen=True)
class SamplerSummary:
    """Mean and spread of one sampler's runs.

    Attributes:
        sampler: The sampler's name.
        n_runs: Number of runs (seeds).
        test_acc_mean: Mean reported test accuracy (%).
        test_acc_std: Its sample standard deviation (``ddof=1``; 0 for one run).
        best_reward_mean: Mean reward of the returned cells (%).
        n_queries_mean: Mean number of counted queries.
        sampler_ms_per_trial: Mean of the runs' sampler milliseconds per trial.
        wall_seconds_mean: Mean wall time of a run.
    """

    sampler: str
    n_runs: int
    test_acc_mean: float
    test_acc_std: float
    best_reward_mean: float
    n_queries_mean: float
    sampler_ms_per_trial: float
    wall_seconds_mean: float

    def to_dict(self, table_values: bool = True) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict.

        Args:
            table_values: Include :data:`TABLE_FIELDS`, the values looked up in
                NAS-Bench-201's tables. Files the project keeps leave them out: the tables
                are not the project's to copy, and ``best_arch`` finds them again there.
        """
        record = dataclasses.asdict(self)
        if not table_values:
            for field in TABLE_FIELDS:
                del record[field]
        return record


TABLE_FIELDS = ("test_acc", "best_reward")
"""The fields of :class:`RunResult` that are NAS-Bench-201 table values of ``best_arch``."""


def summarize(results: Iterable[RunResult]) -> list[SamplerSummary]:
    """Groups runs by sampler, in order of first appearance, and averages them."""
    groups: dict[str, list[RunResult]] = {}
    for result in results:
        groups.setdefault(result.sampler, []).append(result)

    def mean(runs: Sequence[RunResult], field: str) -> float:
        return float(np.mean([getattr(r, field) for r in runs]))

    summaries = []
    for name, runs in groups.items():
        tests = [r.test_acc for r in runs]
        summaries.append(
            SamplerSummary(
                sampler=name,
                n_runs=len(runs),
                test_acc_mean=float(np.mean(tests)),
                test_acc_std=float(np.std(tests, ddof=1)) if len(runs) > 1 else 0.0,
                best_reward_mean=mean(runs, "best_reward"),
                n_queries_mean=mean(runs, "n_queries"),
                sampler_ms_per_trial=mean(runs, "sampler_ms_per_trial"),
                wall_seconds_mean=mean(runs, "wall_seconds"),
            )
        )
    return summaries


def format_table(summaries: Sequence[SamplerSummary], reward_column: str = "reward") -> str:
    """The summaries as a Markdown table, one row per sampler.

    Args:
        summaries: From :func:`summarize`.
        reward_column: Name of the reward, for the header (e.g. ``valid_acc_12ep``).
    """
    header = (
        f"| sampler | runs | test acc (%) mean ± std | {reward_column} of best (%) "
        "| queries | sampler ms/trial | s/run |"
    )
    lines = [header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in summaries:
        lines.append(
            f"| {s.sampler} | {s.n_runs} | {s.test_acc_mean:.2f} ± {s.test_acc_std:.2f} "
            f"| {s.best_reward_mean:.2f} | {s.n_queries_mean:.1f} "
            f"| {s.sampler_ms_per_trial:.2f} | {s.wall_seconds_mean:.1f} |"
        )
    return "\n".join(lines)
