"""Supernets: every architecture is a subnetwork, training by paths, recalibrated scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optuna_nas import data, oneshot, spaces


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.load("mnist1d", num_samples=600)


def _space() -> spaces.SearchSpace:
    return spaces.create("nb201", channels=4, cells_per_stage=2)


@pytest.mark.parametrize(
    "space",
    [_space(), spaces.create("darts", channels=4, layers=3)],
    ids=["nb201", "darts"],
)
def test_every_subnetwork_is_the_standalone_network_with_shared_weights(
    space: spaces.SearchSpace,
) -> None:
    torch.manual_seed(0)
    supernet = oneshot.build_supernet(space, (1, 40), 10)
    x = torch.randn(6, 1, 40, generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.from_params(supernet.sample_path(rng))
        standalone = supernet.subnet(arch)
        assert type(standalone) is type(arch.build((1, 40), 10))
        supernet.eval()
        standalone.eval()
        with torch.no_grad():
            assert torch.equal(supernet(x), standalone(x))
    # The shared weights are copied, not aliased: the subnetwork trains on its own.
    with torch.no_grad():
        next(standalone.parameters()).add_(1.0)
    assert not torch.equal(supernet(x), standalone(x))


def test_paths_are_checked_and_spaces_without_supernet_refused() -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, (1, 40), 10)
    with pytest.raises(RuntimeError, match="no path"):
        supernet(torch.randn(2, 1, 40))
    with pytest.raises(ValueError, match="no candidate 'conv_7x7' for 'node1/in0'"):
        supernet.set_path(
            {**supernet.sample_path(np.random.default_rng(0)), "node1/in0": "conv_7x7"}
        )
    other = spaces.create("nb201", channels=8, cells_per_stage=1)
    arch = other.from_params(supernet.sample_path(np.random.default_rng(1)))
    with pytest.raises(ValueError, match="does not belong to this supernet"):
        supernet.set_path(arch)
    with pytest.raises(ValueError, match="space 'chain' has no supernet"):
        oneshot.build_supernet(spaces.create("chain"), (1, 40), 10)


def test_darts_fair_paths_use_every_operation_of_every_decision_once() -> None:
    space = spaces.create("darts", channels=4, layers=3)
    supernet = oneshot.build_supernet(space, (1, 40), 10)
    assert len(supernet.decisions) == 2 * 14  # the DARTS supernet's edges, per cell kind
    paths = supernet.fair_paths(np.random.default_rng(0))
    ops = supernet.decisions["normal/node0/in0"]
    assert len(ops) == len(paths) == 8
    for cell in ("normal", "reduce"):
        for k in range(4):
            for slot in (0, 1):
                assert sorted(p[f"{cell}/node{k}/op{slot}"] for p in paths) == sorted(ops)
    for params in paths:
        space.from_params(params)  # each is an architecture of the space
        supernet.set_path(params)
        used = [edge for edge, op in supernet.path().items() if op is not None]
        assert len(used) == 2 * 4 * 2  # two edges per node, four nodes, two cell kinds


def test_darts_derivation_keeps_the_two_strongest_edges_without_none() -> None:
    space = spaces.create("darts", channels=4, layers=3)
    supernet = oneshot.build_supernet(space, (1, 40), 10)
    flat = {op: 1 / 8 for op in supernet.decisions["normal/node0/in0"]}
    probs = {edge: dict(flat) for edge in supernet.decisions}
    # Node 2 of the normal cell: "none" dominates the edge from state 0, which is ignored;
    # the edges from states 3 and 1 carry the strongest real operations.
    probs["normal/node2/in0"] = {**flat, "none": 0.9, "sep_conv_3x3": 0.05}
    probs["normal/node2/in3"] = {**flat, "dil_conv_5x5": 0.6}
    probs["normal/node2/in1"] = {**flat, "max_pool_3x3": 0.4}
    params = supernet.derive(probs)
    assert params["normal/node2/inputs"] == "1,3"
    assert params["normal/node2/op0"] == "max_pool_3x3"
    assert params["normal/node2/op1"] == "dil_conv_5x5"
    assert space.from_params(params).space == "darts"


def _changed(before: dict[str, torch.Tensor], supernet: oneshot.Supernet) -> set[str]:
    state = supernet.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, state[k])}


def test_spos_trains_only_sampled_candidates_and_fair_trains_all(
    dataset, device: torch.device
) -> None:
    supernet = oneshot.build_supernet(_space(), dataset.input_shape, dataset.num_classes)
    weights = {k: v.clone() for k, v in supernet.state_dict().items() if "weight" in k}
    small = dataset.with_fidelity(data_fraction=0.25)
    oneshot.train_supernet(
        supernet, small, epochs=1, batch_size=len(small.train), seed=0, device=device
    )
    changed = _changed(weights, supernet)
    convs = {k for k in weights if ".candidates.nor_conv" in k}
    # One step of SPOS: one path; the convolutions of unsampled candidates stay as they were.
    assert changed & convs and convs - changed
    fair = oneshot.build_supernet(_space(), dataset.input_shape, dataset.num_classes)
    weights = {k: v.clone() for k, v in fair.state_dict().items() if "weight" in k}
    oneshot.train_supernet(
        fair, small, epochs=1, batch_size=len(small.train), strategy="fair", seed=0
    )
    assert convs <= _changed(weights, fair)
    with pytest.raises(ValueError, match="unknown supernet strategy 'darts'"):
        oneshot.train_supernet(fair, small, strategy="darts", device=device)


def test_scores_recalibrate_batch_norm_per_path(dataset, device: torch.device) -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    oneshot.train_supernet(supernet, dataset, epochs=2, seed=0, device=device)
    arch = space.from_params(supernet.sample_path(np.random.default_rng(3)))
    score = oneshot.score_architecture(supernet, arch, dataset, device=device)
    assert 0.0 <= score <= 1.0
    # The recalibrated statistics are those of this path's own activations.
    stem_norm = supernet.network.features[0][2]
    expected = []
    with torch.no_grad():
        supernet.train()
        order = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(0))
        for k in range(min(8, -(-len(dataset.train) // 128))):
            x = dataset.train.x[order[k * 128 : (k + 1) * 128]]
            expected.append(supernet.network.features[0][:2](x).mean(dim=(0, 2)))
    assert torch.allclose(stem_norm.running_mean, torch.stack(expected).mean(0), atol=1e-5)
    assert (
        oneshot.score_architecture(supernet, arch, dataset, device=device) == score
    )  # deterministic
    # The loss score: the negative mean cross-entropy of the recalibrated path.
    loss_score = oneshot.score_architecture(supernet, arch, dataset, metric="loss", device=device)
    supernet.eval()
    with torch.no_grad():
        logits = supernet(dataset.valid.x)
    expected_loss = torch.nn.functional.cross_entropy(logits, dataset.valid.y)
    assert loss_score == pytest.approx(-float(expected_loss), rel=1e-5)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        oneshot.score_architecture(supernet, arch, dataset, metric="auc", device=device)
