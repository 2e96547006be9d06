from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from optuna_nas import spaces
from optuna_nas.nn import count_params
from optuna_nas.spaces import SearchSpace

SMALL = {
    "chain": {},
    "multibranch": {},
    "nb201": {"channels": 8, "cells_per_stage": 1},
    "darts": {"channels": 8, "layers": 2},
    "hierarchical": {"channels": 8, "cells": 1},
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_space_builds_narrower_networks(name: str) -> None:
    space = spaces.create(name, **SMALL[name])
    rng = np.random.RandomState(1)
    x = torch.randn(2, 1, 8, 8)
    for _ in range(3):
        arch = space.from_params(space.sample_params(rng))
        full = count_params(arch.build((1, 8, 8), 10))
        narrow = arch.build((1, 8, 8), 10, width_multiplier=0.5)
        assert narrow(x).shape == (2, 10)
        assert count_params(narrow) <= full
        assert count_params(arch.build((1, 8, 8), 10, width_multiplier=1.0)) == full
        if full > count_params(arch.build((1, 8, 8), 10, width_multiplier=0.01)):
            assert count_params(narrow) < full


def test_chain_layers_scale_exactly() -> None:
    arch = spaces.create("chain").from_params(
        {
            "n_layers": 2,
            "layer0/op": "conv",
            "layer0/filters": 16,
            "layer0/kernel_size": 3,
            "layer0/stride": 1,
            "layer0/dilation": 1,
            "layer1/op": "sepconv",
            "layer1/filters": 32,
            "layer1/kernel_size": 3,
            "layer1/stride": 1,
            "layer1/dilation": 1,
        }
    )
    model = arch.build((1, 40), 10, width_multiplier=0.25)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv1d)]
    assert convs[0].out_channels == 4
    assert convs[-1].out_channels == 8
    dense = spaces.create("chain", ops=("dense", "identity")).from_params(
        {"n_layers": 1, "layer0/op": "dense", "layer0/units": 64}
    )
    mlp = dense.build((64,), 10, width_multiplier=1.5)
    widths = [m.out_features for m in mlp.modules() if isinstance(m, nn.Linear)]
    assert widths == [96, 10]
    # At least one channel survives any multiplier.
    tiny = arch.build((1, 40), 10, width_multiplier=0.001)
    assert all(m.out_channels >= 1 for m in tiny.modules() if isinstance(m, nn.Conv1d))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_width_multiplier_is_refused(bad: float) -> None:
    arch = spaces.create("chain").from_params({"n_layers": 1, "layer0/op": "identity"})
    with pytest.raises(ValueError, match="width_multiplier must be a number > 0"):
        arch.build((1, 40), 10, width_multiplier=bad)


class _FixedWidthSpace(SearchSpace):
    """A third-party space whose builder knows nothing of widths."""

    name = "fixed-width-test"

    def _walk(self, choose):
        return choose.categorical("units", [4, 8])

    def build_genotype(self, genotype, input_shape, num_classes):  # type: ignore[override]
        return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), num_classes))


def test_a_space_without_width_support_names_the_fix(monkeypatch) -> None:
    # Registered for this test only, so other tests see the built-in spaces alone.
    monkeypatch.setitem(spaces._registry._REGISTRY, _FixedWidthSpace.name, _FixedWidthSpace)
    arch = _FixedWidthSpace().from_params({"units": 4})
    assert count_params(arch.build((4,), 2)) == 10
    with pytest.raises(ValueError, match=r"cannot scale its width.*width_multiplier keyword"):
        arch.build((4,), 2, width_multiplier=0.5)
