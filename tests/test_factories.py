"""create and register work the same way for spaces, samplers and pruners."""

from __future__ import annotations

import re

import optuna
import pytest

from optuna_nas import pruners, samplers, spaces


@pytest.mark.parametrize(
    ("create", "name", "kwargs"),
    [
        (spaces.create, "chain", {"max_layerz": 3}),
        (samplers.create, "evolution", {"population_sise": 3}),
        (samplers.create, "optuna-random", {"nope": 1}),
        (pruners.create, "lce", {"max_step": 9, "treshold": 0.1}),
        (pruners.create, "median", {"n_warmup": 2}),
    ],
)
def test_an_unknown_argument_is_named_with_the_ones_that_exist(create, name, kwargs) -> None:
    with pytest.raises(ValueError, match="invalid argument") as err:
        create(name, **kwargs)
    assert "its arguments are:" in str(err.value)
    bad = next(k for k in kwargs if k != "max_step")
    assert bad in str(err.value)


@pytest.mark.parametrize(
    ("create", "kind"),
    [(spaces.create, "space"), (samplers.create, "sampler"), (pruners.create, "pruner")],
)
def test_an_unknown_name_lists_the_known_ones(create, kind) -> None:
    with pytest.raises(ValueError, match=f"unknown {kind} 'nope'; choose one of: "):
        create("nope")


def test_a_type_error_inside_a_constructor_is_not_called_a_bad_argument() -> None:
    def broken(seed: int | None = None) -> optuna.samplers.BaseSampler:
        raise TypeError("a bug inside the sampler")

    samplers.register("broken-for-test", broken)
    try:
        with pytest.raises(TypeError, match="a bug inside the sampler"):
            samplers.create("broken-for-test", seed=0)
    finally:
        samplers._FACTORIES.pop("broken-for-test")


def test_registered_factories_are_created_by_name() -> None:
    samplers.register("random-for-test", optuna.samplers.RandomSampler)
    pruners.register("nop-for-test", lambda max_step=None: optuna.pruners.NopPruner())
    try:
        assert isinstance(
            samplers.create("random-for-test", seed=1), optuna.samplers.RandomSampler
        )
        assert "random-for-test" in samplers.available()
        assert isinstance(pruners.create("nop-for-test", max_step=3), optuna.pruners.NopPruner)
    finally:
        samplers._FACTORIES.pop("random-for-test")
        pruners._FACTORIES.pop("nop-for-test")


def test_one_sampler_registry_holds_ours_and_optunas_baselines() -> None:
    names = samplers.available()
    assert {"evolution", "gp", "random", "reinforce"} <= set(names)
    assert {"tpe", "optuna-random", "optuna-gp", "optuna-cmaes"} <= set(names)
    assert isinstance(samplers.create("optuna-gp", seed=0), optuna.samplers.GPSampler)
    assert isinstance(samplers.create("optuna-cmaes", seed=0), optuna.samplers.CmaEsSampler)


@pytest.mark.parametrize(
    ("create", "name", "kwargs", "needle"),
    [
        ("spaces", "chain", {"max_layers": "abc"}, "max_layers must be int, got 'abc' (str)"),
        ("spaces", "chain", {"filters": [4, "x"]}, "filters must be Sequence[int]"),
        ("samplers", "evolution", {"population_size": 2.5}, "population_size must be int"),
    ],
)
def test_a_value_of_the_wrong_type_names_the_expected_type(create, name, kwargs, needle):
    import importlib

    factory = importlib.import_module(f"optuna_nas.{create}").create
    with pytest.raises(ValueError, match=re.escape(needle)):
        factory(name, **kwargs)
