"""Several worker processes share one study on SQLite, PostgreSQL, MySQL and a journal file.

For every storage and every one of our samplers, four real processes optimize the same study
at once, then a fifth, started later, adds trials. The checks: every trial ran in exactly
one process and finished once, trial numbers are 0..N-1 with none lost or repeated, the
evolution population and the REINFORCE policy span all workers, and the late worker carries
on the same study.

Workers are forked from a forkserver that has imported optuna-nas once, so a worker costs
milliseconds rather than a fresh import of PyTorch.
"""

from __future__ import annotations

import json
import multiprocessing
import runpy
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from optuna_nas import open_storage, samplers
from optuna_nas.samplers._evolution import PARENT_ATTR

JOB_SCRIPT = Path(__file__).with_name("multiworker_job.py")
WORKERS = 4
LATE_TRIALS = 2
JOIN_TIMEOUT_S = 300
# Small enough that children appear after the first few trials; the GP fits a model for
# every trial after its startup ones, the costliest step, so it gets fewer trials.
SAMPLER_KWARGS: dict[str, dict[str, Any]] = {
    "random": {},
    "evolution": {"population_size": 4, "sample_size": 2},
    "reinforce": {},
    "gp": {"n_startup_trials": 6},
}
TRIALS_PER_WORKER = {"random": 5, "evolution": 5, "reinforce": 5, "gp": 3}

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(
    [
        "optuna_nas",
        "optuna_nas.samplers",
        "botorch",
        "optuna.storages._rdb.storage",
        "optuna.storages.journal",
        "alembic.migration",
        "psycopg2",
        "pymysql",
    ]
)


def run_workers(
    url: str,
    study_name: str,
    sampler: str,
    workers: range,
    n_trials: int,
    report_dir: Path,
) -> list[dict[str, Any]]:
    """Runs one process per index in ``workers`` on the study and returns their reports.

    The processes start their first trial together and, when there are several, wait for
    each other before reporting.
    """
    start = _context.Barrier(len(workers)) if len(workers) > 1 else None
    done = _context.Barrier(len(workers)) if len(workers) > 1 else None
    processes = []
    for index in workers:
        job = {
            "url": url,
            "study_name": study_name,
            "sampler": sampler,
            "kwargs": SAMPLER_KWARGS[sampler],
            "seed": index,
            "worker": index,
            "n_trials": n_trials,
            "delay": 0.05,
            "start": start,
            "done": done,
            "report": str(report_dir / f"worker{index}.json"),
        }
        process = _context.Process(
            target=runpy.run_path,
            args=(str(JOB_SCRIPT),),
            kwargs={"init_globals": {"JOB": job}, "run_name": "optuna_nas_storage_worker"},
            name=f"{sampler}-worker-{index}",
        )
        process.start()
        processes.append(process)
    for process in processes:
        process.join(JOIN_TIMEOUT_S)
    hung = [p.name for p in processes if p.is_alive()]
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
    assert not hung, f"workers {hung} did not finish within {JOIN_TIMEOUT_S} s"
    failed = {p.name: p.exitcode for p in processes if p.exitcode != 0}
    assert not failed, f"workers exited abnormally: {failed}"
    return [json.loads((report_dir / f"worker{i}.json").read_text()) for i in workers]


def check_trials(trials: list[optuna.trial.FrozenTrial], reports: list[dict[str, Any]]) -> None:
    """Every trial ran in exactly one process, finished once, and numbers have no gaps."""
    ran = [number for report in reports for number in report["numbers"]]
    repeated = [number for number, count in Counter(ran).items() if count > 1]
    assert not repeated, f"trials {repeated} ran in more than one process"
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(len(trials))), f"trial numbers {numbers} have gaps"
    assert sorted(ran) == numbers, "the processes ran other trials than the study holds"
    states = Counter(t.state.name for t in trials)
    assert states == {"COMPLETE": len(trials)}, f"not all trials completed: {states}"
    for report in reports:
        owned = sorted(t.number for t in trials if t.user_attrs["worker"] == report["worker"])
        assert owned == sorted(report["numbers"])


@pytest.mark.slow
@pytest.mark.parametrize("sampler", sorted(SAMPLER_KWARGS))
def test_workers_share_one_study(
    shared_study: tuple[str, str], sampler: str, tmp_path: Path
) -> None:
    url, name = shared_study
    n_trials = TRIALS_PER_WORKER[sampler]
    reports = run_workers(url, name, sampler, range(WORKERS), n_trials, tmp_path)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    first = study.get_trials(deepcopy=False)
    assert len(first) == WORKERS * n_trials
    check_trials(first, reports)
    worker_of = {t.number: t.user_attrs["worker"] for t in first}
    assert set(worker_of.values()) == set(range(WORKERS))

    if sampler == "evolution":
        children = [t for t in first if PARENT_ATTR in t.system_attrs]
        assert children, "no trial was mutated from a parent"
        by_number = {t.number: t for t in first}
        for child in children:
            parent = by_number[child.system_attrs[PARENT_ATTR]]
            # The plan is made just after the trial starts, so only the order of the ends
            # is certain: a parent always finished before its child (MySQL keeps whole
            # seconds, so both may carry the same time there).
            assert parent.datetime_complete is not None and child.datetime_complete is not None
            assert parent.datetime_complete <= child.datetime_complete
            assert parent.state == optuna.trial.TrialState.COMPLETE
        crossing = [
            t for t in children if worker_of[t.system_attrs[PARENT_ATTR]] != worker_of[t.number]
        ]
        assert crossing, "no child has a parent from another worker: the population is not shared"

    if sampler == "reinforce":
        rebuilt = samplers.REINFORCESampler().policy_logits(study)
        assert len(rebuilt) == 6
        for report in reports:
            assert report["logits"].keys() == rebuilt.keys()
            for decision, row in rebuilt.items():
                np.testing.assert_allclose(report["logits"][decision], row, rtol=1e-6, atol=1e-9)
        # The shared policy is not what any one worker's own trials would have taught it.
        alone = optuna.create_study(direction="maximize")
        alone.add_trials([t for t in first if worker_of[t.number] == 0])
        own = samplers.REINFORCESampler().policy_logits(alone)
        assert any(not np.allclose(own[d], rebuilt[d]) for d in rebuilt)

    if sampler == "random":
        keys = [tuple(sorted(t.params.items())) for t in first]
        assert len(set(keys)) == len(keys), "the deduplicating sampler repeated an architecture"

    # A worker started later continues the same study.
    late = run_workers(url, name, sampler, range(WORKERS, WORKERS + 1), LATE_TRIALS, tmp_path)
    study = optuna.load_study(study_name=name, storage=open_storage(url))  # no cached trials
    trials = study.get_trials(deepcopy=False)
    check_trials(trials, reports + late)
    n_first = len(first)
    assert late[0]["numbers"] == list(range(n_first, n_first + LATE_TRIALS))
    if sampler == "evolution":
        parent = trials[n_first].system_attrs[PARENT_ATTR]
        assert parent < n_first, "the late worker's first child has no parent from the study"
    if sampler == "reinforce":
        rebuilt = samplers.REINFORCESampler().policy_logits(study)
        for decision, row in rebuilt.items():
            np.testing.assert_allclose(late[0]["logits"][decision], row, rtol=1e-6, atol=1e-9)
    if sampler == "random":
        keys = [tuple(sorted(t.params.items())) for t in trials]
        assert len(set(keys)) == len(keys), "the late worker repeated an architecture"
