"""Gradient-based search: DARTS's mixtures, GDAS's hard samples, DrNAS's Dirichlet, and the
derived architecture in a study."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

from optuna_nas import data, oneshot, spaces
from optuna_nas.cli import main
from optuna_nas.oneshot._gradient import encode_history

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.load("mnist1d", num_samples=400)


def _supernet(dataset: data.Dataset) -> oneshot.Supernet:
    torch.manual_seed(0)  # the supernet's initial weights
    space = spaces.create("nb201", channels=4, cells_per_stage=1)
    return oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)


def test_a_mixed_edge_is_the_weighted_sum_of_its_candidates() -> None:
    torch.manual_seed(0)
    candidates = {"a": torch.nn.Linear(3, 3), "b": torch.nn.Linear(3, 3), "c": torch.nn.Tanh()}
    edge = oneshot.MixedOp(candidates)
    x = torch.randn(4, 3)
    weights = torch.tensor([0.2, 0.5, 0.3], requires_grad=True)
    edge.weights = weights
    expected = sum(w * op(x) for w, op in zip(weights, candidates.values(), strict=True))
    assert torch.allclose(edge(x), expected)
    # Hard (GDAS): only the chosen candidate runs, and every weight still gets a gradient.
    calls = []
    for name, op in candidates.items():
        op.register_forward_hook(lambda *_, name=name: calls.append(name))
    soft = torch.softmax(torch.tensor([0.1, 2.0, 0.3], requires_grad=True), dim=-1)
    hard = torch.zeros(3).scatter_(0, soft.argmax().view(1), 1.0) - soft.detach() + soft
    hard.retain_grad()
    edge.weights, edge.hard, edge.chosen = hard, True, int(hard.argmax())
    out = edge(x)
    assert calls == ["b"]
    assert torch.allclose(out, candidates["b"](x))
    out.sum().backward()
    assert hard.grad is not None and bool((hard.grad != 0).all())


@pytest.mark.parametrize("method", oneshot.GRADIENT_METHODS)
def test_each_method_moves_the_architecture_and_derives_its_argmax(
    device: torch.device, dataset: data.Dataset, method: str
) -> None:
    supernet = _supernet(dataset)
    result = oneshot.gradient_search(
        supernet, dataset, method=method, epochs=2, seed=1, device=device
    )
    assert result.method == method
    assert len(result.history) == 3 and len(result.losses) == 2
    assert set(result.history[0]) == set(supernet.decisions)
    for snapshot in result.history:
        for probs in snapshot.values():
            assert tuple(probs) == OPS
            assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    first, last = result.history[0], result.history[-1]
    moved = max(abs(last[d][op] - first[d][op]) for d in first for op in OPS)
    assert moved > 1e-3  # the architecture parameters learned
    assert result.params == {d: max(probs, key=probs.__getitem__) for d, probs in last.items()}
    # The supernet is left on the derived path: it computes the derived network.
    assert supernet.path() == result.params


def test_beta_decay_keeps_the_distribution_flatter_than_darts(
    dataset: data.Dataset, device: torch.device
) -> None:
    def peak(method: str, **kwargs: float) -> float:
        result = oneshot.gradient_search(
            _supernet(dataset), dataset, method=method, epochs=2, seed=1, device=device, **kwargs
        )
        return max(max(probs.values()) for probs in result.history[-1].values())

    darts = peak("darts")
    assert peak("beta-darts", beta_weight=0.0) == pytest.approx(darts, abs=1e-3)
    assert peak("beta-darts") < darts - 0.01
    with pytest.raises(ValueError, match="beta_weight must be a finite number >= 0"):
        oneshot.gradient_search(_supernet(dataset), dataset, method="beta-darts", beta_weight=-1)


def test_runs_repeat_with_the_seed_and_differ_across_seeds(
    dataset: data.Dataset, device: torch.device
) -> None:
    runs = [
        oneshot.gradient_search(
            _supernet(dataset), dataset, method="drnas", epochs=1, seed=s, device=device
        )
        for s in (3, 3, 4)
    ]
    assert runs[0].history == runs[1].history
    assert runs[0].history != runs[2].history


def test_bad_arguments_are_named(dataset: data.Dataset, device: torch.device) -> None:
    with pytest.raises(ValueError, match="unknown gradient method 'dart'; choose one of"):
        oneshot.gradient_search(_supernet(dataset), dataset, method="dart", device=device)
    with pytest.raises(ValueError, match="epochs and batch_size must be positive"):
        oneshot.gradient_search(_supernet(dataset), dataset, epochs=0, device=device)
    supernet = _supernet(dataset)
    with pytest.raises(ValueError, match="'node1/in0' needs 5 weights"):
        supernet.set_mixture({"node1/in0": torch.ones(3)})


def test_history_is_kept_small_with_its_ends() -> None:
    history = [{"e": {"a": k / 1000, "b": 1 - k / 1000}} for k in range(1001)]
    encoded = encode_history(history)
    assert encoded["decisions"] == {"e": ["a", "b"]}
    assert len(encoded["epochs"]) == 101
    assert encoded["epoch_numbers"][0] == 0 and encoded["epoch_numbers"][-1] == 1000
    assert encoded["epochs"][-1] == [[1.0, 0.0]]
    assert encode_history(history[:3])["epoch_numbers"] == [0, 1, 2]


def test_cli_enqueues_the_derived_architecture_with_its_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [
        "oneshot",
        "--space-arg",
        "channels=4",
        "--space-arg",
        "cells_per_stage=1",
        "--no-progress",
        "--epochs",
        "1",
        "--final-epochs",
        "1",
        "--study-name",
        "g",
    ]
    # Refused before anything is written.
    assert main([*args, "--strategy", "gdas", "--checkpoint", "supernet.pt"]) == 2
    assert "leave --checkpoint out" in capsys.readouterr().err
    assert not (tmp_path / "optuna_nas.db").exists()
    assert main([*args, "--strategy", "darts"]) == 0
    assert "Derived architecture, trial #0" in capsys.readouterr().out
    study = optuna.load_study(study_name="g", storage="sqlite:///optuna_nas.db")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs["optuna_nas:oneshot_strategy"] == "darts"
    history = trial.user_attrs["optuna_nas:architecture_weights"]
    assert history["epoch_numbers"] == [0, 1]
    for name, ops in history["decisions"].items():
        probs = history["epochs"][-1][list(history["decisions"]).index(name)]
        assert trial.params[name] == ops[probs.index(max(probs))]


def test_a_darts_space_search_derives_an_architecture_of_the_space(device: torch.device) -> None:
    small = data.load("mnist1d", num_samples=200)
    space = spaces.create("darts", channels=2, layers=3)
    torch.manual_seed(0)
    supernet = oneshot.build_supernet(space, small.input_shape, small.num_classes)
    result = oneshot.gradient_search(
        supernet, small, method="gdas", epochs=1, batch_size=64, device=device
    )
    assert set(result.history[-1]) == set(supernet.decisions)  # 14 edges per cell kind
    arch = space.from_params(result.params)
    assert arch.param_dict == result.params
    assert supernet.derive(result.history[-1]) == result.params
    # The supernet is left on the derived path, which is the stand-alone network.
    supernet.eval()
    standalone = supernet.subnet(arch).eval()
    with torch.no_grad():
        assert torch.allclose(supernet(small.valid.x[:4]), standalone(small.valid.x[:4]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="meaningful only on CUDA: no GPU here")
def test_gradient_search_on_cuda_keeps_supernet_and_alphas_there(
    dataset: data.Dataset, device: torch.device
) -> None:
    supernet = _supernet(dataset)
    result = oneshot.gradient_search(supernet, dataset, method="darts", epochs=1, device=device)
    assert next(supernet.parameters()).device.type == "cuda"
    assert result.params == supernet.derive(result.history[-1])
