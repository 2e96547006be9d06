"""Our samplers while other workers' trials are still RUNNING in the same storage.

Each "worker" here is its own storage connection and sampler, as in separate processes;
they take turns, so the outcome does not depend on timing. (Workers planning at the same
instant can still race; see the README's section on shared studies.)
"""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas import open_storage, samplers, spaces
from optuna_nas.samplers._evolution import PARENT_ATTR

WORKERS = 4


def connect(url: str, name: str, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(url), sampler=sampler)


def score(space: spaces.SearchSpace, trial: optuna.trial.BaseTrial) -> float:
    arch = space.suggest(trial)
    return float(len(str(arch)) % 7)


def test_deduplication_counts_other_workers_running_trials(
    shared_study: tuple[str, str],
) -> None:
    # 13 architectures: one layer, one width, one kernel size.
    space = spaces.create("chain", max_layers=1, filters=[16], kernel_sizes=[3])
    url, name = shared_study
    workers = [
        connect(url, name, samplers.create("random", seed=0, space=space)) for _ in range(WORKERS)
    ]
    running = []
    for i in range(13):
        trial = workers[i % WORKERS].ask()
        space.suggest(trial)
        running.append(trial)
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = study.get_trials(deepcopy=False)
    assert [t.state for t in trials] == [TrialState.RUNNING] * 13
    keys = {tuple(sorted(t.params.items())) for t in trials}
    assert len(keys) == 13, "an architecture another worker is running was proposed again"
    for i, trial in enumerate(running):
        workers[i % WORKERS].tell(trial, float(i))
    # Every architecture now has a finished trial; the space is used up for all workers.
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 13


@pytest.mark.parametrize("sampler", ["evolution", "reinforce", "gp"])
def test_samplers_plan_beside_other_workers_running_trials(
    shared_study: tuple[str, str], sampler: str
) -> None:
    space = spaces.create("nb201")
    kwargs = {
        "evolution": {"population_size": 4, "sample_size": 2},
        "reinforce": {},
        "gp": {"n_startup_trials": 8},  # each later trial fits a GP: the costly part
    }[sampler]
    url, name = shared_study
    workers = [
        connect(url, name, samplers.create(sampler, seed=i, space=space, **kwargs))
        for i in range(WORKERS)
    ]
    # Rounds of one new trial per worker, finishing only the older half each round, so
    # every plan is made while trials of other workers are RUNNING.
    pending: list[tuple[int, optuna.Trial, float]] = []
    for _ in range(4):
        for w, study in enumerate(workers):
            trial = study.ask()
            pending.append((w, trial, score(space, trial)))
        for w, trial, value in pending[: len(pending) // 2]:
            workers[w].tell(trial, value)
        del pending[: len(pending) // 2]
    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = study.get_trials(deepcopy=False)
    assert [t.number for t in trials] == list(range(4 * WORKERS))
    states = [t.state for t in trials]
    assert states.count(TrialState.RUNNING) == len(pending)
    for trial in trials:
        assert len(trial.params) == 6  # a whole NB201 cell, whatever the sampler planned
    if sampler == "evolution":
        parents = [t.system_attrs[PARENT_ATTR] for t in trials if PARENT_ATTR in t.system_attrs]
        assert parents, "no child was mutated while others ran"
        finished = {t.number for t in trials if t.state == TrialState.COMPLETE}
        assert set(parents) <= finished, "a running trial was chosen as a parent"
    for w, trial, value in pending:
        workers[w].tell(trial, value)
