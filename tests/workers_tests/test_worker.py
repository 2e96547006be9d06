from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from torch import nn

from optuna_nas import (
    ArchitectureObjective,
    DatasetConfig,
    OOMRetryCallback,
    TrainingConfig,
    WorkerConfig,
    WorkerError,
    WorkerSlot,
    _keys,
    create_study,
    data,
    open_storage,
    plan_slots,
    run_worker,
    spaces,
)
from optuna_nas.study import trials_counted
from optuna_nas.training import FAIL_REASON_ATTR
from optuna_nas.workers import load_worker_study, worker_environment

SPACE = {"filters": [4, 8], "max_layers": 2}


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits")


def _study(url: str, name: str = "s", epochs: int = 1, sampler: str = "random") -> optuna.Study:
    return create_study(
        storage=url,
        study_name=name,
        space=spaces.create("chain", **SPACE),
        dataset=DatasetConfig("digits", {"seed": 0}),
        training=TrainingConfig(epochs=epochs, batch_size=64, device="cpu"),
        sampler=sampler,
        pruner="none",
        seed=3,
    )


def test_plan_slots_gives_each_gpu_its_jobs() -> None:
    assert plan_slots("none", jobs=3) == [WorkerSlot(0), WorkerSlot(1), WorkerSlot(2)]
    assert plan_slots("auto", jobs=2) == [WorkerSlot(0), WorkerSlot(1)]
    if torch.cuda.device_count() == 0:
        assert plan_slots("auto") == [WorkerSlot(0)]
        with pytest.raises(WorkerError, match=r"sees none.*--gpus none"):
            plan_slots("0,1", jobs_per_gpu=2)
    else:
        slots = plan_slots("0", jobs_per_gpu=2)
        assert slots == [WorkerSlot(0, "0"), WorkerSlot(1, "0")]
    with pytest.raises(WorkerError, match="distinct GPU ids"):
        plan_slots("0,0")
    with pytest.raises(WorkerError, match="either --gpus or --jobs"):
        plan_slots("0", jobs=2)


def test_each_slot_sees_only_its_gpu_and_gets_the_config_in_its_environment() -> None:
    config = WorkerConfig("postgresql://nas:s3cret@db/nas", "s", n_trials=8)
    base = {"PATH": "/usr/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    gpu = worker_environment(config, WorkerSlot(3, "1"), 4, base)
    assert gpu["CUDA_VISIBLE_DEVICES"] == "1"
    assert gpu["OPTUNA_NAS_WORKER_SLOT"] == "3"
    assert WorkerConfig.from_json(gpu["OPTUNA_NAS_WORKER_CONFIG"]) == config
    assert gpu["PATH"] == "/usr/bin" and int(gpu["OMP_NUM_THREADS"]) >= 1
    cpu = worker_environment(config, WorkerSlot(0), 2, {**base, "OMP_NUM_THREADS": "3"})
    assert cpu["CUDA_VISIBLE_DEVICES"] == ""  # a CPU worker cannot touch a GPU
    assert cpu["OMP_NUM_THREADS"] == "3"
    assert "OPTUNA_NAS_WORKER_GPU" not in cpu
    assert base["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # the caller's mapping is untouched


def test_worker_config_refuses_a_grace_period_within_the_heartbeat() -> None:
    with pytest.raises(WorkerError, match="grace period longer than the interval"):
        WorkerConfig("sqlite:///x.db", "s", heartbeat_interval=10, grace_period=10)
    config = WorkerConfig("sqlite:///x.db", "s", n_trials=4, seed=1)
    assert WorkerConfig.from_json(config.to_json()) == config


def test_study_records_sampler_and_pruner_for_workers(sqlite_url: str) -> None:
    study = _study(sqlite_url, sampler="evolution")
    assert study.user_attrs[_keys.STUDY_SAMPLER] == {"name": "evolution", "seed": 3}
    assert study.user_attrs[_keys.STUDY_PRUNER] == {"name": "none"}
    storage = optuna.storages.get_storage(sqlite_url)
    loaded = load_worker_study(storage, WorkerConfig(sqlite_url, "s"), WorkerSlot(0))
    assert type(loaded.sampler).__name__ == "RegularizedEvolutionSampler"
    assert isinstance(loaded.pruner, optuna.pruners.NopPruner)
    override = WorkerConfig(sqlite_url, "s", sampler="random", pruner="median")
    loaded = load_worker_study(storage, override, WorkerSlot(1))
    assert type(loaded.sampler).__name__ == "DeduplicatingRandomSampler"
    assert isinstance(loaded.pruner, optuna.pruners.MedianPruner)
    with pytest.raises(WorkerError, match="unknown sampler 'nope'"):
        load_worker_study(storage, WorkerConfig(sqlite_url, "s", sampler="nope"), WorkerSlot(0))
    with pytest.raises(WorkerError, match=r"no study named 'other'.*holds: s"):
        load_worker_study(storage, WorkerConfig(sqlite_url, "other"), WorkerSlot(0))


def test_study_created_with_objects_needs_names_for_workers(sqlite_url: str) -> None:
    create_study(
        storage=sqlite_url,
        study_name="objects",
        space=spaces.create("chain", **SPACE),
        dataset=DatasetConfig("digits"),
        training=TrainingConfig(epochs=1),
        sampler=optuna.samplers.RandomSampler(),
    )
    storage = optuna.storages.get_storage(sqlite_url)
    with pytest.raises(WorkerError, match=r"does not record its sampler.*--sampler"):
        load_worker_study(storage, WorkerConfig(sqlite_url, "objects"), WorkerSlot(0))
    config = WorkerConfig(sqlite_url, "objects", sampler="random", pruner="none")
    assert load_worker_study(storage, config, WorkerSlot(0)).study_name == "objects"


class _MemoryLimit(nn.Module):
    """Raises PyTorch's CUDA out-of-memory error for batches above ``limit`` examples."""

    def __init__(self, inner: nn.Module, limit: int, seen: list[int]) -> None:
        super().__init__()
        self.inner = inner
        self.limit = limit
        self.seen = seen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.seen.append(len(x))
            if len(x) > self.limit:
                raise torch.cuda.OutOfMemoryError(
                    f"CUDA out of memory. Tried to allocate {len(x)} examples' activations"
                )
        return self.inner(x)


class _LimitedObjective(ArchitectureObjective):
    def __init__(self, limit: int, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit = limit
        self.seen: list[int] = []

    def build_model(self, arch: spaces.Architecture) -> nn.Module:
        return _MemoryLimit(super().build_model(arch), self.limit, self.seen)


@pytest.mark.usefixtures("single_thread")
def test_out_of_memory_trial_is_retried_once_at_half_the_batch(digits) -> None:
    space = spaces.create("chain", **SPACE)
    training = TrainingConfig(epochs=1, batch_size=128, device="cpu")
    objective = _LimitedObjective(64, space, digits, training)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2, callbacks=[OOMRetryCallback()])
    first, retry = study.trials
    assert first.state == TrialState.FAIL
    assert first.user_attrs[FAIL_REASON_ATTR] == "oom"
    assert first.user_attrs["optuna_nas:batch_size"] == 128
    assert retry.state == TrialState.COMPLETE
    assert retry.params == first.params
    assert retry.user_attrs["optuna_nas:batch_size"] == 64
    assert retry.user_attrs[_keys.RETRY_OF] == 0
    assert retry.user_attrs[_keys.RETRY_REASON] == "oom"
    assert max(objective.seen) == 128 and objective.seen[-1] <= 64

    # A retry that runs out of memory again is not queued a second time.
    objective = _LimitedObjective(16, space, digits, training)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2, callbacks=[OOMRetryCallback()])
    first, retry = study.trials  # nothing WAITING: the failed retry was not queued again
    assert [first.state, retry.state] == [TrialState.FAIL, TrialState.FAIL]
    assert retry.user_attrs[_keys.RETRY_OF] == 0
    assert retry.user_attrs[FAIL_REASON_ATTR] == "oom"


def test_trials_counted_counts_a_retried_failure_once() -> None:
    study = optuna.create_study()
    study.add_trial(optuna.create_trial(state=TrialState.FAIL))
    study.add_trial(optuna.create_trial(state=TrialState.COMPLETE, value=1.0))
    assert trials_counted(study.trials) == 2
    study.enqueue_trial({}, user_attrs={_keys.RETRY_OF: 0})
    assert trials_counted(study.trials) == 2
    study.add_trial(
        optuna.create_trial(
            state=TrialState.WAITING, system_attrs={"failed_trial": 1, "retry_history": [1]}
        )
    )
    assert trials_counted(study.trials) == 2


@pytest.mark.usefixtures("single_thread")
def test_worker_stops_at_the_study_wide_trial_count(sqlite_url: str) -> None:
    _study(sqlite_url)
    config = WorkerConfig(sqlite_url, "s", n_trials=2, heartbeat_interval=1, grace_period=2)
    assert run_worker(config) == 0
    assert run_worker(config) == 0  # a second worker finds the study done
    study = optuna.load_study(study_name="s", storage=sqlite_url)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert {t.user_attrs["optuna_nas:worker"]["pid"] for t in study.trials} == {os.getpid()}
    assert all(t.user_attrs["optuna_nas:batch_size"] == 64 for t in study.trials)


@pytest.mark.usefixtures("single_thread")
def test_sigint_abandons_the_running_trial_and_queues_its_retry(sqlite_url: str) -> None:
    _study(sqlite_url, epochs=400)
    storage = optuna.storages.get_storage(sqlite_url)

    def interrupt_when_training() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = storage.get_all_trials(storage.get_study_id_from_name("s"))
            if any(t.intermediate_values for t in trials):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.1)

    before = signal.getsignal(signal.SIGINT)
    sender = threading.Thread(target=interrupt_when_training)
    sender.start()
    status = run_worker(WorkerConfig(sqlite_url, "s", heartbeat_interval=1, grace_period=2))
    sender.join()
    assert status == 128 + signal.SIGINT
    assert signal.getsignal(signal.SIGINT) is before  # restored
    study = optuna.load_study(study_name="s", storage=sqlite_url)
    interrupted, retry = study.trials
    assert interrupted.state == TrialState.FAIL
    assert interrupted.user_attrs[FAIL_REASON_ATTR] == "interrupted"
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs[_keys.RETRY_OF] == interrupted.number
    assert retry.user_attrs[_keys.RETRY_REASON] == "interrupted"


@pytest.fixture
def own_postgresql_db(postgresql_url: str) -> Iterator[str]:
    """A database of its own, so that blocking it does not disturb other tests."""
    import sqlalchemy as sa

    admin_storage = open_storage(postgresql_url)
    assert isinstance(admin_storage, optuna.storages.RDBStorage)
    admin = sa.create_engine(admin_storage.engine.url, isolation_level="AUTOCOMMIT")
    admin_storage.engine.dispose()
    name = f"optuna_nas_outage_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    yield admin.url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
            {"d": name},
        )
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


def _block(url: str, seconds: float, until: threading.Event | None = None) -> None:
    """Refuses connections to the database at ``url`` and drops the open ones, for a while.

    With ``until``, the database stays away until that event is set (``seconds`` at most).
    """
    import sqlalchemy as sa

    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"ALTER DATABASE {target.database} ALLOW_CONNECTIONS false"))
        conn.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
            {"d": target.database},
        )
        if until is None:
            time.sleep(seconds)
        else:
            until.wait(seconds)
        conn.execute(sa.text(f"ALTER DATABASE {target.database} ALLOW_CONNECTIONS true"))
    admin.dispose()


@pytest.mark.usefixtures("single_thread")
def test_worker_rides_out_a_database_outage(own_postgresql_db: str, tmp_path: Path) -> None:
    url = own_postgresql_db
    _study(url, epochs=10)
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("s")

    def outage_mid_run() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trials = storage.get_all_trials(study_id)
            if len(trials) >= 2 and any(t.intermediate_values for t in trials[1:]):
                break
            time.sleep(0.1)
        storage.engine.dispose()
        _block(url, 4.0)

    cutter = threading.Thread(target=outage_mid_run)
    cutter.start()
    config = WorkerConfig(
        url, "s", n_trials=3, heartbeat_interval=1, grace_period=2, retry_delay=0.5
    )
    status = run_worker(config)
    cutter.join()
    assert status == 0
    study = optuna.load_study(study_name="s", storage=url)
    trials = study.trials
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))
    assert trials_counted(trials) >= 3
    # A trial cut by the outage failed (or went stale) and was retried once; nothing
    # else repeats, nothing stays RUNNING or WAITING.
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials), [
        t.state for t in trials
    ]
    failed = [t.number for t in trials if t.state == TrialState.FAIL]
    retried = [
        t.user_attrs.get(_keys.RETRY_OF, t.system_attrs.get("failed_trial")) for t in trials
    ]
    assert sorted(r for r in retried if r is not None) == failed
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 3


def test_worker_gives_up_on_a_database_that_stays_away(own_postgresql_db: str) -> None:
    url = own_postgresql_db
    _study(url, epochs=400)
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name("s")

    def long_outage() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(t.intermediate_values for t in storage.get_all_trials(study_id)):
                break
            time.sleep(0.1)
        storage.engine.dispose()
        # Away until the worker has given up, however slowly its epochs run on a busy machine.
        _block(url, 120.0, until=worker_done)

    worker_done = threading.Event()
    cutter = threading.Thread(target=long_outage)
    cutter.start()
    config = WorkerConfig(
        url,
        "s",
        n_trials=2,
        heartbeat_interval=1,
        grace_period=2,
        storage_retries=2,
        retry_delay=0.5,
    )
    try:
        status = run_worker(config)
    finally:
        worker_done.set()
        cutter.join()
    assert status == 3
    # The study is intact: the cut trial is left RUNNING for the heartbeat to fail.
    trials = optuna.load_study(study_name="s", storage=url).trials
    assert [t.state for t in trials] == [TrialState.RUNNING]


class _FailingSampler(optuna.samplers.RandomSampler):
    """Fails every trial before the objective runs, as a misconfigured sampler would."""

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        raise RuntimeError("the sampler is misconfigured")


def test_a_worker_whose_sampler_keeps_failing_stops_with_the_reason(sqlite_url, caplog) -> None:
    from optuna_nas import samplers
    from optuna_nas.workers import EXIT_SAMPLER_FAILING

    _study(sqlite_url)
    samplers.register("failing-for-test", _FailingSampler)
    try:
        config = WorkerConfig(
            sqlite_url, "s", sampler="failing-for-test", heartbeat_interval=1, grace_period=2
        )
        with caplog.at_level("WARNING", logger="optuna_nas.workers"):
            status = run_worker(config)  # no n_trials: it would loop forever otherwise
    finally:
        samplers._FACTORIES.pop("failing-for-test")
    assert status == EXIT_SAMPLER_FAILING
    assert "the sampler is misconfigured" in caplog.text
    assert "failed 5 times in a row" in caplog.text
