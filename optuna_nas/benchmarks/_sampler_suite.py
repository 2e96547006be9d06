"""The sampler suite: ours and the peers on several tabular benchmarks, in one run.

Every problem is a plain Optuna objective, as a user writes one: no ``space=``, no
canonicalization. Every sampler, ours or a peer, searches it through Optuna's ask-and-tell
interface, except SMAC3, which is driven through its own ask-and-tell interface at the
defaults of its hyperparameter-optimization facade, as its users run it. A run records the
best value found after every query (the anytime curve), the test metric of the
best-valued architecture and the sampler's own time per query.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from optuna_nas import _keys
from optuna_nas.benchmarks._nb201 import NASBench201, NASBench201Conditional
from optuna_nas.benchmarks._nbgraph import LINKS, OPERATIONS, NASBenchGraph

if TYPE_CHECKING:
    from ConfigSpace import ConfigurationSpace

OURS = ("gp", "evolution", "reinforce", "random")
"""Our samplers, at their defaults."""

PEERS = ("tpe", "tpe-group", "optuna-gp", "optuna-random", "optuna-cmaes", "smac")
"""The peers: Optuna's samplers at their defaults (TPE is multivariate by default since
Optuna 5), TPE also with ``group=True`` (the knob its documentation recommends for
define-by-run, conditional spaces), and SMAC3's hyperparameter-optimization facade."""

_NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@dataclass(frozen=True)
class Problem:
    """One benchmark of the suite.

    Attributes:
        name: Short name, such as ``nb201-cifar10-A`` or ``nbg-cora-60``.
        make_objective: Builds the objective: a callable on a trial returning the value to
            maximize, and setting the ``optuna_nas:bench_test_accuracy`` user attribute
            (and ``optuna_nas:bench_simulated_seconds`` when ``budget_seconds`` is set).
        config_space: Builds the same space as a ConfigSpace space, for SMAC3.
        n_queries: Queries per run, when the budget is a number of queries.
        budget_seconds: Simulated seconds per run, when the budget is a time (NB201's
            protocol A); ``planned_queries`` then tells SMAC3 how many trials to plan for.
        planned_queries: SMAC3's ``n_trials`` under a time budget: about the number of
            queries the budget buys.
        tuned: Whether our samplers' defaults were chosen on this problem.
    """

    name: str
    make_objective: Callable[[], Callable[[optuna.trial.BaseTrial], float]]
    config_space: Callable[[], ConfigurationSpace]
    n_queries: int | None = None
    budget_seconds: float | None = None
    planned_queries: int | None = None
    tuned: bool = False


def _nb201_config_space() -> ConfigurationSpace:
    from ConfigSpace import Categorical, ConfigurationSpace

    names = ("node1/in0", "node2/in0", "node2/in1", "node3/in0", "node3/in1", "node3/in2")
    return ConfigurationSpace({n: Categorical(n, _NB201_OPS) for n in names})


def _nb201_conditional_config_space() -> ConfigurationSpace:
    from ConfigSpace import Categorical, ConfigurationSpace, EqualsCondition

    space = ConfigurationSpace()
    for k in range(6):
        family = Categorical(f"edge{k}", ("none", "skip", "conv", "pool"))
        kernel = Categorical(f"edge{k}/kernel", (1, 3))
        space.add([family, kernel, EqualsCondition(kernel, family, "conv")])
    return space


def _nbg_config_space() -> ConfigurationSpace:
    from ConfigSpace import Categorical, ConfigurationSpace

    space = {"link": Categorical("link", LINKS)}
    space.update({f"op{i}": Categorical(f"op{i}", OPERATIONS) for i in range(4)})
    return ConfigurationSpace(space)


def default_problems(
    nb201_root: str | os.PathLike[str] | None = None,
    nbg_datasets: Sequence[str] = ("arxiv", "cs", "physics", "photo", "computers"),
) -> list[Problem]:
    """The suite: NAS-Bench-201 (3 datasets x protocols A and B), its conditional encoding
    (3 datasets, protocol B) and NAS-Bench-Graph (``nbg_datasets`` x 60 and 150 queries).

    Our samplers' defaults were chosen on NAS-Bench-201 CIFAR-10 alone (both encodings);
    those problems are marked ``tuned``, every other is held out.

    Args:
        nb201_root: Folder of the NB201 tables; by default ``$OPTUNA_NAS_NB201_DIR``.
        nbg_datasets: NAS-Bench-Graph datasets (``proteins`` does not ship with the
            package).
    """
    problems: list[Problem] = []
    # Protocol A buys about this many queries (12,000 s over the mean 12-epoch cost).
    planned = {"cifar10": 100, "cifar100": 50, "imagenet16-120": 17}
    for dataset in ("cifar10", "cifar100", "imagenet16-120"):
        for protocol in ("A", "B"):
            problems.append(
                Problem(
                    name=f"nb201-{dataset}-{protocol}",
                    make_objective=_bind(NASBench201, dataset, nb201_root, protocol),
                    config_space=_nb201_config_space,
                    n_queries=100 if protocol == "B" else None,
                    budget_seconds=12_000.0 if protocol == "A" else None,
                    planned_queries=planned[dataset] if protocol == "A" else None,
                    tuned=dataset == "cifar10",
                )
            )
    for dataset in ("cifar10", "cifar100", "imagenet16-120"):
        problems.append(
            Problem(
                name=f"nb201cond-{dataset}-B",
                make_objective=_bind(NASBench201Conditional, dataset, nb201_root, "B"),
                config_space=_nb201_conditional_config_space,
                n_queries=100,
                tuned=dataset == "cifar10",
            )
        )
    for n in (60, 150):
        for dataset in nbg_datasets:
            problems.append(
                Problem(
                    name=f"nbg-{dataset}-{n}",
                    make_objective=_bind(NASBenchGraph, dataset),
                    config_space=_nbg_config_space,
                    n_queries=n,
                )
            )
    return problems


def _bind(cls: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    # A partial, not a lambda: problems travel to worker processes by pickling.
    return functools.partial(cls, *args)


@dataclass(frozen=True)
class SuiteRun:
    """One search of one problem by one sampler.

    Attributes:
        problem: The problem's name.
        sampler: The sampler's name.
        seed: The sampler's seed.
        best_value: The best value found (what the sampler optimizes).
        test_of_best: The test metric of the architecture with that value (the first
            found on ties).
        n_queries: Queries counted.
        sampler_ms_per_trial: Mean wall time per query spent in the sampler (ask and
            tell, and the suggest calls), without the table lookup, in milliseconds.
        curve: The best value found after each query.
    """

    problem: str
    sampler: str
    seed: int
    best_value: float
    test_of_best: float
    n_queries: int
    sampler_ms_per_trial: float
    curve: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-serialisable dict."""
        return dataclasses.asdict(self)


def run_problem(
    problem: Problem,
    sampler_name: str,
    seed: int,
    sampler_kwargs: dict[str, Any] | None = None,
) -> SuiteRun:
    """Runs one search of ``problem`` with one sampler and seed, in memory.

    Under a time budget the query whose cost would pass the budget is told as failed and
    not counted, as in :func:`~optuna_nas.benchmarks.run_nb201`.

    Args:
        problem: The problem.
        sampler_name: A name :func:`optuna_nas.samplers.create` accepts,
            ``tpe-group`` or ``smac``.
        seed: The sampler's seed.
        sampler_kwargs: Passed to the sampler's constructor (not for ``smac``).
    """
    objective = problem.make_objective()
    if sampler_name == "smac":
        return _run_smac(problem, objective, seed)
    sampler = _make_sampler(sampler_name, seed, sampler_kwargs or {})
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        return _loop(problem, sampler_name, seed, objective, study)
    finally:
        optuna.logging.set_verbosity(verbosity)


def _make_sampler(name: str, seed: int, kwargs: dict[str, Any]) -> optuna.samplers.BaseSampler:
    from optuna_nas import samplers

    if name == "tpe-group":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, **kwargs)
    with warnings.catch_warnings():
        # CMA-ES hands categorical parameters to independent random sampling, and says so
        # once per parameter; the suite reports it as it behaves.
        warnings.simplefilter("ignore", UserWarning)
        return samplers.create(name, seed=seed, **kwargs)


class _Budget:
    """Counts queries and simulated seconds against a problem's budget."""

    def __init__(self, problem: Problem) -> None:
        self._problem = problem
        self.spent = 0.0
        self.counted = 0

    def more(self) -> bool:
        n = self._problem.n_queries
        return n is None or self.counted < n

    def admits(self, attrs: dict[str, Any]) -> bool:
        limit = self._problem.budget_seconds
        if limit is None:
            return True
        cost = float(attrs.get(_keys.BENCH_SIMULATED_SECONDS, 0.0))
        if self.spent + cost > limit:
            return False
        self.spent += cost
        return True


def _loop(
    problem: Problem,
    sampler_name: str,
    seed: int,
    objective: Callable[[optuna.trial.BaseTrial], float],
    study: optuna.Study,
) -> SuiteRun:
    budget = _Budget(problem)
    curve: list[float] = []
    best: tuple[float, float] | None = None
    sampling = 0.0
    while budget.more():
        tick = time.perf_counter()
        trial = study.ask()
        value, lookup = _timed_objective(objective, trial)
        if not budget.admits(trial.user_attrs):
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        told = time.perf_counter()
        study.tell(trial, value)
        sampling += (told - tick - lookup) + (time.perf_counter() - told)
        budget.counted += 1
        if best is None or value > best[0]:
            best = (value, float(trial.user_attrs[_keys.BENCH_TEST_ACCURACY]))
        curve.append(best[0])
    return _result(problem, sampler_name, seed, best, budget, sampling, curve)


def _timed_objective(
    objective: Callable[[optuna.trial.BaseTrial], float], trial: optuna.trial.BaseTrial
) -> tuple[float, float]:
    """The objective's value and the seconds its table lookup took.

    The suggest calls, where a sampler does its work, are timed with the sampler; the
    lookup is measured by a second, sampler-free call on the same parameters.
    """
    value = float(objective(trial))
    fixed = optuna.trial.FixedTrial(dict(trial.params))
    tick = time.perf_counter()
    objective(fixed)
    return value, time.perf_counter() - tick


def _result(
    problem: Problem,
    sampler_name: str,
    seed: int,
    best: tuple[float, float] | None,
    budget: _Budget,
    sampling: float,
    curve: list[float],
) -> SuiteRun:
    if best is None:
        raise ValueError(f"{problem.name}: the budget does not cover one query")
    return SuiteRun(
        problem=problem.name,
        sampler=sampler_name,
        seed=seed,
        best_value=best[0],
        test_of_best=best[1],
        n_queries=budget.counted,
        sampler_ms_per_trial=1000.0 * sampling / budget.counted,
        curve=curve,
    )


def _run_smac(
    problem: Problem, objective: Callable[[optuna.trial.BaseTrial], float], seed: int
) -> SuiteRun:
    """SMAC3's hyperparameter-optimization facade at its defaults, through ask and tell."""
    import logging

    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    n_trials = problem.n_queries or problem.planned_queries or 100
    with tempfile.TemporaryDirectory() as output:
        scenario = Scenario(
            problem.config_space(),
            deterministic=True,
            n_trials=n_trials,
            seed=seed,
            output_directory=Path(output),
        )
        smac = HyperparameterOptimizationFacade(
            scenario,
            target_function=lambda config, seed=0: 0.0,
            overwrite=True,
            logging_level=logging.ERROR,
        )
        budget = _Budget(problem)
        curve: list[float] = []
        best: tuple[float, float] | None = None
        sampling = 0.0
        while budget.more():
            tick = time.perf_counter()
            info = smac.ask()
            asked = time.perf_counter()
            trial = optuna.trial.FixedTrial(dict(info.config))
            value = float(objective(trial))
            if not budget.admits(trial.user_attrs):
                break
            told = time.perf_counter()
            smac.tell(info, TrialValue(cost=-value))
            sampling += (asked - tick) + (time.perf_counter() - told)
            budget.counted += 1
            if best is None or value > best[0]:
                best = (value, float(trial.user_attrs[_keys.BENCH_TEST_ACCURACY]))
            curve.append(best[0])
    return _result(problem, "smac", seed, best, budget, sampling, curve)


def run_suite(
    problems: Sequence[Problem],
    sampler_names: Sequence[str],
    seeds: Sequence[int],
    workers: int = 1,
) -> Iterator[SuiteRun]:
    """Runs every problem with every sampler and seed, yielding runs as they finish.

    Args:
        problems: From :func:`default_problems`, or a part of it.
        sampler_names: Ours and the peers, as :func:`run_problem` accepts them.
        seeds: Seeds per sampler and problem.
        workers: Processes; ``1`` runs everything here, one run after another.
    """
    import concurrent.futures

    from optuna_nas.benchmarks._suite import _one_thread

    jobs = [(p, s, seed) for p in problems for s in sampler_names for seed in seeds]
    if workers == 1:
        for job in jobs:
            yield run_problem(*job)
        return
    with concurrent.futures.ProcessPoolExecutor(workers, initializer=_one_thread) as pool:
        futures = [pool.submit(run_problem, *job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()
