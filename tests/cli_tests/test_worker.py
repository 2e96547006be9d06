from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from optuna_nas import DatasetConfig, TrainingConfig, create_study, open_storage, spaces
from optuna_nas.cli import main

# Heartbeats every second, a trial is lost after 3 s without one: quick enough for a test.
FAST_HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "3"]


def _cli() -> list[str]:
    exe = shutil.which("optuna-nas", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "optuna_nas"]


def _study(url: str, name: str, epochs: int) -> None:
    create_study(
        storage=open_storage(url),
        study_name=name,
        space=spaces.create("chain", filters=[4, 8], max_layers=2),
        dataset=DatasetConfig("digits", {"seed": 0}),
        training=TrainingConfig(epochs=epochs, batch_size=64),
        sampler="random",
        pruner="none",
        seed=0,
    )


def _pool(url: str, name: str, log: Path, *flags: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("wb") as out:
        return subprocess.Popen(
            [*_cli(), "worker", "--storage", url, "--study-name", name, *FAST_HEARTBEAT, *flags],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _wait_for(
    url: str, name: str, condition: Callable[[list[FrozenTrial]], bool], pool: subprocess.Popen
) -> list[FrozenTrial]:
    storage = open_storage(url)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert pool.poll() is None, "the pool exited early"
        trials = storage.get_all_trials(storage.get_study_id_from_name(name))
        if condition(trials):
            return trials
        time.sleep(0.2)
    pool.kill()
    raise AssertionError("timed out")


def _training(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    return [t for t in trials if t.state == TrialState.RUNNING and t.intermediate_values]


def test_worker_refuses_an_unreachable_database_without_showing_the_password(
    capsys: pytest.CaptureFixture[str], postgres_refusal: str
) -> None:
    url = "postgresql://nas:s3cret@127.0.0.1:1/db"
    assert main(["worker", "--storage", url, "--study-name", "s"]) == 2
    err = capsys.readouterr().err
    assert postgres_refusal in err and "***" in err
    assert "s3cret" not in err


def test_worker_names_the_studies_a_storage_holds(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _study(sqlite_url, "present", epochs=1)
    assert main(["worker", "--storage", sqlite_url, "--study-name", "absent"]) == 2
    assert "no study named 'absent'" in capsys.readouterr().err
    assert main(["worker", "--storage", sqlite_url, "--study-name", "present", "--gpus", "0,0"])
    assert "distinct GPU ids" in capsys.readouterr().err


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_killed_worker_trial_is_failed_and_retried_once(
    database: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if database == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.db'}"
    else:
        url = request.getfixturevalue("postgresql_url")
    name = f"kill-{uuid.uuid4().hex[:8]}"
    _study(url, name, epochs=40)
    log = tmp_path / "pool.log"
    pool = _pool(url, name, log, "--jobs", "2", "--total-trials", "3")

    def early(trials: list[FrozenTrial]) -> list[FrozenTrial]:
        # A trial far from its last epoch, so that it cannot finish before the kill lands.
        return [t for t in _training(trials) if len(t.intermediate_values) <= 10]

    try:
        running = _wait_for(url, name, lambda ts: len(early(ts)) >= 1, pool)
        victim = early(running)[0]
        os.kill(victim.user_attrs["optuna_nas:worker"]["pid"], signal.SIGKILL)
        assert pool.wait(timeout=180) == 0, log.read_text()
    finally:
        if pool.poll() is None:
            pool.kill()
    output = log.read_text()
    assert "was killed by SIGKILL" in output and "restarting slot" in output, output

    study = optuna.load_study(study_name=name, storage=open_storage(url))
    trials = study.get_trials()
    lost = trials[victim.number]
    assert lost.state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, [(t.number, t.state, t.system_attrs) for t in trials]
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == lost.params
    # Every trial ran in a pool slot that saw no GPU (CPU workers).
    for t in trials:
        assert t.user_attrs["optuna_nas:worker"]["slot"] in (0, 1)
        assert t.user_attrs["optuna_nas:worker"]["cuda_visible_devices"] == ""
    # Three trials counted over both workers, the lost one replaced by its retry; workers
    # that start a trial at the same instant may overshoot by one trial each (documented).
    completed = [t.state for t in trials].count(TrialState.COMPLETE)
    assert 3 <= completed <= 3 + 2
    assert len(trials) == completed + 1  # and the lost one, failed


def test_sigterm_stops_the_pool_and_no_trial_stays_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    _study(url, "s", epochs=400)
    log = tmp_path / "pool.log"
    pool = _pool(url, "s", log, "--jobs", "2", "--stop-timeout", "60")
    try:
        _wait_for(url, "s", lambda ts: len(_training(ts)) == 2, pool)
        pool.send_signal(signal.SIGTERM)
        status = pool.wait(timeout=120)
    finally:
        if pool.poll() is None:
            pool.kill()
    output = log.read_text()
    assert status == 128 + signal.SIGTERM, output
    assert output.count("stopped after SIGTERM") == 2, output

    trials = optuna.load_study(study_name="s", storage=url).get_trials()
    interrupted = [t for t in trials if t.state == TrialState.FAIL]
    assert len(interrupted) == 2
    assert all(t.user_attrs["optuna_nas:fail_reason"] == "interrupted" for t in interrupted)
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert sorted(t.user_attrs["optuna_nas:retry_of"] for t in waiting) == [
        t.number for t in interrupted
    ]
    assert not [t for t in trials if t.state == TrialState.RUNNING]


def test_search_records_what_a_worker_rebuilds(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["search", "--n-trials", "1", "--dataset", "digits", "--epochs", "1"]
    args += ["--space-arg", "max_layers=1", "--sampler", "evolution", "--pruner", "sha"]
    assert main([*args, "--seed", "7", "--study-name", "s", "--no-progress"]) == 0
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'optuna_nas.db'}")
    assert study.user_attrs["optuna_nas:sampler"] == {"name": "evolution", "seed": 7}
    assert study.user_attrs["optuna_nas:pruner"] == {"name": "sha"}
