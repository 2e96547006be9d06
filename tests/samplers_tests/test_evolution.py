from __future__ import annotations

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase, SingleOnlySamplerTestCase
from optuna.trial import TrialState

from optuna_nas import samplers, spaces
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.samplers._evolution import (
    PARENT_ATTR,
    PARENT_USER_ATTR,
    recent_population,
    tournament_select,
)

NB201 = spaces.create("nb201")
X = CategoricalDistribution(["a", "b", "c", "d"])
Y = IntDistribution(0, 9)


class TestConformance(BasicSamplerTestCase, SingleOnlySamplerTestCase):
    @pytest.fixture
    def sampler(self):
        # A small population, so the suites' 3- and 10-trial studies reach the evolution.
        return lambda: RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0)


def conv_count(trial: optuna.Trial) -> float:
    ops = NB201.decode(NB201.suggest(trial).param_dict)
    return float(ops.count("nor_conv_3x3"))


def add_trial(study, value=None, state=TrialState.COMPLETE, x="a", y=0, **kwargs):
    study.add_trial(
        optuna.create_trial(
            state=state,
            value=value,
            params={"x": x, "y": y},
            distributions={"x": X, "y": Y},
            **kwargs,
        )
    )


def parent_of(study, trial) -> int | None:
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.system_attrs.get(PARENT_ATTR) == frozen.user_attrs.get(PARENT_USER_ATTR)
    return frozen.system_attrs.get(PARENT_ATTR)


def test_recent_population_keeps_the_newest_scored_members_oldest_first() -> None:
    newest_first = [("e", 5.0), ("d", None), ("c", 3.0), ("b", 2.0), ("a", 1.0)]
    assert recent_population(newest_first, 3) == [("b", 2.0), ("c", 3.0), ("e", 5.0)]
    assert recent_population(newest_first[:2], 3) == [("e", 5.0)]


def test_recent_population_consumes_only_what_it_needs() -> None:
    scored = iter([("b", 2.0), ("a", 1.0), ("never", None)])
    recent_population(scored, 2)
    assert next(scored) == ("never", None)


def test_tournament_picks_the_best_of_the_drawn_members() -> None:
    rng = np.random.RandomState(0)
    scores = [0.1, 0.9, 0.5, 0.3]
    assert {tournament_select(scores, 4, rng) for _ in range(20)} == {1}
    winners = [tournament_select(scores, 1, rng) for _ in range(200)]
    assert set(winners) == {0, 1, 2, 3}  # a tournament of one is uniform
    assert tournament_select([1.0, 1.0], 2, np.random.RandomState(0)) in (0, 1)
    with pytest.raises(ValueError, match="empty population"):
        tournament_select([], 2, rng)


@pytest.mark.parametrize(
    "kwargs",
    [{"population_size": 0}, {"sample_size": 0}, {"n_mutations": 0}, {"population_size": 2.5}],
)
def test_invalid_arguments_are_rejected(kwargs) -> None:
    with pytest.raises(ValueError, match="must be a positive integer"):
        RegularizedEvolutionSampler(**kwargs)


def test_sample_size_larger_than_population_is_rejected() -> None:
    with pytest.raises(ValueError, match="sample_size <= population_size"):
        RegularizedEvolutionSampler(population_size=3, sample_size=4)


def test_registry_creates_the_sampler() -> None:
    sampler = samplers.create("evolution", seed=0, population_size=5, sample_size=2)
    assert isinstance(sampler, RegularizedEvolutionSampler)
    # The tournament defaults to half the population, so P alone can be changed.
    assert isinstance(samplers.create("evolution", population_size=3), RegularizedEvolutionSampler)
    assert isinstance(samplers.create("tpe", seed=0), optuna.samplers.TPESampler)


def test_first_population_is_random_then_children_of_one_mutation() -> None:
    sampler = RegularizedEvolutionSampler(population_size=5, sample_size=2, seed=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conv_count, n_trials=25)
    trials = study.trials
    assert all(parent_of(study, t) is None for t in trials[:5])
    for child in trials[5:]:
        parent = parent_of(study, child)
        assert parent is not None and child.number - 5 <= parent < child.number
        changed = [k for k in child.params if child.params[k] != trials[parent].params[k]]
        assert len(changed) == 1


def test_same_seed_gives_the_same_sequence() -> None:
    def run(seed: int) -> list[dict]:
        sampler = RegularizedEvolutionSampler(population_size=4, sample_size=2, seed=seed)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(conv_count, n_trials=15)
        return [t.params for t in study.trials]

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_evolution_beats_random_search_clearly() -> None:
    def late_mean(sampler: optuna.samplers.BaseSampler) -> float:
        study = optuna.create_study(direction="maximize", sampler=sampler)
        study.optimize(conv_count, n_trials=80)
        return float(np.mean([t.value for t in study.trials[-30:]]))

    margins = []
    for seed in range(3):
        evolved = late_mean(RegularizedEvolutionSampler(seed=seed))
        random = late_mean(optuna.samplers.RandomSampler(seed=seed))
        margins.append(evolved - random)
    # Random search averages 1.2 conv3x3 edges of 6; evolution reaches about 3.5.
    assert min(margins) > 1.0 and np.mean(margins) > 1.5, margins


def test_two_samplers_on_one_storage_share_the_population(sqlite_url) -> None:
    population_size = 4
    storage = optuna.storages.RDBStorage(sqlite_url)
    studies = [
        optuna.create_study(
            study_name="shared",
            storage=storage,
            direction="maximize",
            sampler=RegularizedEvolutionSampler(population_size, 2, seed=seed),
            load_if_exists=True,
        )
        for seed in (0, 1)
    ]
    studies[0].optimize(conv_count, n_trials=population_size)
    for step in range(8):
        study = studies[step % 2]
        trial = study.ask()
        study.tell(trial, conv_count(trial))
        parent = parent_of(study, trial)
        # Every child's parent is among the latest finished trials, whoever made them.
        assert parent is not None and trial.number - population_size <= parent < trial.number


def test_restarted_sampler_carries_on(sqlite_url) -> None:
    kwargs = {"study_name": "s", "storage": sqlite_url, "direction": "maximize"}
    study = optuna.create_study(sampler=RegularizedEvolutionSampler(3, 2, seed=0), **kwargs)
    study.optimize(conv_count, n_trials=3)
    resumed = optuna.load_study(
        study_name="s", storage=sqlite_url, sampler=RegularizedEvolutionSampler(3, 2, seed=5)
    )
    trial = resumed.ask()
    assert parent_of(resumed, trial) in (0, 1, 2)


def test_pruned_trials_compete_with_their_last_intermediate_value() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=RegularizedEvolutionSampler(3, 3, seed=0)
    )
    add_trial(study, 0.5, x="a")
    add_trial(study, state=TrialState.PRUNED, x="b", intermediate_values={0: 0.1, 4: 0.9})
    add_trial(study, state=TrialState.PRUNED, x="c", intermediate_values={0: 2.0, 1: 0.2})
    for _ in range(5):
        trial = study.ask()
        assert parent_of(study, trial) == 1
        study.tell(trial, state=TrialState.FAIL)


def test_failed_and_unscored_trials_are_left_out() -> None:
    study = optuna.create_study(sampler=RegularizedEvolutionSampler(2, 2, seed=0))
    add_trial(study, 3.0, x="a")
    add_trial(study, 1.0, x="b")  # the best when minimizing
    add_trial(study, state=TrialState.FAIL, x="c")
    add_trial(study, state=TrialState.PRUNED, x="d")  # no intermediate value: no score
    trial = study.ask()
    assert parent_of(study, trial) == 1
    study.tell(trial, state=TrialState.FAIL)

    fresh = optuna.create_study(sampler=RegularizedEvolutionSampler(2, 2, seed=0))
    add_trial(fresh, 3.0)
    for _ in range(3):
        add_trial(fresh, state=TrialState.FAIL)
    assert parent_of(fresh, fresh.ask()) is None  # one scored trial: still random


def test_population_ages_by_completion_not_by_start() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=RegularizedEvolutionSampler(2, 2, seed=0)
    )
    early = study.ask({"x": X, "y": Y})
    for value in (1.0, 2.0, 3.0):
        add_trial(study, value)
    study.tell(early, 10.0)  # started first, finished last: the newest member
    assert parent_of(study, study.ask()) == early.number


def test_child_avoids_the_plan_of_a_running_trial() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=RegularizedEvolutionSampler(2, 2, seed=0)
    )
    binary = CategoricalDistribution([0, 1])
    for value in (1.0, 0.0):
        study.add_trial(
            optuna.create_trial(
                value=value, params={"p": 0, "q": 0}, distributions={"p": binary, "q": binary}
            )
        )
    # Both members have the same genome, so every child is (1, 0) or (0, 1).
    first, second = study.ask(), study.ask()
    plan_attr = study.sampler.plan_attr
    plans = [
        study._storage.get_trial(t._trial_id).system_attrs[plan_attr] for t in (first, second)
    ]
    assert plans[0] != plans[1]


def test_enqueued_trials_are_evaluated_as_given() -> None:
    study = optuna.create_study(
        direction="maximize", sampler=RegularizedEvolutionSampler(3, 2, seed=0)
    )
    study.optimize(conv_count, n_trials=3)
    edges = dict.fromkeys(NB201.from_params(study.trials[0].params).param_dict, "none")
    study.enqueue_trial(edges)
    study.optimize(conv_count, n_trials=1)
    assert study.trials[-1].params == edges
    assert parent_of(study, study.trials[-1]) is None


def test_conditional_objective_with_every_kind_of_parameter() -> None:
    def objective(trial: optuna.Trial) -> float:
        kind = trial.suggest_categorical("kind", ["int", "float", "none"])
        if kind == "int":
            return trial.suggest_int("n", 2, 20, step=2) + trial.suggest_int("m", 1, 64, log=True)
        if kind == "float":
            lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
            return trial.suggest_float("w", 0.0, 1.0, step=0.25) - np.log10(lr)
        return 0.0

    study = optuna.create_study(
        direction="maximize", sampler=RegularizedEvolutionSampler(5, 2, seed=0)
    )
    study.optimize(objective, n_trials=40)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    children = [t for t in study.trials if parent_of(study, t) is not None]
    assert len(children) == 35
    for trial in study.trials:
        for name, value in trial.params.items():
            dist = trial.distributions[name]
            assert dist._contains(dist.to_internal_repr(value))


def _repeats(skip_evaluated: bool) -> int:
    space = spaces.create("nb201")
    sampler = RegularizedEvolutionSampler(
        population_size=6, sample_size=6, skip_evaluated=skip_evaluated, seed=2
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        return float(sum(op == "nor_conv_3x3" for op in space.suggest(trial).genotype))

    study.optimize(objective, n_trials=80)
    seen: set = set()
    repeats = 0
    for t in study.trials:
        key = tuple(sorted(t.params.items()))
        repeats += key in seen
        seen.add(key)
    return repeats


def test_skip_evaluated_avoids_spending_queries_twice() -> None:
    with_repeats = _repeats(skip_evaluated=False)
    assert with_repeats > 5
    assert _repeats(skip_evaluated=True) < with_repeats / 3


def _equivalent_repeats(canonicalize) -> int:
    space = spaces.create("nb201")
    sampler = RegularizedEvolutionSampler(
        population_size=6, space=space, canonicalize=canonicalize, seed=3
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        # Rewards cutting edges, so the population holds cells with unreachable edges,
        # whose mutation gives an equivalent cell.
        ops = space.suggest(trial).genotype
        return float(sum(op == "none" for op in ops) + sum(op == "nor_conv_3x3" for op in ops))

    study.optimize(objective, n_trials=60)
    seen: set = set()
    repeats = 0
    for t in study.trials:
        key = samplers.nb201_canonical(t.params)
        repeats += key in seen
        seen.add(key)
    return repeats


def test_canonicalizer_keeps_equivalent_children_out() -> None:
    without = _equivalent_repeats(None)
    assert without > 5
    assert _equivalent_repeats(samplers.nb201_canonical) < without / 3


def test_canonicalizer_needs_the_space_and_a_function() -> None:
    with pytest.raises(ValueError, match="pass space"):
        RegularizedEvolutionSampler(canonicalize=samplers.nb201_canonical)
    with pytest.raises(ValueError, match="canonicalize must be a function"):
        RegularizedEvolutionSampler(space=NB201, canonicalize="iso")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="SearchSpace"):
        RegularizedEvolutionSampler(space="nb201")  # type: ignore[arg-type]


def test_default_tournament_takes_the_whole_population() -> None:
    sampler = samplers.create("evolution", seed=0, space=NB201, population_size=7)
    assert isinstance(sampler, RegularizedEvolutionSampler)
    assert sampler._sample_size == 7
    assert sampler._space is NB201


@pytest.mark.parametrize("seed", range(5))
def test_failed_trials_count_as_held(seed: int, held_study) -> None:
    # The only parent is "a"; its mutations are "b", which failed, and "c".
    study = held_study(RegularizedEvolutionSampler(population_size=1, seed=seed))
    trial = study.ask()
    assert trial.suggest_categorical("x", ["a", "b", "c"]) == "c"
