from __future__ import annotations

import io
import pathlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from torch import nn

from optuna_nas import (
    ArchitectureObjective,
    SafeFileSystemArtifactStore,
    TrainingConfig,
    data,
    open_artifact_store,
    spaces,
)
from optuna_nas.samplers import RegularizedEvolutionSampler
from optuna_nas.training import (
    CHECKPOINT_ATTR,
    INHERITED_ATTR,
    MODEL_TENSORS_ATTR,
    PARTIAL_ATTR,
    PEAK_LR_ATTR,
    InheritanceWarning,
    evaluate,
    fit,
    inherit_weights,
    load_checkpoint,
    save_checkpoint,
    seed_everything,
)


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> Iterator[None]:
    yield


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits", seed=0)


def _net(classes: int = 10, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv1d(1, 4, 3),
        nn.BatchNorm1d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool1d(1),
        nn.Flatten(),
        nn.Linear(4, classes),
    )


# inherit_weights: a pure function on a module and a state dict.


def test_copies_every_tensor_whose_name_and_shape_match() -> None:
    parent, child = _net(10, seed=0), _net(5, seed=1)
    parent[1].running_mean.fill_(0.5)
    parent[1].num_batches_tracked.fill_(7)
    head_before = child[5].weight.clone()

    copied = inherit_weights(child, parent.state_dict(), partial=False)

    # conv weight+bias, batch-norm weight, bias, running mean, var and counter; not the head.
    assert copied == 7
    assert len(child.state_dict()) == 9
    for name in ("0.weight", "0.bias", "1.weight", "1.bias"):
        assert torch.equal(child.state_dict()[name], parent.state_dict()[name])
    assert torch.equal(child[1].running_mean, torch.full((4,), 0.5))
    assert int(child[1].num_batches_tracked) == 7
    assert torch.equal(child[5].weight, head_before)
    assert child[0].weight.requires_grad


def test_identical_architectures_copy_everything_and_extra_names_are_ignored() -> None:
    parent, child = _net(seed=0), _net(seed=1)
    state = {**parent.state_dict(), "not.in.child": torch.ones(3)}
    assert inherit_weights(child, state) == len(child.state_dict())
    x = torch.randn(2, 1, 8)
    parent.eval(), child.eval()
    assert torch.equal(parent(x), child(x))


def test_nothing_matches_gives_zero_and_leaves_the_model_alone() -> None:
    child = _net(seed=1)
    before = {k: v.clone() for k, v in child.state_dict().items()}
    assert inherit_weights(child, {"0.weight": torch.zeros(9, 9)}) == 0
    assert inherit_weights(child, {}) == 0
    # A float is never copied into an integer buffer of the same shape.
    assert inherit_weights(child, {"1.num_batches_tracked": torch.tensor(3.7)}) == 0
    for name, value in child.state_dict().items():
        assert torch.equal(value, before[name])


# Checkpoints through Optuna's artifact API.


@pytest.fixture
def store(tmp_path: Path) -> SafeFileSystemArtifactStore:
    return open_artifact_store(tmp_path / "artifacts")


def _saved(store: SafeFileSystemArtifactStore) -> tuple[optuna.Study, str, nn.Module]:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = _net()
    artifact_id = save_checkpoint(trial, model, store)
    study.tell(trial, 0.5)
    return study, artifact_id, model


def test_checkpoint_round_trip(store: SafeFileSystemArtifactStore) -> None:
    study, artifact_id, model = _saved(store)
    frozen = study.trials[0]
    assert frozen.user_attrs[CHECKPOINT_ATTR] == artifact_id
    assert (store.root / artifact_id).is_file()
    metas = optuna.artifacts.get_all_artifact_meta(frozen, storage=study._storage)
    assert [(m.artifact_id, m.filename) for m in metas] == [(artifact_id, "checkpoint.pt")]

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = load_checkpoint(study, 0, store)
    assert state is not None
    assert state.keys() == model.state_dict().keys()
    for name, value in model.state_dict().items():
        assert torch.equal(state[name], value)


def _overwrite(store: SafeFileSystemArtifactStore, artifact_id: str, payload: bytes) -> None:
    store.write(artifact_id, io.BytesIO(payload))


def test_missing_artifact_file_warns_and_gives_none(store: SafeFileSystemArtifactStore) -> None:
    study, artifact_id, _ = _saved(store)
    store.remove(artifact_id)
    with pytest.warns(InheritanceWarning, match="cannot read checkpoint.*training from scratch"):
        assert load_checkpoint(study, 0, store) is None


def test_truncated_checkpoint_warns_and_gives_none(store: SafeFileSystemArtifactStore) -> None:
    study, artifact_id, _ = _saved(store)
    with store.open_reader(artifact_id) as reader:
        payload = reader.read()
    _overwrite(store, artifact_id, payload[: len(payload) // 2])
    with pytest.warns(InheritanceWarning, match="corrupt or not safe to load"):
        assert load_checkpoint(study, 0, store) is None


@pytest.mark.parametrize("payload", [b"", b"not a checkpoint", b'{"0.weight": [1, 2]}'])
def test_foreign_file_warns_and_gives_none(
    store: SafeFileSystemArtifactStore, payload: bytes
) -> None:
    study, artifact_id, _ = _saved(store)
    _overwrite(store, artifact_id, payload)
    with pytest.warns(InheritanceWarning, match="corrupt or not safe to load"):
        assert load_checkpoint(study, 0, store) is None


def test_safe_types_that_are_not_a_tensor_dict_are_refused(
    store: SafeFileSystemArtifactStore,
) -> None:
    study, artifact_id, _ = _saved(store)
    for obj in ([torch.zeros(2)], {"0.weight": torch.zeros(2), "epoch": 3}):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        _overwrite(store, artifact_id, buffer.getvalue())
        with pytest.warns(InheritanceWarning, match="not a dict of tensors"):
            assert load_checkpoint(study, 0, store) is None


class _Touch:
    """Unpickling this object would create a file: a stand-in for arbitrary code."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (pathlib.Path.touch, (self.path,))


def test_pickled_arbitrary_object_is_never_unpickled(
    store: SafeFileSystemArtifactStore, tmp_path: Path
) -> None:
    study, artifact_id, _ = _saved(store)
    marker = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"0.weight": torch.zeros(4, 1, 3), "payload": _Touch(marker)}, buffer)
    _overwrite(store, artifact_id, buffer.getvalue())
    with pytest.warns(InheritanceWarning, match="not safe to load"):
        assert load_checkpoint(study, 0, store) is None
    assert not marker.exists()


def test_trial_without_checkpoint_or_unknown_trial(store: SafeFileSystemArtifactStore) -> None:
    study = optuna.create_study()
    study.tell(study.ask(), 1.0)
    with pytest.warns(InheritanceWarning, match="has no checkpoint"):
        assert load_checkpoint(study, 0, store) is None
    with pytest.warns(InheritanceWarning, match="trial 5 .* does not exist"):
        assert load_checkpoint(study, 5, store) is None


def test_bad_artifact_id_in_storage_warns(
    store: SafeFileSystemArtifactStore, device: torch.device
) -> None:
    study = optuna.create_study()
    trial = study.ask()
    trial.set_user_attr(CHECKPOINT_ATTR, "../../etc/passwd")
    study.tell(trial, 1.0)
    with pytest.warns(InheritanceWarning, match="cannot read checkpoint"):
        assert load_checkpoint(study, 0, store) is None


# fit(init_state_dict=..., device=device)


def _conv(index: int, filters: int, stride: int = 1) -> dict[str, Any]:
    return {
        f"layer{index}/{key}": value
        for key, value in (
            ("op", "conv"),
            ("filters", filters),
            ("kernel_size", 3),
            ("stride", stride),
            ("dilation", 1),
        )
    }


CONV_ARCH = {"n_layers": 2, **_conv(0, 16), **_conv(1, 32, stride=2)}


def _build(dataset: data.Dataset, arch: dict[str, Any], seed: int) -> nn.Module:
    seed_everything(seed)
    space = spaces.create("chain")
    return space.from_params(arch).build(dataset.input_shape, dataset.num_classes)


def test_fit_starts_the_child_from_the_parent_weights(
    digits: data.Dataset, device: torch.device
) -> None:
    parent = _build(digits, CONV_ARCH, seed=0)
    fit(parent, digits, epochs=4, device=device)
    parent_accuracy = evaluate(parent, digits.valid, "cpu")
    assert parent_accuracy > 0.5

    # A learning rate too small to move the weights: the first epoch shows the start point.
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    child = _build(digits, CONV_ARCH, seed=1)
    result = fit(
        child,
        digits,
        trial=trial,
        epochs=1,
        lr=1e-9,
        device=device,
        init_state_dict=parent.state_dict(),
    )
    scratch = fit(_build(digits, CONV_ARCH, seed=1), digits, epochs=1, lr=1e-9, device=device)

    total = len(child.state_dict())
    assert result.inherited_tensors == total
    assert trial.user_attrs[INHERITED_ATTR] == total
    assert trial.user_attrs[MODEL_TENSORS_ATTR] == total
    assert abs(result.valid_accuracy - parent_accuracy) < 0.03
    assert scratch.valid_accuracy < parent_accuracy - 0.3
    assert scratch.inherited_tensors is None


def test_fit_inherits_only_matching_layers_of_a_mutated_child(
    digits: data.Dataset, device: torch.device
) -> None:
    parent = _build(digits, CONV_ARCH, seed=0)
    mutated = {**CONV_ARCH, **_conv(1, 64, stride=2)}
    child = _build(digits, mutated, seed=1)
    result = fit(
        child,
        digits,
        epochs=1,
        device=device,
        init_state_dict=parent.state_dict(),
        inherit_partial=False,
    )
    total = len(child.state_dict())
    assert 0 < result.inherited_tensors < total  # type: ignore[operator]
    assert result.partially_inherited_tensors == 0
    assert result.inherited_tensors == inherit_weights(
        _build(digits, mutated, 2), parent.state_dict(), partial=False
    )


def test_fit_transfers_a_widened_layer_in_part_by_default(
    digits: data.Dataset, device: torch.device
) -> None:
    parent = _build(digits, CONV_ARCH, seed=0)
    mutated = {**CONV_ARCH, **_conv(1, 64, stride=2)}
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    child = _build(digits, mutated, seed=1)
    result = fit(
        child, digits, trial=trial, epochs=1, device=device, init_state_dict=parent.state_dict()
    )
    total = len(child.state_dict())
    # layer1's conv weight, its batch norm's scale, shift, mean and variance, and the
    # classifier's weight change shape; everything starts from the parent.
    assert result.inherited_tensors == total
    assert result.partially_inherited_tensors == 6
    assert trial.user_attrs[INHERITED_ATTR] == total
    assert trial.user_attrs[PARTIAL_ATTR] == 6


def test_a_mutation_that_changes_the_depth_keeps_the_classifier(digits: data.Dataset) -> None:
    # The chain space names its modules layer0, layer1, ... and classifier, so adding or
    # removing a layer renames nothing: a shallower child gets every tensor of its parent.
    deeper = {**CONV_ARCH, "n_layers": 3, **_conv(2, 32)}
    parent = _build(digits, deeper, seed=0)
    child = _build(digits, CONV_ARCH, seed=1)
    assert not torch.equal(child.classifier.linear.weight, parent.classifier.linear.weight)

    assert inherit_weights(child, parent.state_dict()) == len(child.state_dict())
    assert torch.equal(child.classifier.linear.weight, parent.classifier.linear.weight)
    # The other way round, only the new layer starts fresh.
    grown = _build(digits, deeper, seed=2)
    fresh = {n: t.clone() for n, t in grown.state_dict().items() if n.startswith("layer2.")}
    copied = inherit_weights(grown, child.state_dict())
    assert copied == len(grown.state_dict()) - len(fresh)
    assert all(torch.equal(grown.state_dict()[n], t) for n, t in fresh.items())


def _largest_move(model: nn.Module, start: dict[str, torch.Tensor]) -> float:
    return max((p.detach() - start[n]).abs().max().item() for n, p in model.named_parameters())


def test_inherited_child_trains_at_the_scaled_peak_learning_rate(
    digits: data.Dataset, device: torch.device
) -> None:
    parent = _build(digits, CONV_ARCH, seed=0)
    start = {n: t.clone() for n, t in parent.state_dict().items()}
    moves = {}
    for scale in (1.0, 1e-6):
        study = optuna.create_study(direction="maximize")
        trial = study.ask()
        child = _build(digits, CONV_ARCH, seed=1)
        fit(
            child,
            digits,
            trial=trial,
            epochs=1,
            lr=3e-3,
            device=device,
            init_state_dict=start,
            inherit_lr_scale=scale,
        )
        assert trial.user_attrs[PEAK_LR_ATTR] == pytest.approx(3e-3 * scale)
        moves[scale] = _largest_move(child, start)
    # Adam moves a weight by about the learning rate per step, whatever the gradient.
    assert moves[1.0] > 1e-3
    assert moves[1e-6] < 1e-6

    # A mutated layer starts fresh and trains at the full rate; the inherited ones do not.
    mutated = _build(digits, {**CONV_ARCH, **_conv(1, 64, stride=2)}, seed=1)
    own = {n: t.clone() for n, t in mutated.state_dict().items()}
    fit(mutated, digits, epochs=1, device=device, init_state_dict=start, inherit_lr_scale=1e-6)
    for name, param in mutated.named_parameters():
        inherited = name.startswith("layer0.")
        before = start[name] if inherited else own[name]
        moved = (param.detach() - before).abs().max().item()
        assert moved < 1e-6 if inherited else moved > 1e-4, name

    # Nothing matched: the child is trained from scratch, at the full rate.
    foreign = {n: t for n, t in _net(10).state_dict().items()}
    child = _build(digits, CONV_ARCH, seed=1)
    own = {n: t.clone() for n, t in child.state_dict().items()}
    result = fit(
        child,
        digits,
        epochs=1,
        lr=3e-3,
        device=device,
        init_state_dict=foreign,
        inherit_lr_scale=1e-6,
    )
    assert result.inherited_tensors == 0
    assert _largest_move(child, own) > 1e-3


@pytest.mark.parametrize("scale", [0.0, -0.5, float("nan")])
def test_non_positive_inherit_lr_scale_is_refused(
    digits: data.Dataset, scale: float, device: torch.device
) -> None:
    model = _build(digits, CONV_ARCH, seed=0)
    with pytest.raises(ValueError, match="inherit_lr_scale must be positive"):
        fit(model, digits, epochs=1, device=device, inherit_lr_scale=scale)
    with pytest.raises(ValueError, match="inherit_lr_scale must be positive"):
        ArchitectureObjective(spaces.create("chain"), digits, inherit_lr_scale=scale)


# ArchitectureObjective with a real evolution sampler, SQLite and an artifact folder.


def test_objective_saves_checkpoints_and_children_inherit(
    device: torch.device, digits: data.Dataset, sqlite_url: str, tmp_path: Path
) -> None:
    store = open_artifact_store(tmp_path / "artifacts")
    objective = ArchitectureObjective(
        spaces.create("chain", max_layers=2, filters=[8, 16]),
        digits,
        TrainingConfig(epochs=1, device=device.type),
        artifact_store=store,
        inherit_weights=True,
        inherit_lr_scale=0.5,
    )
    study = optuna.create_study(
        storage=sqlite_url,
        direction="maximize",
        sampler=RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", InheritanceWarning)
        study.optimize(objective, n_trials=4)

    trials = study.trials
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        assert (store.root / t.user_attrs[CHECKPOINT_ATTR]).is_file()
    assert INHERITED_ATTR not in trials[0].user_attrs
    children = [t for t in trials if "optuna_nas:parent_trial" in t.user_attrs]
    assert [t.number for t in children] == [2, 3]
    for child in children:
        assert 0 < child.user_attrs[INHERITED_ATTR] <= child.user_attrs[MODEL_TENSORS_ATTR]
        assert child.user_attrs[PEAK_LR_ATTR] == pytest.approx(0.5 * TrainingConfig().lr)

    # Every parent's checkpoint disappears: the next child warns and trains from scratch.
    for path in store.root.iterdir():
        path.unlink()
    reloaded = optuna.load_study(
        study_name=study.study_name,
        storage=sqlite_url,
        sampler=RegularizedEvolutionSampler(population_size=2, sample_size=2, seed=1),
    )
    with pytest.warns(InheritanceWarning, match="cannot read checkpoint"):
        reloaded.optimize(objective, n_trials=1)
    last = reloaded.trials[-1]
    assert last.state == optuna.trial.TrialState.COMPLETE
    assert "optuna_nas:parent_trial" in last.user_attrs
    assert INHERITED_ATTR not in last.user_attrs
    assert (store.root / last.user_attrs[CHECKPOINT_ATTR]).is_file()


def test_objective_without_store_cannot_inherit(digits: data.Dataset) -> None:
    with pytest.raises(ValueError, match="needs an artifact store"):
        ArchitectureObjective(spaces.create("chain"), digits, inherit_weights=True)


def test_objective_cannot_inherit_without_saving_checkpoints(
    digits: data.Dataset, tmp_path: Path
) -> None:
    store = open_artifact_store(tmp_path / "artifacts")
    with pytest.raises(ValueError, match="save_checkpoints"):
        ArchitectureObjective(
            spaces.create("chain"),
            digits,
            artifact_store=store,
            inherit_weights=True,
            save_checkpoints=False,
        )
