"""The supervisor: one worker process per slot, restarted after a crash, stopped on a signal."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from optuna_nas.workers._config import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_SAMPLER_FAILING,
    EXIT_STORAGE_LOST,
    WorkerConfig,
    WorkerError,
    WorkerSlot,
)
from optuna_nas.workers._loop import CONFIG_ENV, GPU_ENV, PARENT_ENV, SLOT_ENV
from optuna_nas.workers._signals import STOP_SIGNALS

_logger = logging.getLogger(__name__)

_CHILD_COMMAND = (
    "import sys; from optuna_nas.workers._loop import child_main; sys.exit(child_main())"
)


class WorkerPool:
    """Starts one worker process per slot and supervises them.

    Each child runs :func:`run_worker` with ``CUDA_VISIBLE_DEVICES`` set to its slot's GPU
    (empty for CPU workers), ``OMP_NUM_THREADS`` set to its share of the CPU cores unless
    already set, and its slot in ``OPTUNA_NAS_WORKER_SLOT``. The supervisor reports every
    exit, restarts a child that was killed by a signal it did not send (at most
    ``max_restarts`` times per slot), and forwards SIGINT and SIGTERM to the children; a
    child still running ``stop_timeout`` seconds later, or at a second signal, is killed.

    Args:
        config: What every worker runs.
        slots: The slots, e.g. from :func:`plan_slots`.
        max_restarts: Restarts per slot after a crash.
        stop_timeout: Seconds the children get to stop after a signal.

    Example:
        .. code-block:: python

            # not run: needs two GPUs and a PostgreSQL server named db
            from optuna_nas import WorkerConfig, WorkerPool, plan_slots

            config = WorkerConfig("postgresql://nas@db/nas", "chain-mnist1d", n_trials=200)
            exit_status = WorkerPool(config, plan_slots("0,1", jobs_per_gpu=2)).run()
    """

    def __init__(
        self,
        config: WorkerConfig,
        slots: Sequence[WorkerSlot],
        *,
        max_restarts: int = 2,
        stop_timeout: float = 30.0,
    ) -> None:
        if not slots:
            raise WorkerError("a worker pool needs at least one slot")
        self.config = config
        self.slots = list(slots)
        self.max_restarts = max_restarts
        self.stop_timeout = stop_timeout
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.exit_codes: dict[int, int] = {}
        self._signum: int | None = None
        self._kill_at: float | None = None

    def run(self) -> int:
        """Runs the pool until every worker has exited; returns the exit status.

        ``0`` when every worker finished, ``128 + signal`` after SIGINT or SIGTERM, and
        otherwise the first failing worker's status.
        """
        restarts = dict.fromkeys(range(len(self.slots)), 0)
        on_main = threading.current_thread() is threading.main_thread()
        previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS} if on_main else {}
        if on_main:
            for sig in STOP_SIGNALS:
                signal.signal(sig, self._forward)
        try:
            for i in range(len(self.slots)):
                self._start(i)
            while self.processes:
                time.sleep(0.2)
                if self._kill_at is not None and time.monotonic() >= self._kill_at:
                    self._kill_all()
                for i, process in list(self.processes.items()):
                    code = process.poll()
                    if code is None:
                        continue
                    del self.processes[i]
                    self._report(i, process.pid, code)
                    crashed = code < 0 and self._signum is None
                    if crashed and restarts[i] < self.max_restarts:
                        restarts[i] += 1
                        _logger.warning(
                            "restarting %s (restart %d of %d)",
                            self.slots[i].label,
                            restarts[i],
                            self.max_restarts,
                        )
                        self._start(i)
                    else:
                        self.exit_codes[i] = code
        finally:
            self._kill_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if self._signum is not None:
            return 128 + self._signum
        failed = [c for c in self.exit_codes.values() if c != 0]
        if not failed:
            return EXIT_OK
        return failed[0] if failed[0] > 0 else EXIT_ERROR

    def _start(self, i: int) -> None:
        slot = self.slots[i]
        env = worker_environment(self.config, slot, len(self.slots), os.environ)
        # A session of its own: a Ctrl-C in the terminal reaches the supervisor only, which
        # forwards it once, instead of every child receiving it twice.
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD_COMMAND], env=env, start_new_session=True
        )
        self.processes[i] = process
        _logger.info("started %s as pid %d", slot.label, process.pid)

    def _report(self, i: int, pid: int, code: int) -> None:
        if code < 0:
            how = f"was killed by {_signal_name(-code)}"
        elif code == EXIT_STORAGE_LOST:
            how = "gave up on the unreachable storage"
        elif code == EXIT_SAMPLER_FAILING:
            how = "stopped: its sampler or pruner kept failing (see its log)"
        elif code - 128 in (int(sig) for sig in STOP_SIGNALS):
            how = f"stopped after {signal.Signals(code - 128).name}"
        else:
            how = f"exited with status {code}"
        _logger.info("%s, pid %d, %s", self.slots[i].label, pid, how)

    def _forward(self, signum: int, frame: FrameType | None) -> None:
        if self._signum is not None:
            self._kill_all()
            return
        self._signum = signum
        self._kill_at = time.monotonic() + self.stop_timeout
        _logger.warning(
            "%s; stopping %d worker(s), running trials end as failed (again to kill at once)",
            signal.Signals(signum).name,
            len(self.processes),
        )
        for process in self.processes.values():
            _send(process, signum)

    def _kill_all(self) -> None:
        for process in self.processes.values():
            _send(process, signal.SIGKILL)


def worker_environment(
    config: WorkerConfig, slot: WorkerSlot, n_slots: int, base: Mapping[str, str]
) -> dict[str, str]:
    """The environment a pool starts the worker of ``slot`` with.

    ``CUDA_VISIBLE_DEVICES`` is the slot's GPU (empty for a CPU worker, so that it cannot
    touch a GPU), ``OMP_NUM_THREADS`` the slot's share of the cores unless ``base`` sets
    it, and the config travels as JSON in the environment rather than on the command line,
    where other users of the machine could read a database password. A GPU worker also
    gets the folder of the machine's GPU memory ledgers (unless ``base`` sets
    :data:`~optuna_nas.training.LEDGER_DIR_ENV`; empty turns reservations off) and its
    GPU's id, so that trials sharing a GPU wait for memory rather than run out of it.
    """
    from optuna_nas.training._memory import LEDGER_DIR_ENV, LEDGER_GPU_ENV

    env = dict(base)
    env[CONFIG_ENV] = config.to_json()
    env[SLOT_ENV] = str(slot.index)
    env[PARENT_ENV] = str(os.getpid())
    env["CUDA_VISIBLE_DEVICES"] = slot.gpu if slot.gpu is not None else ""
    if slot.gpu is not None:
        env[GPU_ENV] = env[LEDGER_GPU_ENV] = slot.gpu
        env.setdefault(
            LEDGER_DIR_ENV, os.path.join(tempfile.gettempdir(), f"optuna-nas-gpu-{os.getuid()}")
        )
    else:
        env.pop(GPU_ENV, None)
        env.pop(LEDGER_GPU_ENV, None)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // n_slots)))
    return env


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _send(process: subprocess.Popen[bytes], signum: int) -> None:
    if process.poll() is None:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass
