from __future__ import annotations

import numpy as np
import pytest

from optuna_nas import spaces

SMALL_CHAIN = {"max_layers": 2, "ops": ["dense", "identity"], "units": [8, 16]}


def key(params) -> tuple:
    return tuple(sorted(params.items()))


def test_sample_params_gives_valid_architectures_of_every_space() -> None:
    rng = np.random.RandomState(0)
    for name in spaces.available():
        space = spaces.create(name)
        for _ in range(5):
            params = space.sample_params(rng)
            assert space.from_params(params).param_dict == params  # exactly the active ones


def test_sample_params_keeps_legal_fixed_values() -> None:
    space = spaces.create("chain", **SMALL_CHAIN)
    rng = np.random.RandomState(0)
    for _ in range(10):
        params = space.sample_params(rng, fixed={"n_layers": 2, "layer1/op": "dense"})
        assert params["n_layers"] == 2 and params["layer1/op"] == "dense"
    illegal = [space.sample_params(rng, fixed={"n_layers": 7})["n_layers"] for _ in range(20)]
    assert set(illegal) == {1, 2}


def test_sample_params_is_uniform_per_decision() -> None:
    space = spaces.create("chain", min_layers=1, max_layers=4)
    rng = np.random.RandomState(0)
    counts = np.bincount([space.sample_params(rng)["n_layers"] for _ in range(2000)])
    assert counts[0] == 0 and counts[1:].min() > 400


@pytest.mark.parametrize(
    ("name", "config", "size"), [("chain", SMALL_CHAIN, 12), ("nb201", {}, 5**6)]
)
def test_iter_params_enumerates_every_architecture_once(name, config, size) -> None:
    space = spaces.create(name, **config)
    ordered = [key(p) for p in space.iter_params()]
    assert len(ordered) == len(set(ordered)) == size
    start = space.sample_params(np.random.RandomState(1))
    rotated = [key(p) for p in space.iter_params(start)]
    assert rotated[0] == key(start)
    assert rotated == ordered[ordered.index(key(start)) :] + ordered[: ordered.index(key(start))]
