from __future__ import annotations

import optuna
import pytest
import torch

from optuna_nas import spaces
from optuna_nas.spaces import ChainSpace

OP_PARAMS = {
    "conv": {"op", "filters", "kernel_size", "stride", "dilation"},
    "sepconv": {"op", "filters", "kernel_size", "stride", "dilation"},
    "pool": {"op", "pool_type", "kernel_size", "stride"},
    "dense": {"op", "units"},
    "identity": {"op"},
}


def _check_active(params: dict) -> None:
    n = params["n_layers"]
    for name in params:
        if name == "n_layers":
            continue
        layer = name.split("/")[0]
        assert int(layer.removeprefix("layer")) < n, f"{name} is set for a missing layer"
    for i in range(n):
        op = params[f"layer{i}/op"]
        fields = {k.split("/")[1] for k in params if k.startswith(f"layer{i}/")}
        assert fields == OP_PARAMS[op], (i, op, fields)


@pytest.mark.parametrize(
    ("space_kwargs", "input_shape"),
    [
        ({"filters": [4, 8]}, (1, 40)),
        ({"filters": [4, 8]}, (1, 8, 8)),
        ({"filters": [4, 8]}, (64,)),
        ({"ops": ["dense", "identity"], "units": [8, 16]}, (64,)),
        ({"ops": ["dense", "identity"], "units": [8, 16]}, (1, 8, 8)),
    ],
)
def test_random_trials_build_and_only_active_params(space_kwargs, input_shape) -> None:
    space = ChainSpace(max_layers=5, **space_kwargs)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen_ops = set()
    for _ in range(200):
        trial = study.ask()
        arch = space.suggest(trial)
        _check_active(trial.params)
        assert arch.param_dict == trial.params
        seen_ops.update(spec.op for spec in arch.genotype)
        model = arch.build(input_shape, num_classes=7)
        assert model(torch.randn(3, *input_shape)).shape == (3, 7)
        study.tell(trial, 0.0)
    assert seen_ops == set(space.choices.ops)


def test_kernel_size_keeps_one_distribution_across_ops() -> None:
    space = ChainSpace(max_layers=3)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists: dict = {}
    for _ in range(50):
        trial = study.ask()
        space.suggest(trial)
        study.tell(trial, 0.0)
    for t in study.trials:
        for name, dist in t.distributions.items():
            assert dists.setdefault(name, dist) == dist


def test_dense_cannot_mix_with_convolutions() -> None:
    with pytest.raises(ValueError, match="cannot be mixed"):
        ChainSpace(ops=["conv", "dense"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ops": ["conv", "lstm"]}, "unknown layer ops"),
        ({"min_layers": 3, "max_layers": 2}, "min_layers <= max_layers"),
        ({"kernel_sizes": [2, 3]}, "odd"),
        ({"filters": []}, "non-empty"),
        ({"pool_types": ["median"]}, "pool_types"),
    ],
)
def test_invalid_arguments_name_the_problem(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        spaces.create("chain", **kwargs)


def test_layer_hyperparameters_reach_the_module() -> None:
    space = ChainSpace()
    params = {
        "n_layers": 2,
        "layer0/op": "conv",
        "layer0/filters": 32,
        "layer0/kernel_size": 5,
        "layer0/stride": 2,
        "layer0/dilation": 1,
        "layer1/op": "pool",
        "layer1/pool_type": "max",
        "layer1/kernel_size": 3,
        "layer1/stride": 2,
    }
    arch = space.from_params(params)
    model = arch.build((1, 40), 10)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 1
    assert convs[0].out_channels == 32 and convs[0].kernel_size == (5,) and convs[0].stride == (2,)
    assert any(isinstance(m, torch.nn.MaxPool1d) for m in model.modules())
    # conv: 1*32*5 weights + BN 2*32 + linear 32*10+10
    assert arch.count_params((1, 40), 10) == 1 * 32 * 5 + 2 * 32 + 32 * 10 + 10
    # conv 20 output positions * 32 * 5 MACs, linear 32*10 MACs; 2 FLOPs per MAC
    assert arch.estimate_flops((1, 40), 10) == 2 * (20 * 32 * 5 + 32 * 10)
    assert str(arch) == "chain:conv5x32/s2d1 > maxpool3/s2"
