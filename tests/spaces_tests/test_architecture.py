from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import optuna
import pytest

from optuna_nas import spaces
from optuna_nas.spaces import ARCH_ATTR, SPACE_ATTR, Architecture

SMALL = {
    "chain": {"max_layers": 3, "filters": [4, 8]},
    "multibranch": {"max_layers": 3, "filters": [4, 8]},
    "nb201": {"channels": 4, "cells_per_stage": 1},
    "darts": {"channels": 4, "layers": 3},
    "hierarchical": {"channels": 4},
}


def test_every_registered_space_is_covered() -> None:
    assert set(spaces.available()) == set(SMALL)


def test_unknown_space_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown space 'nb210'; choose one of: chain, darts"):
        spaces.create("nb210")


def test_unknown_space_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid argument for space 'chain'"):
        spaces.create("chain", depth=3)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_architecture_is_hashable_and_round_trips(name) -> None:
    space = spaces.create(name, **SMALL[name])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    archs = []
    for _ in range(20):
        trial = study.ask()
        archs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    for arch in archs:
        assert Architecture.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch
        assert Architecture.from_json(arch.to_json()) == arch
        assert hash(Architecture.from_json(arch.to_json())) == hash(arch)
    assert len(set(archs)) == len({a.to_json() for a in archs})
    with pytest.raises(dataclasses.FrozenInstanceError):
        archs[0].space = "other"  # type: ignore[misc]


@pytest.mark.parametrize("name", sorted(SMALL))
def test_architectures_round_trip_through_sqlite(name, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'archs.db'}"
    space = spaces.create(name, **SMALL[name])
    study = optuna.create_study(
        storage=url, study_name="s", sampler=optuna.samplers.RandomSampler(seed=5)
    )

    def objective(trial: optuna.Trial) -> float:
        arch = space.suggest(trial)
        trial.suggest_float("lr", 1e-4, 1e-1, log=True)  # a non-architecture parameter
        return float(len(arch.params))

    study.optimize(objective, n_trials=10)
    expected = {t.number: t.user_attrs[ARCH_ATTR] for t in study.trials}
    # A separate process reads the storage, as a dashboard or a later worker would.
    code = (
        "import json, optuna, sys\n"
        "from optuna_nas.spaces import Architecture\n"
        f"study = optuna.load_study(study_name='s', storage={url!r})\n"
        "print(json.dumps({t.number: Architecture.from_trial(t).to_json() for t in study.trials}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rebuilt = {int(k): v for k, v in json.loads(out.stdout).items()}
    assert rebuilt == expected
    for t in study.trials:
        assert t.user_attrs[SPACE_ATTR] == space.spec
        assert "lr" not in Architecture.from_trial(t).param_dict


def test_from_params_rejects_illegal_values() -> None:
    space = spaces.create("chain")
    with pytest.raises(ValueError, match=r"'layer0/op' is active .* but missing"):
        space.from_params({"n_layers": 1})
    with pytest.raises(ValueError, match="not a legal choice"):
        space.from_params({"n_layers": 1, "layer0/op": "lstm"})
    with pytest.raises(ValueError, match="must be an integer in"):
        space.from_params({"n_layers": 99, "layer0/op": "identity"})


def test_from_trial_without_space_attribute_explains_the_fix() -> None:
    trial = optuna.trial.create_trial(
        params={"n_layers": 1},
        distributions={"n_layers": optuna.distributions.IntDistribution(1, 2)},
        value=1.0,
    )
    with pytest.raises(ValueError, match="pass space="):
        Architecture.from_trial(trial)
    arch = Architecture.from_trial(
        optuna.trial.create_trial(
            params={"n_layers": 1, "layer0/op": "identity"},
            distributions={
                "n_layers": optuna.distributions.IntDistribution(1, 6),
                "layer0/op": optuna.distributions.CategoricalDistribution(["identity"]),
            },
            value=1.0,
        ),
        space=spaces.create("chain"),
    )
    assert arch.param_dict == {"n_layers": 1, "layer0/op": "identity"}


def test_from_dict_missing_keys() -> None:
    with pytest.raises(ValueError, match="lacks"):
        Architecture.from_dict({"config": {}})


def test_parse_space_args_reads_json_values() -> None:
    assert spaces.parse_space_args(["max_layers=4", "filters=[16,32]", "ops=conv"]) == {
        "max_layers": 4,
        "filters": [16, 32],
        "ops": "conv",
    }
    with pytest.raises(ValueError, match="must look like KEY=VALUE"):
        spaces.parse_space_args(["=3"])
