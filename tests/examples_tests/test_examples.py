"""Runs each example script as a user would, with tiny settings, and checks what it wrote."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_nas import Architecture, data, study_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

TINY_CHAIN = ["--dataset", "digits", "--epochs", "1", "--max-layers", "2", "--filters", "4", "8"]
TINY_NB201 = ["--dataset", "digits", "--space", "nb201", "--channels", "2"]
TINY_NB201 += ["--cells-per-stage", "1", "--epochs", "1", "--device", "cpu"]


def _run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The networks are many tiny ops: extra threads only wait on each other on a busy CPU.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("OPTUNA_NAS_DATA_DIR", None)
    return subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def _line(output: str, prefix: str) -> str:
    """The rest of the single line of ``output`` that starts with ``prefix``."""
    found = [line[len(prefix) :] for line in output.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, f"expected one line starting with {prefix!r} in:\n{output}"
    return found[0]


@pytest.mark.slow
def test_quickstart_searches_and_retrains_the_stored_best(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'quickstart.db'}"
    run = _run(
        "quickstart_mnist1d.py", "--n-trials", "3", "--storage", url, *TINY_CHAIN, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr

    study = optuna.load_study(study_name="quickstart", storage=url)
    assert len(study.trials) == 3
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    best = study.best_trial
    arch = Architecture.from_trial(best)
    assert arch.space_config["max_layers"] == 2
    assert arch.space_config["filters"] == [4, 8]
    assert _line(run.stdout, "Best architecture: ") == str(arch)
    assert _line(run.stdout, "Best trial ").startswith(
        f"#{best.number}: valid accuracy {best.value:.4f}"
    )

    test_line = _line(run.stdout, "Test accuracy: ")
    accuracy = float(test_line.split()[0])
    assert 0.0 <= accuracy <= 1.0
    merged = len(data.load("digits", seed=0).merged_train())
    assert f"retrained on {merged} train+valid examples" in test_line


@pytest.mark.slow
def test_cifar10_gpu_example_runs_on_cpu_with_any_dataset(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gpu.db'}"
    run = _run(
        "cifar10_gpu.py",
        *TINY_NB201,
        "--n-trials",
        "2",
        "--data-fraction",
        "0.5",
        "--resolution",
        "6",
        "--storage",
        url,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert "on digits (1, 6, 6): 647 train / 144 valid images" in run.stdout

    trials = optuna.load_study(study_name="cifar10-gpu", storage=url).trials
    assert len(trials) == 2
    throughput = [t.user_attrs["optuna_nas:samples_per_second"] for t in trials]
    assert all(value > 0 for value in throughput)
    assert _line(run.stdout, "Throughput: median ").startswith(
        f"{statistics.median(throughput):.0f} samples/s over 2 trials"
    )
    assert _line(run.stdout, "Peak GPU memory: ") == "n/a (not trained on CUDA)"
    assert re.fullmatch(r"nb201:(\|[a-z_0-9]+~\d)+\|.*", _line(run.stdout, "Best architecture: "))


def test_cifar10_gpu_example_explains_missing_cifar_files(tmp_path: Path) -> None:
    run = _run("cifar10_gpu.py", "--data-root", str(tmp_path), cwd=tmp_path)
    assert run.returncode == 2
    assert "Traceback" not in run.stderr
    assert run.stderr.startswith("cifar10_gpu.py: error: dataset 'cifar10' not found")
    assert f"{tmp_path / 'cifar-10-batches-py'}/" in run.stderr
    assert "optuna_nas never downloads data" in run.stderr


@pytest.mark.slow
def test_shared_study_runs_trials_from_several_processes(tmp_path: Path) -> None:
    workers, per_worker = 2, 2
    run = _run(
        "shared_study.py",
        "--workers",
        str(workers),
        "--trials-per-worker",
        str(per_worker),
        "--threads-per-worker",
        "1",
        "--device",
        "cpu",
        *TINY_CHAIN,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    # The default storage is a SQLite file in the working directory.
    study = optuna.load_study(
        study_name="shared-study", storage=f"sqlite:///{tmp_path / 'shared_study.db'}"
    )
    trials = study.trials
    assert len(trials) == workers * per_worker
    assert len({t.number for t in trials}) == len(trials)
    assert all(t.state.is_finished() for t in trials)

    pids = {t.user_attrs["worker_pid"] for t in trials}
    assert len(pids) == workers
    by_worker = [t.user_attrs["worker"] for t in trials]
    assert sorted(by_worker) == sorted(list(range(workers)) * per_worker)
    for index in range(workers):
        pid = next(t.user_attrs["worker_pid"] for t in trials if t.user_attrs["worker"] == index)
        assert f"Worker {index} (pid {pid}): {per_worker} trials" in run.stdout
    assert f"Checks passed: {len(trials)} trials, numbers unique, all finished" in run.stdout

    # The workers rebuilt the objective from what the parent stored with the study.
    space, dataset, training = study_settings(study)
    assert space.config["filters"] == [4, 8]
    assert (dataset.name, training.epochs, training.device) == ("digits", 1, "cpu")
    assert all(Architecture.from_trial(t).space == "chain" for t in trials)
