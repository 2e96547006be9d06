from __future__ import annotations

import optuna
import pytest
import torch
import torch.nn.functional as F

from optuna_nas import spaces
from optuna_nas.nn import count_params
from optuna_nas.nn._hierarchical import live_nodes
from optuna_nas.spaces import Architecture, HierarchicalSpace

PRIMITIVES = {
    "none",
    "identity",
    "conv1x1",
    "dwconv3x3",
    "sepconv3x3",
    "maxpool3x3",
    "avgpool3x3",
}


def _edges(prefix: str, n_nodes: int) -> set[str]:
    return {f"{prefix}/edge_{i}_{j}" for i in range(1, n_nodes) for j in range(i)}


def _check_active(params: dict, space: HierarchicalSpace) -> None:
    """Every cell edge is set; a motif's edges are set exactly when the cell names it."""
    cell = _edges("cell", space.cell_nodes)
    motif_names = {f"motif{m}" for m in range(space.num_motifs)}
    assert cell <= set(params)
    assert all(params[name] in motif_names | {"none"} for name in cell)
    used = {params[name] for name in cell} - {"none"}
    expected = cell.union(*(_edges(m, space.motif_nodes) for m in used))
    assert set(params) == expected
    assert all(params[name] in PRIMITIVES for name in expected - cell)


def test_random_trials_build_and_only_active_params() -> None:
    space = HierarchicalSpace(num_motifs=3, channels=4, cells=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    used_counts = set()
    for number in range(200):
        trial = study.ask()
        arch = space.suggest(trial)
        _check_active(trial.params, space)
        assert arch.param_dict == trial.params
        used_counts.add(sum(rows is not None for rows in arch.genotype.motifs))
        shapes = [(1, 40), (1, 8, 8), (64,)] if number % 20 == 0 else [(1, 40)]
        for shape in shapes:
            model = arch.build(shape, num_classes=7)
            assert model(torch.randn(2, *shape)).shape == (2, 7)
        study.tell(trial, 0.0)
    # Some trials leave a motif out, so conditional motif parameters were exercised.
    assert 3 in used_counts and min(used_counts) < 3


def _cell(cell_nodes: int, edges: dict[str, str]) -> dict[str, str]:
    """All cell edges ``none`` except those given."""
    return {name: "none" for name in _edges("cell", cell_nodes)} | edges


def _motif(m: int, motif_nodes: int, edges: dict[str, str]) -> dict[str, str]:
    return {name: "none" for name in _edges(f"motif{m}", motif_nodes)} | edges


def _arch(params: dict, **config) -> Architecture:
    return Architecture.from_dict({"space": "hierarchical", "config": config, "params": params})


SMALL = {"num_motifs": 2, "motif_nodes": 3, "cell_nodes": 3, "channels": 4, "cells": 2}


def test_genotype_reads_the_cell_and_only_used_motifs() -> None:
    params = _cell(3, {"cell/edge_2_0": "motif1"}) | _motif(
        1, 3, {"motif1/edge_1_0": "conv1x1", "motif1/edge_2_1": "identity"}
    )
    arch = _arch(params, **SMALL)
    genotype = arch.genotype
    assert genotype.cell == (("none",), ("motif1", "none"))
    assert genotype.motifs == (None, (("conv1x1",), ("none", "identity")))
    assert str(arch) == (
        "hierarchical:cell=|none~0|+|motif1~0|none~1| motif1=|conv1x1~0|+|none~0|identity~1|"
    )
    # Motif 0 is not used, so its parameters are dropped even when given.
    with_extra = _arch(params | _motif(0, 3, {"motif0/edge_1_0": "identity"}), **SMALL)
    assert with_extra == arch


def test_missing_or_illegal_motif_parameters_raise() -> None:
    cell = _cell(3, {"cell/edge_2_0": "motif0"})
    with pytest.raises(ValueError, match="motif0/edge_1_0"):
        _arch(cell, **SMALL)
    with pytest.raises(ValueError, match="legal choice"):
        _arch(cell | _motif(0, 3, {"motif0/edge_1_0": "conv5x5"}), **SMALL)
    with pytest.raises(ValueError, match="legal choice"):
        _arch(_cell(3, {"cell/edge_2_0": "motif2"}), **SMALL)


def test_empty_cell_outputs_zeros_and_still_trains() -> None:
    arch = _arch(_cell(3, {}), **SMALL)
    assert arch.genotype.motifs == (None, None)
    for shape in [(1, 40), (1, 8, 8), (64,)]:
        model = arch.build(shape, num_classes=3)
        logits = model(torch.randn(4, *shape))
        # Zeros pass through the batch-normalised reduction as zeros, so only the bias is left.
        torch.testing.assert_close(logits, model.classifier.linear.bias.expand(4, 3))
        F.cross_entropy(logits, torch.tensor([0, 1, 2, 0])).backward()
        assert model.classifier.linear.bias.grad is not None


def test_motif_node_without_inputs_outputs_zeros() -> None:
    # Motif 0 joins its input to its output only through node 1, which has no input.
    params = _cell(3, {"cell/edge_2_0": "motif0"}) | _motif(0, 3, {"motif0/edge_2_1": "identity"})
    model = _arch(params, **SMALL).build((1, 40), num_classes=3)
    motif = model.features[2].edges["2_0"]
    x = torch.randn(2, 4, 40)
    torch.testing.assert_close(motif(x), torch.zeros_like(x))


def test_edges_that_cannot_reach_the_output_get_no_weights() -> None:
    motif = _motif(0, 3, {"motif0/edge_1_0": "conv1x1", "motif0/edge_2_1": "sepconv3x3"})
    output_only = _cell(3, {"cell/edge_2_0": "motif0"}) | motif
    dead_node = output_only | {"cell/edge_1_0": "motif0"}
    via_node = dead_node | {"cell/edge_2_1": "motif0"}
    sizes = [count_params(_arch(p, **SMALL).build((1, 40), 3)) for p in (output_only, dead_node)]
    assert sizes[0] == sizes[1]
    assert count_params(_arch(via_node, **SMALL).build((1, 40), 3)) > sizes[0]
    assert live_nodes([["motif0"], ["motif0", "none"]]) == {0, 2}
    assert live_nodes([["none"], ["none", "x"], ["none", "none", "x"]]) == {1, 2, 3}


def test_motif_sums_its_incoming_edges() -> None:
    params = _cell(2, {"cell/edge_1_0": "motif0"}) | _motif(
        0,
        3,
        {
            "motif0/edge_1_0": "identity",
            "motif0/edge_2_0": "identity",
            "motif0/edge_2_1": "identity",
        },
    )
    model = _arch(params, **{**SMALL, "cell_nodes": 2}).build((1, 40), num_classes=3)
    motif = model.features[2].edges["1_0"]
    x = torch.randn(2, 4, 40)
    torch.testing.assert_close(motif(x), 2 * x)


def test_round_trips_through_dict_json_and_trial() -> None:
    space = HierarchicalSpace(channels=4, cells=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(20):
        trial = study.ask()
        arch = space.suggest(trial)
        study.tell(trial, 0.0)
        assert Architecture.from_dict(arch.to_dict()) == arch
        assert Architecture.from_json(arch.to_json()) == arch
        assert Architecture.from_trial(study.trials[-1]) == arch
        assert Architecture.from_dict(arch.to_dict()).genotype == arch.genotype


def test_gradient_step_updates_the_network() -> None:
    space = HierarchicalSpace(channels=4, cells=2)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=2))
    for _ in range(5):
        trial = study.ask()
        model = space.suggest(trial).build((1, 8, 8), num_classes=3)
        study.tell(trial, 0.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.parameters()]
        loss = F.cross_entropy(model(torch.randn(4, 1, 8, 8)), torch.tensor([0, 1, 2, 0]))
        loss.backward()
        assert torch.isfinite(loss)
        # Even a cell that outputs zeros leaves the classifier a gradient.
        assert model.classifier.linear.weight.grad is not None
        optimizer.step()
        assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))


def test_default_network_runs_on_images() -> None:
    params = _cell(5, {"cell/edge_4_0": "motif0", "cell/edge_2_1": "motif3"})
    params |= _motif(0, 4, {"motif0/edge_3_0": "sepconv3x3", "motif0/edge_3_2": "dwconv3x3"})
    params |= _motif(3, 4, {"motif3/edge_1_0": "avgpool3x3"})
    arch = _arch(params)
    assert arch.space_config == {
        "num_motifs": 4,
        "motif_nodes": 4,
        "cell_nodes": 5,
        "channels": 16,
        "cells": 3,
    }
    model = arch.build((3, 16, 16), num_classes=10)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert model.classifier.linear.in_features == 16 * 4


def test_registered_and_created_by_name() -> None:
    assert "hierarchical" in spaces.available()
    space = spaces.create("hierarchical", num_motifs=2)
    assert isinstance(space, HierarchicalSpace)
    assert space.config["num_motifs"] == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_motifs": 0}, "num_motifs must be an integer >= 1"),
        ({"motif_nodes": 1}, "motif_nodes must be an integer >= 2"),
        ({"cell_nodes": 1}, "cell_nodes must be an integer >= 2"),
        ({"cell_nodes": "5"}, "cell_nodes must be an integer"),
        ({"channels": 0}, "channels must be an integer >= 1"),
        ({"cells": True}, "cells must be an integer"),
        ({"cells": 1.5}, "cells must be an integer"),
    ],
)
def test_invalid_config_raises(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        HierarchicalSpace(**kwargs)


def test_unknown_argument_raises_value_error() -> None:
    with pytest.raises(ValueError, match="invalid argument"):
        spaces.create("hierarchical", levels=4)
