from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from optuna_nas.cli import main
from optuna_nas.training import CHECKPOINT_ATTR, INHERITED_ATTR, MODEL_TENSORS_ATTR, PEAK_LR_ATTR


def test_search_inherit_weights_warm_starts_evolution_children(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, single_thread: None
) -> None:
    monkeypatch.chdir(tmp_path)
    # The default population is 20, so trials 20 and 21 are children.
    args = (
        "search --sampler evolution --pruner none --inherit-weights --inherit-lr-scale 0.25 "
        "--lr 0.002 --n-trials 22 --dataset digits "
        "--epochs 1 --space-arg filters=[4,8] --space-arg max_layers=2 --study-name inherit "
        "--no-progress"
    ).split()
    assert main(args) == 0
    study = optuna.load_study(study_name="inherit", storage="sqlite:///optuna_nas.db")
    artifacts = tmp_path / "optuna_nas_artifacts"
    for trial in study.trials:
        assert (artifacts / trial.user_attrs[CHECKPOINT_ATTR]).is_file()
    children = [t for t in study.trials if "optuna_nas:parent_trial" in t.user_attrs]
    assert [t.number for t in children] == [20, 21]
    for child in children:
        # The parent's checkpoint was loaded and matched; how many tensors match depends on
        # the mutation (a new layer or a new width starts fresh).
        assert child.state == optuna.trial.TrialState.COMPLETE
        assert 0 <= child.user_attrs[INHERITED_ATTR] <= child.user_attrs[MODEL_TENSORS_ATTR]
        if child.user_attrs[INHERITED_ATTR]:
            assert child.user_attrs[PEAK_LR_ATTR] == pytest.approx(0.0005)
    assert sum(child.user_attrs[INHERITED_ATTR] for child in children) > 0


def test_search_refuses_a_non_positive_inherit_lr_scale(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main("search --inherit-weights --inherit-lr-scale 0 --n-trials 1".split())
    assert "--inherit-lr-scale" in capsys.readouterr().err


def test_search_no_checkpoints_keeps_drawings_but_no_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, single_thread: None
) -> None:
    monkeypatch.chdir(tmp_path)
    args = (
        "search --no-checkpoints --n-trials 2 --dataset digits --epochs 1 "
        "--space-arg filters=[4] --space-arg max_layers=1 --study-name light --no-progress"
    ).split()
    assert main(args) == 0
    study = optuna.load_study(study_name="light", storage="sqlite:///optuna_nas.db")
    artifacts = tmp_path / "optuna_nas_artifacts"
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert CHECKPOINT_ATTR not in trial.user_attrs
        assert (artifacts / trial.user_attrs["optuna_nas:architecture_svg"]).is_file()
    assert sum(1 for _ in artifacts.iterdir()) == len(study.trials)


def test_search_refuses_inherit_weights_without_checkpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main("search --inherit-weights --no-checkpoints --n-trials 1".split())
    assert code != 0
    assert "--no-checkpoints" in capsys.readouterr().err
    assert not (tmp_path / "optuna_nas.db").exists()
