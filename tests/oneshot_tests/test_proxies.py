"""Zero-cost proxies: defined values on known networks, no change to the scored model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from optuna_nas import data, oneshot, spaces


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.load("digits")


def _model(params: dict[str, str] | None = None, seed: int = 0) -> nn.Module:
    space = spaces.create("nb201", channels=4, cells_per_stage=1)
    arch = space.from_params(params or space.sample_params(np.random.RandomState(seed)))
    torch.manual_seed(seed)
    return space.build_genotype(space.decode(arch.param_dict), (1, 8, 8), 10)


def test_every_proxy_scores_and_leaves_the_model_alone(dataset: data.Dataset) -> None:
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name in oneshot.PROXIES:
        score = oneshot.zero_cost_score(model, dataset.train, name)
        assert math.isfinite(score), name
        again = oneshot.zero_cost_score(model, dataset.train, name)
        assert again == pytest.approx(score, rel=1e-6), name  # same batch, same score
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_synflow_of_a_linear_map_is_its_path_norm() -> None:
    # For a positive linear map x -> W2 W1 x with all-ones input, R = 1^T |W2| |W1| 1 and
    # sum |theta * dR/dtheta| = 2 R (each path counted once per layer).
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Linear(4, 2, bias=False))
    x, y = torch.zeros(5, 3), torch.zeros(5, dtype=torch.int64)
    w1, w2 = net[0].weight.abs().double(), net[1].weight.abs().double()
    paths = float((w2 @ w1).sum().detach())
    assert oneshot.synflow(net, x, y) == pytest.approx(2 * paths)


def test_a_cell_without_operations_scores_below_a_convolutional_one(
    dataset: data.Dataset,
) -> None:
    edges = ("node1/in0", "node2/in0", "node2/in1", "node3/in0", "node3/in1", "node3/in2")
    empty = _model(dict.fromkeys(edges, "none"))
    convs = _model(dict.fromkeys(edges, "nor_conv_3x3"))
    for name in ("synflow", "snip", "grad_norm", "params", "flops"):
        assert oneshot.zero_cost_score(convs, dataset.train, name) > oneshot.zero_cost_score(
            empty, dataset.train, name
        ), name


def test_naswot_counts_distinct_activation_patterns() -> None:
    net = nn.Sequential(nn.Linear(2, 64), nn.ReLU())
    y = torch.zeros(4, dtype=torch.int64)
    same = torch.ones(4, 2)
    distinct = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)) * 5
    # Identical inputs share one code: the kernel is singular.
    assert oneshot.naswot(net, same, y) == -math.inf
    assert math.isfinite(oneshot.naswot(net, distinct, y))


def test_zico_is_the_log_inverse_coefficient_of_variation_of_each_layers_gradients() -> None:
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0])
    grads = []
    for part in (slice(0, 2), slice(2, 4)):
        net.zero_grad()
        nn.functional.cross_entropy(net(x[part]), y[part]).backward()
        grads.append(net.weight.grad.clone().double())
    g = torch.stack(grads)
    expected = math.log(float((g.abs().mean(0) / g.std(0, unbiased=False)).sum()))
    assert oneshot.zico(net, x, y, chunks=2) == pytest.approx(expected)
    # Identical halves give identical gradients: no weight varies, so no layer counts.
    same = torch.cat([x[:2], x[:2]])
    assert oneshot.zico(net, same, torch.cat([y[:2], y[:2]]), chunks=2) == 0.0


def test_unknown_proxy_is_named(dataset: data.Dataset) -> None:
    with pytest.raises(ValueError, match=r"unknown zero-cost proxy 'bogus'.*synflow"):
        oneshot.zero_cost_score(_model(), dataset.train, "bogus")


def test_a_proxy_seeds_the_first_trials_of_any_sampler(dataset: data.Dataset) -> None:
    import optuna

    from optuna_nas import samplers

    space = spaces.create("nb201", channels=4, cells_per_stage=1)
    study = optuna.create_study(
        direction="maximize", sampler=samplers.create("evolution", seed=0, space=space)
    )
    chosen = oneshot.enqueue_best_by_proxy(
        study, space, dataset, proxy="synflow", n_trials=3, candidates=12
    )
    study.optimize(lambda trial: float(len(space.suggest(trial).param_dict)), n_trials=4)
    # The three enqueued architectures run first, in order, with their scores; then the
    # sampler takes over.
    assert [t.params for t in study.trials[:3]] == chosen
    scores = [t.user_attrs["optuna_nas:proxy_score"] for t in study.trials[:3]]
    assert scores == sorted(scores, reverse=True)
    assert "optuna_nas:proxy_score" not in study.trials[3].user_attrs
    # They are the best of the candidates by the proxy.
    rng = np.random.RandomState(0)
    drawn = [space.sample_params(rng) for _ in range(12)]
    all_scores = []
    for params in drawn:
        torch.manual_seed(0)
        model = space.from_params(params).build(dataset.input_shape, dataset.num_classes)
        all_scores.append(oneshot.zero_cost_score(model, dataset.train, "synflow"))
    assert scores[-1] >= sorted(all_scores, reverse=True)[2] - 1e-9 * abs(scores[-1])
    with pytest.raises(ValueError, match="at least n_trials"):
        oneshot.enqueue_best_by_proxy(study, space, dataset, n_trials=5, candidates=2)
