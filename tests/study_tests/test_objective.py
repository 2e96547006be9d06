"""ArchitectureObjective: suggest, build, fit, with its hooks around training."""

from __future__ import annotations

import math

import optuna
import pytest
import torch

from optuna_nas import ArchitectureObjective, TrainingConfig, _keys, data, spaces
from optuna_nas.study import CheckpointHook, DrawingHook, InheritanceHook

SPACE = {"filters": [4, 8], "max_layers": 2}


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


class _Recorder:
    """A hook that records every call and can veto a trial or hand it weights."""

    def __init__(self, veto: bool = False) -> None:
        self.calls: list[tuple[str, int]] = []
        self.veto = veto

    def before_fit(self, trial: optuna.Trial, arch: object) -> bool:
        self.calls.append(("before", trial.number))
        return not self.veto

    def after_fit(self, trial: optuna.Trial, model: torch.nn.Module, pruned: bool) -> None:
        self.calls.append(("after", trial.number))


def test_hooks_run_around_training_in_order(digits) -> None:
    recorder = _Recorder()
    objective = ArchitectureObjective(
        spaces.create("chain", **SPACE), digits, TrainingConfig(epochs=1), hooks=[recorder]
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2)
    assert recorder.calls == [("before", 0), ("after", 0), ("before", 1), ("after", 1)]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


def test_a_hook_that_vetoes_fails_the_trial_without_training(digits) -> None:
    recorder = _Recorder(veto=True)
    objective = ArchitectureObjective(
        spaces.create("chain", **SPACE), digits, TrainingConfig(epochs=1), hooks=[recorder]
    )
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    assert recorder.calls == [("before", 0)]
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.FAIL
    assert _keys.N_PARAMS not in trial.user_attrs  # fit never ran


def test_an_initial_weights_hook_starts_the_network_from_its_state(digits) -> None:
    space = spaces.create("chain", **SPACE)

    class ZeroStart:
        def initial_weights(self, trial: optuna.Trial) -> dict[str, torch.Tensor]:
            arch = space.suggest(trial)
            model = arch.build(digits.input_shape, digits.num_classes)
            return {k: torch.zeros_like(v) for k, v in model.state_dict().items()}

    objective = ArchitectureObjective(space, digits, TrainingConfig(epochs=1), hooks=[ZeroStart()])
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    # Every tensor came from the hook, and the fresh-from-zero network still trained.
    assert trial.user_attrs[_keys.INHERITED_TENSORS] == trial.user_attrs[_keys.MODEL_TENSORS]
    assert math.isfinite(trial.value)


def test_the_artifact_store_adds_the_drawing_checkpoint_and_inheritance_hooks(
    digits, tmp_path
) -> None:
    from optuna_nas import open_artifact_store

    store = open_artifact_store(tmp_path)
    space = spaces.create("chain", **SPACE)
    plain = ArchitectureObjective(space, digits)
    assert plain.hooks == []
    kinds = [type(h) for h in ArchitectureObjective(space, digits, artifact_store=store).hooks]
    assert kinds == [DrawingHook, CheckpointHook]
    drawings_only = ArchitectureObjective(
        space, digits, artifact_store=store, save_checkpoints=False
    )
    assert [type(h) for h in drawings_only.hooks] == [DrawingHook]
    inheriting = ArchitectureObjective(space, digits, artifact_store=store, inherit_weights=True)
    assert [type(h) for h in inheriting.hooks] == [DrawingHook, CheckpointHook, InheritanceHook]


def test_the_objective_imports_no_sampler() -> None:
    import ast
    from pathlib import Path

    import optuna_nas.study._objective as module

    tree = ast.parse(Path(module.__file__).read_text())
    imported = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(name.startswith("optuna_nas.samplers") for name in imported)
