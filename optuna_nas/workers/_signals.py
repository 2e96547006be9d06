"""SIGINT and SIGTERM in a worker process: abandon the trial, never a storage write."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

_logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class WorkerInterrupted(KeyboardInterrupt):
    """Raised inside the objective when the worker receives SIGINT or SIGTERM.

    A ``KeyboardInterrupt`` so that Optuna records the trial as failed and re-raises it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGINT/SIGTERM handling of one worker process.

    A signal that arrives while the objective runs interrupts it at once (the trial ends
    ``FAIL``); one that arrives while the worker talks to the storage (ask, tell) only
    stops the loop after that, so a storage write is never cut in half.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.in_objective = False
        self.raised = False
        self.wake = threading.Event()

    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        first = self.signum is None
        self.signum = signum
        self.wake.set()
        if first:
            _logger.warning(
                "%s received: abandoning the running trial and stopping",
                signal.Signals(signum).name,
            )
        self._interrupt(frame)

    def _interrupt(self, frame: FrameType | None) -> None:
        if not self.in_objective or self.raised or self.signum is None:
            return
        if _in_storage_call(frame):
            # Raising inside a storage write (the objective's trial.report) could leave a
            # transaction, and on SQLite the file lock, held while this worker then records
            # the failure: try again in 50 ms, once the write is through.
            signal.signal(signal.SIGALRM, lambda _signum, later: self._interrupt(later))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            return
        self.raised = True
        raise WorkerInterrupted(self.signum)


_STORAGE_MODULES = ("sqlalchemy", "optuna.storages", "sqlite3", "psycopg", "pymysql", "MySQLdb")


def _in_storage_call(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a caller of it runs storage or database-driver code."""
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_STORAGE_MODULES):
            return True
        frame = frame.f_back
    return False
