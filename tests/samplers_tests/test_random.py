from __future__ import annotations

import csv
import logging
from collections import defaultdict

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase

from optuna_nas import samplers, spaces
from optuna_nas.samplers import DeduplicatingRandomSampler, nb201_canonical
from optuna_nas.samplers._random import AssignmentIndex, finite_values, iter_assignments

LOGGER = "optuna_nas.samplers._random"


class TestConformance(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: DeduplicatingRandomSampler(seed=0)


def tiny(trial: optuna.Trial) -> float:
    """A conditional objective with exactly 10 + 5 + 1 + 14 = 30 assignments."""
    kind = trial.suggest_categorical("kind", ["a", "b", "c"])
    if kind == "a":
        return trial.suggest_int("x", 0, 9)
    if kind == "b":
        if trial.suggest_categorical("y", ["p", "q"]) == "p":
            return trial.suggest_int("z", 0, 8, step=2)
        return -1.0
    return trial.suggest_float("w", 0.0, 6.5, step=0.5)


def small_chain() -> spaces.SearchSpace:
    """1 or 2 layers, each dense (8 or 16 units) or identity: 3 + 9 = 12 architectures."""
    return spaces.create("chain", max_layers=2, ops=["dense", "identity"], units=[8, 16])


def layer_ops(params) -> tuple[str, ...]:
    return tuple(params[f"layer{i}/op"] for i in range(params["n_layers"]))


def space_objective(space):
    return lambda trial: float(len(space.suggest(trial).params))


def keys(study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.trials]


def test_nb201_canonical_merges_sum_order_and_dead_edges() -> None:
    space = spaces.NB201Space()

    def canonical(arch: str) -> str:
        return nb201_canonical(space.from_nb201_string(arch).param_dict)

    # Node 3 adds up conv(x) and avg_pool(x), whichever of them passes through node 1.
    a = "|avg_pool_3x3~0|+|none~0|none~1|+|nor_conv_3x3~0|skip_connect~1|none~2|"
    b = "|nor_conv_3x3~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|"
    c = "|nor_conv_1x1~0|+|none~0|none~1|+|avg_pool_3x3~0|skip_connect~1|none~2|"
    assert canonical(a) == canonical(b) != canonical(c)
    # Nodes 1 and 2 feed nothing, so their edges do not matter.
    d = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|"
    e = "|none~0|+|skip_connect~0|none~1|+|skip_connect~0|none~1|none~2|"
    assert canonical(d) == canonical(e) != canonical(a)
    with pytest.raises(ValueError, match="lacks the edge 'node3/in0'"):
        nb201_canonical({f"node{i}/in{j}": "none" for i, j in [(1, 0), (2, 0), (2, 1)]})


def test_nb201_canonical_matches_the_benchmark_classes(nb201_dir) -> None:
    space = spaces.NB201Space()
    by_class: dict[str, set[str]] = defaultdict(set)
    by_key: dict[str, set[str]] = defaultdict(set)
    with open(nb201_dir / "nb201_cifar10.csv", newline="") as f:
        for row in csv.DictReader(f):
            key = nb201_canonical(space.from_nb201_string(row["arch"]).param_dict)
            by_class[row["iso_class"]].add(key)
            by_key[key].add(row["iso_class"])
    assert len(by_class) == len(by_key) == 6466
    assert all(len(v) == 1 for v in by_class.values())
    assert all(len(v) == 1 for v in by_key.values())


def test_assignment_index_matches_on_each_earlier_assignments_names() -> None:
    index = AssignmentIndex()
    index.add({"a": 1, "b": 2})
    index.add({"a": 2})
    assert index.repeats({"a": 1, "b": 2, "c": 9})
    assert index.repeats({"a": 2, "b": 5})
    assert not index.repeats({"a": 1, "b": 3})
    assert not index.repeats({"b": 2})
    assert sorted(index.name_sets) == [("a",), ("a", "b")]


def test_iter_assignments_enumerates_each_combination_once_from_any_start() -> None:
    values = {"p": [0, 1], "q": ["x", "y", "z"]}
    ordered = list(iter_assignments(values))
    assert len({tuple(sorted(a.items())) for a in ordered}) == 6
    rotated = list(iter_assignments(values, start=4))
    assert rotated == ordered[4:] + ordered[:4]


def test_finite_values() -> None:
    assert finite_values(CategoricalDistribution(["a", 1])) == ["a", 1]
    assert finite_values(IntDistribution(0, 8, step=4)) == [0, 4, 8]
    assert finite_values(IntDistribution(1, 4, log=True)) == [1, 2, 3, 4]
    assert finite_values(FloatDistribution(0.0, 1.0, step=0.5)) == [0.0, 0.5, 1.0]
    assert finite_values(FloatDistribution(0.0, 1.0)) is None


def test_invalid_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"pass space=\.\.\. as well"):
        DeduplicatingRandomSampler(canonicalize=nb201_canonical)
    with pytest.raises(ValueError, match="max_tries must be a positive integer"):
        DeduplicatingRandomSampler(max_tries=0)


def test_registry_creates_the_sampler() -> None:
    assert isinstance(samplers.create("random", seed=0), DeduplicatingRandomSampler)
    sampler = samplers.create("random", seed=0, space=small_chain(), max_tries=5)
    assert isinstance(sampler, DeduplicatingRandomSampler)


def test_without_space_a_finite_conditional_objective_is_exhausted_then_random(caplog) -> None:
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(seed=0))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study.optimize(tiny, n_trials=30)
        assert len(set(keys(study))) == 30
        assert not caplog.records
        study.optimize(tiny, n_trials=5)
    assert len(study.trials) == 35
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert [r.message for r in caplog.records if "has been tried" in r.message] != []
    assert len(caplog.records) == 1


def test_with_space_every_architecture_once_then_random(caplog) -> None:
    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=1))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study.optimize(space_objective(space), n_trials=12)
        assert len(set(keys(study))) == 12
        assert not caplog.records
        study.optimize(space_objective(space), n_trials=4)
    assert len(study.trials) == 16
    assert len(caplog.records) == 1


def test_canonicalizer_allows_one_trial_per_class(caplog) -> None:
    space = small_chain()
    sampler = DeduplicatingRandomSampler(space, canonicalize=layer_ops, seed=0)
    study = optuna.create_study(sampler=sampler)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        study.optimize(space_objective(space), n_trials=6)
        assert not caplog.records
    assert len({layer_ops(t.params) for t in study.trials}) == 6


def test_infeasible_architectures_are_never_proposed() -> None:
    space = small_chain()
    sampler = DeduplicatingRandomSampler(
        space, feasible=lambda params: params["n_layers"] == 2, seed=0
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(space_objective(space), n_trials=9)
    assert len(set(keys(study))) == 9
    study.optimize(space_objective(space), n_trials=3)  # exhausted: still feasible
    assert all(t.params["n_layers"] == 2 for t in study.trials)


def test_same_seed_gives_the_same_sequence() -> None:
    def run(seed: int, space=None) -> list[tuple]:
        study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=seed))
        study.optimize(tiny if space is None else space_objective(space), n_trials=10)
        return keys(study)

    assert run(3) == run(3) != run(4)
    assert run(3, small_chain()) == run(3, small_chain()) != run(4, small_chain())


def test_running_trials_count() -> None:
    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=0))
    trials = [study.ask() for _ in range(12)]  # all planned before any is evaluated
    for trial in trials:
        study.tell(trial, space_objective(space)(trial))
    assert len(set(keys(study))) == 12


def test_waiting_trials_count() -> None:
    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=0))
    enqueued = {"n_layers": 1, "layer0/op": "identity"}
    study.enqueue_trial(enqueued)
    for _ in range(11):  # as another worker would: new trials while one is waiting
        trial = optuna.Trial(study, study._storage.create_new_trial(study._study_id))
        study.tell(trial, space_objective(space)(trial))
    study.optimize(space_objective(space), n_trials=1)  # runs the enqueued trial
    assert study.trials[0].params == enqueued
    assert len(set(keys(study))) == 12


def test_partially_enqueued_trial_is_completed_with_an_unseen_architecture() -> None:
    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=0))
    study.optimize(space_objective(space), n_trials=11)
    everything = {tuple(sorted(p.items())) for p in space.iter_params()}
    (missing,) = everything - set(keys(study))
    study.enqueue_trial({"n_layers": dict(missing)["n_layers"]})
    study.optimize(space_objective(space), n_trials=1)
    assert len(set(keys(study))) == 12


def test_threads_of_one_process_do_not_repeat() -> None:
    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=0))
    study.optimize(space_objective(space), n_trials=12, n_jobs=2)
    assert len(set(keys(study))) == 12


def test_restarted_sampler_rebuilds_the_seen_set_from_storage(sqlite_url) -> None:
    space = small_chain()
    study = optuna.create_study(
        study_name="s", storage=sqlite_url, sampler=DeduplicatingRandomSampler(space, seed=0)
    )
    study.optimize(space_objective(space), n_trials=6)
    resumed = optuna.load_study(
        study_name="s", storage=sqlite_url, sampler=DeduplicatingRandomSampler(space, seed=0)
    )
    resumed.optimize(space_objective(space), n_trials=6)
    assert len(set(keys(resumed))) == 12


def test_failed_trials_count_as_held() -> None:
    def fails_on_dense(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        if "dense" in layer_ops(arch.param_dict):
            raise RuntimeError("out of memory")
        return 0.0

    space = small_chain()
    study = optuna.create_study(sampler=DeduplicatingRandomSampler(space, seed=0))
    study.optimize(fails_on_dense, n_trials=12, catch=(RuntimeError,))
    assert len(set(keys(study))) == 12


def test_architecture_key_ignores_inactive_parameters_given_the_space() -> None:
    from optuna_nas.samplers._architecture import architecture_key

    space = spaces.create("chain", max_layers=3)
    active = {"n_layers": 1, "layer0/op": "identity"}
    stale = {**active, "layer1/op": "conv"}  # left over from a deeper parent
    assert architecture_key(stale, space) == architecture_key(active, space)
    assert architecture_key(stale) != architecture_key(active)
    coarse = architecture_key(stale, space, canonicalize=lambda p: p["n_layers"])
    assert coarse == 1
