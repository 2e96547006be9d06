from __future__ import annotations

import dataclasses

import optuna
import pytest
import torch
from torch import nn

from optuna_nas import data, spaces
from optuna_nas.training import (
    FAIL_REASON_ATTR,
    TrainingDiverged,
    evaluate,
    fit,
    seed_everything,
    select_device,
)

CONV_ARCH = {
    "n_layers": 2,
    "layer0/op": "conv",
    "layer0/filters": 16,
    "layer0/kernel_size": 3,
    "layer0/stride": 1,
    "layer0/dilation": 1,
    "layer1/op": "conv",
    "layer1/filters": 32,
    "layer1/kernel_size": 3,
    "layer1/stride": 2,
    "layer1/dilation": 1,
}


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits", seed=0)


def _model(dataset: data.Dataset, seed: int = 0) -> nn.Module:
    seed_everything(seed)
    arch = spaces.create("chain").from_params(CONV_ARCH)
    return arch.build(dataset.input_shape, dataset.num_classes)


def test_fit_learns_digits_and_reports_every_epoch(digits, device: torch.device) -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    result = fit(
        _model(digits),
        digits,
        trial=trial,
        epochs=10,
        batch_size=64,
        evaluate_test=True,
        device=device,
    )
    study.tell(trial, result.valid_accuracy)
    frozen = study.trials[0]
    assert frozen.intermediate_values == {
        i: h["valid_accuracy"] for i, h in enumerate(result.history)
    }
    assert len(result.learning_curve) == 10
    assert result.valid_accuracy > 0.9, result.history
    assert result.test_accuracy is not None and result.test_accuracy > 0.85
    attrs = frozen.user_attrs
    assert attrs["optuna_nas:n_params"] == result.n_params > 0
    assert attrs["optuna_nas:flops"] == result.flops > 0
    assert attrs["optuna_nas:device"] == str(select_device(None)) == result.device
    assert attrs["optuna_nas:seconds_per_epoch"] > 0 and attrs["optuna_nas:samples_per_second"] > 0
    assert attrs["optuna_nas:test_accuracy"] == result.test_accuracy
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_raises_trial_pruned_when_the_pruner_says_so(digits, device: torch.device) -> None:
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.01)
    )
    trial = study.ask()
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 0"):
        fit(_model(digits), digits, trial=trial, epochs=5, device=device)
    study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert list(study.trials[0].intermediate_values) == [0]


def test_pruned_study_runs_through_optimize(digits, device: torch.device) -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    space = spaces.create("chain", max_layers=2, filters=[4, 8])

    def objective(trial: optuna.Trial) -> float:
        model = space.suggest(trial).build(digits.input_shape, digits.num_classes)
        return fit(
            model, digits, trial=trial, epochs=3, batch_size=128, device=device
        ).valid_accuracy

    study.optimize(objective, n_trials=8)
    states = {t.state for t in study.trials}
    assert {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED} <= states
    for t in study.trials:
        assert 1 <= len(t.intermediate_values) <= 3


def test_seeded_runs_repeat_exactly(digits, device: torch.device) -> None:
    a = fit(_model(digits, seed=7), digits, epochs=2, seed=3, device=device)
    b = fit(_model(digits, seed=7), digits, epochs=2, seed=3, device=device)
    c = fit(_model(digits, seed=7), digits, epochs=2, seed=4, device=device)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.learning_curve == b.learning_curve
    assert [h["train_loss"] for h in a.history] != [h["train_loss"] for h in c.history]


def _poisoned(dataset: data.Dataset) -> data.Dataset:
    x = dataset.train.x.clone()
    x[0] = float("nan")
    return dataclasses.replace(dataset, train=dataclasses.replace(dataset.train, x=x))


def test_nan_loss_fails_only_that_trial(digits, device: torch.device) -> None:
    bad = _poisoned(digits)
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        dataset = bad if trial.number == 0 else digits
        return fit(_model(digits), dataset, trial=trial, epochs=1, device=device).valid_accuracy

    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.FAIL
    assert first.user_attrs[FAIL_REASON_ATTR] == "nan_loss"
    assert second.state == optuna.trial.TrialState.COMPLETE


def test_nan_loss_without_trial_raises_with_advice(digits, device: torch.device) -> None:
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        fit(_model(digits), _poisoned(digits), epochs=1, device=device)


class _ExhaustsMemory(nn.Module):
    """Raises the error PyTorch raises when the GPU allocator runs out."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")
        return self.linear(x.flatten(1))


def test_out_of_memory_fails_only_that_trial(digits, device: torch.device) -> None:
    study = optuna.create_study(direction="maximize")

    def objective(trial: optuna.Trial) -> float:
        model = _ExhaustsMemory() if trial.number == 0 else _model(digits)
        return fit(model, digits, trial=trial, epochs=1, device=device).valid_accuracy

    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.FAIL
    assert first.user_attrs[FAIL_REASON_ATTR] == "oom"
    assert second.state == optuna.trial.TrialState.COMPLETE
    with pytest.raises(torch.cuda.OutOfMemoryError):
        fit(_ExhaustsMemory(), digits, epochs=1, device=device)


def test_evaluate_counts_correct_predictions() -> None:
    model = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.eye(2))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([0, 1, 1, 1])
    assert evaluate(model, (x, y), batch_size=3) == 0.75


def test_device_selection() -> None:
    assert select_device("cpu").type == "cpu"
    assert select_device(None).type == (
        "cuda" if torch.cuda.is_available() else select_device().type
    )
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")
    with pytest.raises(ValueError, match="invalid device"):
        select_device("tpu9")


def test_bad_arguments(digits, device: torch.device) -> None:
    with pytest.raises(ValueError, match="positive"):
        fit(_model(digits), digits, epochs=0, device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="meaningful only on CUDA: no GPU here")
def test_fit_on_cuda_records_peak_memory_and_keeps_the_weights_there(
    digits, device: torch.device
) -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = _model(digits)
    result = fit(model, digits, trial=trial, epochs=1, device=device)
    assert result.peak_memory_mb is not None and result.peak_memory_mb > 0
    assert next(model.parameters()).device.type == "cuda"
    attrs = study.trials[0].user_attrs
    assert attrs["optuna_nas:peak_gpu_memory_mb"] == round(result.peak_memory_mb, 1)
    assert str(attrs["optuna_nas:device"]).startswith("cuda")


def test_fit_off_cuda_records_no_gpu_memory(digits, device: torch.device) -> None:
    if device.type == "cuda":
        pytest.skip("meaningful only off CUDA: a GPU is here")
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    result = fit(_model(digits), digits, trial=trial, epochs=1, device=device)
    assert result.peak_memory_mb is None
    assert "optuna_nas:peak_gpu_memory_mb" not in study.trials[0].user_attrs
