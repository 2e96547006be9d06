"""What each trial of an ArchitectureObjective leaves for optuna-dashboard, and what a full
disk under the artifact folder does to it (a real tmpfs, filled up)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from optuna_nas import (
    ArchitectureObjective,
    TrainingConfig,
    data,
    open_artifact_store,
    spaces,
    write_trial_artifact,
)
from optuna_nas.spaces import ARCH_ATTR, Architecture
from optuna_nas.training import measure_latency

SVG_MIMETYPE = "image/svg+xml"


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, so the test can fill it for real."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 65536)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def _objective(dataset: data.Dataset, store: object) -> ArchitectureObjective:
    space = spaces.create("chain", max_layers=2, filters=[8])
    return ArchitectureObjective(
        space,
        dataset,
        TrainingConfig(epochs=1, batch_size=256, device="cpu"),
        artifact_store=store,  # type: ignore[arg-type]
    )


def _metas(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> list:
    return optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)


def _drawing(study: optuna.Study, trial: optuna.trial.FrozenTrial, store: object) -> str:
    [meta] = [m for m in _metas(study, trial) if m.mimetype == SVG_MIMETYPE]
    assert meta.artifact_id == trial.user_attrs["optuna_nas:architecture_svg"]
    assert meta.filename == "architecture.svg"
    with store.open_reader(meta.artifact_id) as reader:  # type: ignore[attr-defined]
        return reader.read().decode()


def test_each_trial_carries_drawing_curve_size_and_latency(
    tmp_path: Path, digits: data.Dataset, single_thread: None
) -> None:
    store = open_artifact_store(tmp_path / "artifacts")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    study.optimize(_objective(digits, store), n_trials=2)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        arch = Architecture.from_json(trial.user_attrs[ARCH_ATTR])
        assert _drawing(study, trial, store) == arch.to_svg()
        assert sorted(trial.intermediate_values) == [0]
        assert (
            trial.user_attrs["optuna_nas:n_params"] > 0
            and trial.user_attrs["optuna_nas:flops"] > 0
        )
        assert trial.user_attrs["optuna_nas:latency_ms"] > 0


def test_write_trial_artifact_records_nothing_when_the_write_fails(tmp_path: Path) -> None:
    class BrokenStore:
        def __init__(self) -> None:
            self.removed: list[str] = []

        def write(self, artifact_id: str, body: object) -> None:
            raise OSError(errno.EIO, "I/O error")

        def remove(self, artifact_id: str) -> None:
            self.removed.append(artifact_id)

    store = BrokenStore()
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}")
    trial = study.ask()
    with pytest.raises(OSError, match="I/O error"):
        write_trial_artifact(trial, store, b"<svg/>", filename="a.svg", mimetype=SVG_MIMETYPE)  # type: ignore[arg-type]
    assert len(store.removed) == 1
    assert optuna.artifacts.get_all_artifact_meta(trial) == []


def test_full_disk_fails_only_those_trials_and_the_study_goes_on(
    tmp_path: Path,
    tiny_disk: Path,
    digits: data.Dataset,
    single_thread: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_artifact_store(tiny_disk / "artifacts")
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", direction="maximize")
    objective = _objective(digits, store)
    study.optimize(objective, n_trials=1)
    before = set((tiny_disk / "artifacts").iterdir())
    assert before

    filler = _fill(tiny_disk)
    with caplog.at_level(logging.WARNING, logger="optuna_nas"):
        study.optimize(objective, n_trials=2)  # must not raise
    failed = study.trials[1:]
    assert [t.state for t in failed] == [optuna.trial.TrialState.FAIL] * 2
    for trial in failed:
        assert trial.user_attrs["optuna_nas:fail_reason"] == "artifact_write"
        assert "No space left on device" in trial.user_attrs["optuna_nas:artifact_error"]
        assert "--artifact-dir" in trial.user_attrs["optuna_nas:artifact_error"]
        assert _metas(study, trial) == []  # no record of a file that is not there
        assert trial.intermediate_values == {}  # failed before training
    assert set((tiny_disk / "artifacts").iterdir()) == before  # no partial files left
    assert any("trial 1 fails" in r.getMessage() for r in caplog.records)

    filler.unlink()
    study.optimize(objective, n_trials=1)
    last = study.trials[-1]
    assert last.state == optuna.trial.TrialState.COMPLETE
    assert _drawing(study, last, store) == Architecture.from_trial(last).to_svg()


def test_measure_latency_changes_nothing_in_the_model() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv1d(1, 4, 3), nn.BatchNorm1d(4), nn.Dropout(0.5), nn.Flatten())
    model.train()
    x = torch.randn(8, 1, 16)
    stats = model[1].running_mean.clone()
    rng = torch.get_rng_state()
    latency = measure_latency(model, x, repeats=3)
    assert latency > 0
    assert model.training
    assert torch.equal(model[1].running_mean, stats)
    assert torch.equal(torch.get_rng_state(), rng)
    with pytest.raises(ValueError, match="repeats"):
        measure_latency(model, x, repeats=0)
