"""GPU memory reservations of concurrent trials: the estimate, the ledger, ``fit``."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import optuna
import pytest
import torch
from torch import nn

from optuna_nas import _keys, data, spaces, training
from optuna_nas.training import GpuMemoryLedger, estimate_training_memory
from optuna_nas.workers import WorkerConfig, WorkerSlot, worker_environment


def test_estimate_counts_parameters_four_times_and_activations_per_example() -> None:
    model = nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 3))
    n_params = sum(p.numel() for p in model.parameters())
    small = estimate_training_memory(model, (10,), batch_size=1)
    large = estimate_training_memory(model, (10,), batch_size=101)
    per_example = (large - small) / 100
    # Saved for backward per example: the input of each Linear (10 and 20 floats), the
    # ReLU's output (20 floats), the logits for the loss (3, and its softmax 3), plus
    # the input itself (10 floats): tens of floats, not hundreds.
    assert 4 * 30 <= per_example <= 4 * 100
    assert small - per_example == pytest.approx(4 * 4 * n_params, abs=4)


def test_estimate_leaves_the_model_untouched() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    state = torch.random.get_rng_state()
    estimate_training_memory(model, (4,), batch_size=32)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), state)


def test_estimate_grows_with_the_architecture() -> None:
    space = spaces.create("nb201", channels=8, cells_per_stage=1)
    rng = __import__("numpy").random.RandomState(0)
    light = space.from_params({k: "none" for k in space.sample_params(rng)})
    heavy = space.from_params({k: "nor_conv_3x3" for k in space.sample_params(rng)})
    shape = (3, 16, 16)
    assert estimate_training_memory(
        heavy.build(shape, 10), shape, 64
    ) > 1.5 * estimate_training_memory(light.build(shape, 10), shape, 64)
    with pytest.raises(ValueError, match="batch_size"):
        estimate_training_memory(nn.Linear(2, 2), (2,), 0)


def _hold(path: str, capacity: int, nbytes: int, seconds: float, log: str, at: float) -> None:
    ledger = GpuMemoryLedger(path, capacity, poll_interval=0.02)
    time.sleep(max(0.0, at - time.time()))
    with ledger.reserve(nbytes, f"pid {os.getpid()}") as held:
        start = time.time()
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(json.dumps([nbytes, start, time.time(), held.alone]) + "\n")


def _run(path: Path, capacity: int, jobs: list[tuple[int, float]], log: Path) -> list[list]:
    # Forked: the children touch no torch state, only the ledger file.
    ctx = multiprocessing.get_context("fork")
    processes = []
    start = time.time() + 0.5
    for i, (nbytes, seconds) in enumerate(jobs):
        # They ask in this order, 0.15 s apart.
        args = (str(path), capacity, nbytes, seconds, str(log), start + 0.15 * i)
        p = ctx.Process(target=_hold, args=args)
        p.start()
        processes.append(p)
    for p in processes:
        p.join(60)
        assert p.exitcode == 0
    return [json.loads(line) for line in log.read_text().splitlines()]


def _overlap(a: list, b: list) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def test_processes_wait_for_memory_and_never_exceed_the_budget(tmp_path: Path) -> None:
    # Three trials of 40 on a budget of 100: two run together, the third waits.
    rows = _run(tmp_path / "gpu-0.json", 100, [(40, 1.0), (40, 1.0), (40, 0.3)], tmp_path / "l")
    assert len(rows) == 3
    for t in sorted(r[1] for r in rows):
        assert sum(r[0] for r in rows if r[1] <= t < r[2]) <= 100
    first, second = sorted(rows, key=lambda r: r[1])[:2]
    assert _overlap(first, second)  # what fits runs concurrently
    ledger = GpuMemoryLedger(tmp_path / "gpu-0.json", 100)
    assert ledger.reservations() == {}  # all released


def test_a_trial_larger_than_the_budget_runs_alone_and_is_not_starved(tmp_path: Path) -> None:
    # A small trial holds memory; a huge one arrives, then a stream of small ones. The huge
    # one runs alone, and no small one that arrived after it overtakes it.
    jobs = [(30, 0.8), (500, 0.5), (30, 0.3), (30, 0.3)]
    rows = _run(tmp_path / "gpu-0.json", 100, jobs, tmp_path / "l")
    huge = next(r for r in rows if r[0] == 500)
    assert huge[3] is True
    assert not any(_overlap(huge, r) for r in rows if r is not huge)
    first = min(rows, key=lambda r: r[1])
    later = [r for r in rows if r is not huge and r is not first]
    assert all(r[1] >= huge[2] for r in later)


def test_a_dead_processes_reservation_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gpu-0.json"
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_hold, args=(str(path), 100, 90, 30.0, str(tmp_path / "l"), 0.0))
    p.start()
    ledger = GpuMemoryLedger(path, 100, poll_interval=0.02)
    deadline = time.time() + 20
    while not ledger.reservations() and time.time() < deadline:
        time.sleep(0.05)
    assert len(ledger.reservations()) == 1
    p.kill()
    p.join()
    with ledger.reserve(90) as held:  # would wait 30 s if the dead holder still counted
        assert held.waited_seconds < 5


def test_fit_reserves_its_estimate_and_records_it(tmp_path: Path, device: torch.device) -> None:
    dataset = data.load("digits")
    space = spaces.create("chain", max_layers=2)
    study = optuna.create_study(direction="maximize")
    ledger = GpuMemoryLedger(tmp_path / "gpu-0.json", capacity_bytes=10 * 2**30)

    def objective(trial: optuna.Trial) -> float:
        model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
        result = training.fit(
            model, dataset, trial=trial, epochs=1, device=device, memory_ledger=ledger
        )
        return result.valid_accuracy

    study.optimize(objective, n_trials=2)
    for t in study.trials:
        assert t.state == optuna.trial.TrialState.COMPLETE
        assert t.user_attrs[_keys.ESTIMATED_GPU_MEMORY_MB] > 0
        assert t.user_attrs[_keys.GPU_MEMORY_WAIT_SECONDS] < 5
        assert t.user_attrs[_keys.GPU_ALONE] is False
    assert ledger.reservations() == {}


def test_fit_without_a_ledger_on_the_cpu_reserves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(training.LEDGER_DIR_ENV, str(tmp_path))
    dataset = data.load("digits")
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    model = spaces.create("chain", max_layers=1).suggest(trial).build(dataset.input_shape, 10)
    training.fit(model, dataset, trial=trial, epochs=1, device="cpu")
    # The ledger is for GPUs: the CPU has no memory to share out among trials.
    assert _keys.ESTIMATED_GPU_MEMORY_MB not in trial.user_attrs
    assert not list(tmp_path.iterdir())


def test_a_pool_gives_gpu_workers_the_ledger_folder() -> None:
    config = WorkerConfig("sqlite:///x.db", "s", n_trials=1)
    gpu = worker_environment(config, WorkerSlot(0, "3"), 2, {})
    assert gpu[training.LEDGER_DIR_ENV] and gpu["OPTUNA_NAS_GPU_LEDGER_ID"] == "3"
    off = worker_environment(config, WorkerSlot(0, "3"), 2, {training.LEDGER_DIR_ENV: ""})
    assert off[training.LEDGER_DIR_ENV] == ""
    cpu = worker_environment(config, WorkerSlot(0), 2, {"OPTUNA_NAS_GPU_LEDGER_ID": "1"})
    assert "OPTUNA_NAS_GPU_LEDGER_ID" not in cpu


class _TokenModel(nn.Module):
    """Takes token ids: a random float probe would crash it."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x).mean(1))


def test_the_estimate_takes_real_inputs_and_a_failing_probe_is_reported(tmp_path: Path) -> None:
    model = _TokenModel()
    tokens = torch.randint(0, 50, (4, 6))
    assert estimate_training_memory(model, tokens, batch_size=16) > 0
    with pytest.raises(ValueError, match="probe needs 2"):
        estimate_training_memory(model, tokens[:1], batch_size=16)

    ledger = GpuMemoryLedger(tmp_path / "sub" / "gpu-0.json", capacity_bytes=2**30)
    study = optuna.create_study()
    trial = study.ask()
    from optuna_nas.training._memory import reserve_for_training

    with reserve_for_training(ledger, model, (6,), 16, trial) as held:  # floats: crashes
        assert held is None
    assert "indices" in trial.user_attrs[_keys.GPU_MEMORY_ESTIMATE_ERROR]
    with reserve_for_training(ledger, model, tokens, 16, trial) as held:
        assert held is not None and held.nbytes > 0
