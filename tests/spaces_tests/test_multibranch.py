from __future__ import annotations

import optuna
import pytest
import torch
import torch.nn.functional as F

from optuna_nas import spaces
from optuna_nas.nn._graph import MergeInputs
from optuna_nas.spaces import Architecture, MultiBranchSpace

LAYER_PARAMS = {
    "conv": {"op", "filters", "kernel_size", "stride", "dilation"},
    "sepconv": {"op", "filters", "kernel_size", "stride", "dilation"},
    "pool": {"op", "pool_type", "kernel_size", "stride"},
    "dense": {"op", "units"},
    "identity": {"op"},
}


def _skip_name(i: int, j: int) -> str:
    return f"layer{i}/skip_input" if j == -1 else f"layer{i}/skip{j}"


def _skip_fields(i: int) -> set[str]:
    """Layer i may also read the input (j = -1) and every layer j < i - 1."""
    return {_skip_name(i, j).split("/")[1] for j in range(-1, i - 1)}


def _check_active(params: dict) -> None:
    """The active parameters follow the documented rules, and nothing else is set."""
    n = params["n_layers"]
    for name in params:
        if name != "n_layers":
            assert int(name.split("/")[0].removeprefix("layer")) < n, name
    for i in range(n):
        fields = {k.split("/")[1] for k in params if k.startswith(f"layer{i}/")}
        skips = _skip_fields(i)
        has_skip = any(params[f"layer{i}/{s}"] for s in skips)
        expected = (
            LAYER_PARAMS[params[f"layer{i}/op"]] | skips | ({"merge"} if has_skip else set())
        )
        assert fields == expected, (i, fields, expected)
        for s in skips:
            assert params[f"layer{i}/{s}"] in (False, True)


def _check_genotype(arch: Architecture) -> None:
    params = arch.param_dict
    for i, layer in enumerate(arch.genotype):
        skips = [j for j in range(-1, i - 1) if params[_skip_name(i, j)]]
        assert layer.inputs == (*skips, i - 1)
        assert layer.merge == params.get(f"layer{i}/merge")


@pytest.mark.parametrize(
    ("space_kwargs", "input_shape", "other_shapes"),
    [
        ({"filters": [4, 8]}, (1, 40), [(1, 8, 8), (64,)]),
        ({"ops": ["dense", "identity"], "units": [8, 16]}, (64,), [(1, 8, 8), (1, 40)]),
    ],
)
def test_random_trials_build_and_only_active_params(
    space_kwargs, input_shape, other_shapes
) -> None:
    space = MultiBranchSpace(max_layers=5, **space_kwargs)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    distributions: dict = {}
    merges_seen = set()
    for number in range(200):
        trial = study.ask()
        arch = space.suggest(trial)
        _check_active(trial.params)
        _check_genotype(arch)
        assert arch.param_dict == trial.params
        for name, dist in trial.distributions.items():
            assert distributions.setdefault(name, dist) == dist, name
        merges_seen.update(layer.merge for layer in arch.genotype)
        shapes = [input_shape, *other_shapes] if number % 20 == 0 else [input_shape]
        for shape in shapes:
            model = arch.build(shape, num_classes=7)
            assert model(torch.randn(3, *shape)).shape == (3, 7)
        study.tell(trial, 0.0)
    assert merges_seen == {None, "sum", "concat"}


def _arch(params: dict, **config) -> Architecture:
    return Architecture.from_dict({"space": "multibranch", "config": config, "params": params})


# Three layers on a length-40 sequence: 40 -> 20 -> 10 -> 10, widths 1 -> 8 -> 8 -> 4.
# Layer 2 reads the input, layer 0 and layer 1, so its inputs differ in size and width.
SHRINKING = {
    "n_layers": 3,
    "layer0/op": "conv",
    "layer0/filters": 8,
    "layer0/kernel_size": 3,
    "layer0/stride": 2,
    "layer0/dilation": 1,
    "layer1/op": "pool",
    "layer1/pool_type": "max",
    "layer1/kernel_size": 3,
    "layer1/stride": 2,
    "layer1/skip_input": False,
    "layer2/op": "conv",
    "layer2/filters": 4,
    "layer2/kernel_size": 3,
    "layer2/stride": 1,
    "layer2/dilation": 1,
    "layer2/skip_input": True,
    "layer2/skip0": True,
}


def test_concat_merge_stacks_channels_of_inputs_of_different_sizes() -> None:
    arch = _arch({**SHRINKING, "layer2/merge": "concat"}, filters=[4, 8])
    assert arch.genotype[2].inputs == (-1, 0, 1)
    model = arch.build((1, 40), num_classes=5)
    assert model.layers[2][0].in_channels == 1 + 8 + 8
    merged = model.merges[2]([torch.randn(2, 1, 40), torch.randn(2, 8, 20), torch.randn(2, 8, 10)])
    assert merged.shape == (2, 17, 10)
    assert model(torch.randn(2, 1, 40)).shape == (2, 5)


def test_sum_merge_projects_to_the_previous_width() -> None:
    arch = _arch({**SHRINKING, "layer2/merge": "sum"}, filters=[4, 8])
    model = arch.build((1, 40), num_classes=5)
    merge = model.merges[2]
    assert isinstance(merge, MergeInputs) and merge.out_width == 8
    # Only the one-channel input needs a projection; layer 0 already has layer 1's width.
    assert [type(p).__name__ for p in merge.projections] == ["Sequential", "Identity", "Identity"]
    assert model.layers[2][0].in_channels == 8
    x = torch.randn(2, 1, 40)
    assert model(x).shape == (2, 5)


def test_sum_merge_of_flat_features_projects_with_a_linear_layer() -> None:
    merge = MergeInputs(0, [64, 16, 8], "sum")
    assert [type(p).__name__ for p in merge.projections] == ["Linear", "Linear", "Identity"]
    out = merge([torch.randn(3, 64), torch.randn(3, 16), torch.randn(3, 8)])
    assert out.shape == (3, 8)
    same = MergeInputs(0, [8, 8], "sum")
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    torch.testing.assert_close(same([a, b]), a + b)


def test_two_dimensional_inputs_are_pooled_to_the_smallest_map() -> None:
    merge = MergeInputs(2, [2, 3], "concat")
    big = torch.arange(16.0).reshape(1, 2, 2, 4)
    small = torch.zeros(1, 3, 1, 2)
    out = merge([big, small])
    assert out.shape == (1, 5, 1, 2)
    torch.testing.assert_close(out[:, :2], F.adaptive_avg_pool2d(big, (1, 2)))


def test_merge_is_required_exactly_when_a_skip_is_on() -> None:
    with pytest.raises(ValueError, match="layer2/merge"):
        _arch(SHRINKING, filters=[4, 8])
    no_skips = {**SHRINKING, "layer2/skip_input": False, "layer2/skip0": False}
    arch = _arch({**no_skips, "layer2/merge": "sum"}, filters=[4, 8])
    assert "layer2/merge" not in arch.param_dict
    assert arch.genotype[2].merge is None and arch.genotype[2].inputs == (1,)


def test_round_trips_through_dict_json_and_trial() -> None:
    space = MultiBranchSpace(max_layers=4, filters=[4])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, 0.0)
        assert Architecture.from_dict(arch.to_dict()) == arch
        assert Architecture.from_json(arch.to_json()) == arch
        assert Architecture.from_trial(study.trials[-1]) == arch
        assert Architecture.from_dict(arch.to_dict()).genotype == arch.genotype
        assert str(arch).startswith("multibranch:")


def test_gradient_step_reaches_every_branch() -> None:
    arch = _arch({**SHRINKING, "layer2/merge": "sum"}, filters=[4, 8])
    model = arch.build((1, 40), num_classes=5)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    loss = F.cross_entropy(model(torch.randn(4, 1, 40)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # The projection of the skipped input is trained too.
    assert model.merges[2].projections[0][0].weight.grad.abs().sum() > 0
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_random_architectures_train() -> None:
    space = MultiBranchSpace(max_layers=4, filters=[4, 8])
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    for _ in range(10):
        trial = study.ask()
        model = space.suggest(trial).build((1, 40), num_classes=3)
        study.tell(trial, 0.0)
        loss = F.cross_entropy(model(torch.randn(4, 1, 40)), torch.tensor([0, 1, 2, 0]))
        loss.backward()
        assert torch.isfinite(loss)
        assert all(p.grad is not None for p in model.head.parameters())


def test_registered_and_created_by_name() -> None:
    assert "multibranch" in spaces.available()
    space = spaces.create("multibranch", max_layers=3, filters=[4])
    assert isinstance(space, MultiBranchSpace)
    assert space.config["max_layers"] == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_layers": 0}, "min_layers <= max_layers"),
        ({"min_layers": 3, "max_layers": 2}, "min_layers <= max_layers"),
        ({"ops": ["conv", "lstm"]}, "unknown layer ops"),
        ({"ops": ["conv", "dense"]}, "cannot be mixed"),
        ({"filters": []}, "filters"),
        ({"kernel_sizes": [2]}, "odd"),
        ({"pool_types": ["median"]}, "pool_types"),
    ],
)
def test_invalid_config_raises(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        MultiBranchSpace(**kwargs)


def test_unknown_argument_raises_value_error() -> None:
    with pytest.raises(ValueError, match="invalid argument"):
        spaces.create("multibranch", n_skips=2)
