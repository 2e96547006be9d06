"""Weight-sharing search in studies: the objective, supernet checkpoints, the CLI."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from optuna_nas import data, oneshot, spaces
from optuna_nas.cli import main


@pytest.fixture(scope="module")
def dataset() -> data.Dataset:
    return data.load("mnist1d", num_samples=600)


def _space(channels: int = 4) -> spaces.SearchSpace:
    return spaces.create("nb201", channels=channels, cells_per_stage=1)


def test_any_sampler_searches_with_shared_weights(dataset, device: torch.device) -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    oneshot.train_supernet(supernet, dataset, epochs=1, device=device)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(oneshot.WeightSharingObjective(space, supernet, dataset), n_trials=4)
    for trial in study.trials:
        arch = space.from_params(trial.params)
        assert trial.user_attrs["optuna_nas:oneshot_score"] == trial.value
        assert trial.value == oneshot.score_architecture(supernet, arch, dataset, device=device)
    with pytest.raises(ValueError, match="belongs to space 'nb201'"):
        oneshot.WeightSharingObjective(_space(8), supernet, dataset)


def test_checkpoints_round_trip_and_refuse_another_space(dataset, device: torch.device) -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    oneshot.train_supernet(supernet, dataset, epochs=1, device=device)
    saved = oneshot.save_supernet(supernet)
    loaded = oneshot.load_supernet(saved, space, dataset.input_shape, dataset.num_classes)
    path = supernet.sample_path(np.random.default_rng(0))
    loaded.set_path(path)
    supernet.eval()
    loaded.eval()
    x = dataset.valid.x[:8]
    with torch.no_grad():
        assert torch.equal(loaded(x), supernet(x))
    with pytest.raises(ValueError, match=r"not of 'nb201' .'channels': 8"):
        oneshot.load_supernet(saved, _space(8), dataset.input_shape, dataset.num_classes)
    with pytest.raises(ValueError, match="takes inputs"):
        oneshot.load_supernet(saved, space, (1, 8, 8), 10)
    with pytest.raises(ValueError, match="not a supernet checkpoint"):
        oneshot.load_supernet(b"garbage", space, dataset.input_shape, dataset.num_classes)


def test_oneshot_cli_adds_the_derived_architecture_as_a_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    common = ["--space-arg", "channels=4", "--space-arg", "cells_per_stage=1", "--no-progress"]
    args = ["oneshot", *common, "--epochs", "1", "--candidates", "6", "--final-epochs", "1"]
    # The defaults: FairNAS, scored by validation loss averaged with ZiCo.
    assert main([*args, "--study-name", "os"]) == 0
    out = capsys.readouterr().out
    assert "fair supernet" in out and "loss score with zico" in out and "combined score" in out
    assert "Derived architecture, trial #0" in out
    study = optuna.load_study(study_name="os", storage="sqlite:///optuna_nas.db")
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.user_attrs["optuna_nas:oneshot_strategy"] == "fair"
    assert trial.user_attrs["optuna_nas:oneshot_proxy"] == "zico"
    artifact = study.user_attrs["optuna_nas:supernet_artifact"]
    checkpoint = tmp_path / "optuna_nas_artifacts" / artifact
    assert checkpoint.is_file()
    # The saved supernet searches again, into the same study, without training.
    rerun = [*args, "--study-name", "os", "--checkpoint", str(checkpoint), "--proxy", "none"]
    assert main(rerun) == 0
    assert "Supernet: 0 s" in capsys.readouterr().out
    trials = optuna.load_study(study_name="os", storage="sqlite:///optuna_nas.db").trials
    assert len(trials) == 2
    assert trials[1].user_attrs["optuna_nas:oneshot_score"] < 0  # a negative loss
    assert "optuna_nas:oneshot_proxy" not in trials[1].user_attrs
    assert main([*rerun, "--score", "accuracy"]) == 0
    third = optuna.load_study(study_name="os", storage="sqlite:///optuna_nas.db").trials[2]
    assert 0.0 <= third.user_attrs["optuna_nas:oneshot_score"] <= 1.0

    before = (tmp_path / "optuna_nas.db").read_bytes()
    for bad, message in (
        (["--space", "chain"], "has no supernet"),
        (["--strategy", "enas"], "--strategy 'enas' does not fit"),
        (["--checkpoint", str(checkpoint), "--space-arg", "channels=8"], "not of 'nb201'"),
        (["--checkpoint", "missing.pt"], "--checkpoint missing.pt"),
        (["--dataset", "missing.npz"], "no such file or folder"),
        (["--proxy", "bogus"], "--proxy 'bogus' is no zero-cost proxy"),
        (["--strategy", "darts", "--proxy", "zico"], "--proxy serves spos and fair"),
    ):
        assert main(["oneshot", *common, *bad, "--study-name", "other"]) == 2, bad
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (bad, err)
    assert (tmp_path / "optuna_nas.db").read_bytes() == before


def test_a_proxy_combined_with_shared_weights_is_a_fixed_scale_average(
    dataset, device: torch.device
) -> None:
    space = _space()
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    oneshot.train_supernet(supernet, dataset, epochs=1, device=device)
    objective = oneshot.WeightSharingObjective(
        space, supernet, dataset, metric="loss", proxy="zico", reference_size=12, device=device
    )
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=4)
    combined = objective.combined
    assert combined is not None
    for trial in study.trials:
        arch = space.from_params(trial.params)
        shared = trial.user_attrs["optuna_nas:oneshot_score"]
        proxy = trial.user_attrs["optuna_nas:proxy_score"]
        assert shared == pytest.approx(
            oneshot.score_architecture(supernet, arch, dataset, device=device, metric="loss")
        )
        assert proxy == pytest.approx(oneshot.proxy_score(arch, dataset, "zico", device=device))
        # The value depends on the architecture alone: scored again, it is the same.
        assert trial.value == pytest.approx(combined.score(arch))
    # Each part is standardised, so a better one-shot score with the same proxy score
    # raises the combination, and the two parts weigh the same on their scales.
    low = combined.combine(-2.0, 0.0)
    assert combined.combine(-1.0, 0.0) > low
    # An undefined proxy score counts as the reference sample's lowest, not as -inf.
    assert math.isfinite(combined.combine(-1.0, -math.inf))
    with pytest.raises(ValueError, match="unknown proxy 'bogus'"):
        oneshot.CombinedScore(space, supernet, dataset, proxy="bogus")
    with pytest.raises(ValueError, match="reference_size must be an integer >= 8"):
        oneshot.CombinedScore(space, supernet, dataset, reference_size=4)
