"""Ctrl-C during ``optuna-nas search``: stop at a safe point, fail the trial, queue it once."""

from __future__ import annotations

from typing import Any


def fail_interrupted(study: Any, number: int | None) -> None:
    """Queues the interrupted trial once more, if it failed (``tracked`` said why)."""
    from optuna.trial import TrialState

    from optuna_nas.study import enqueue_retry

    if number is None:
        return
    trial = next((t for t in study.get_trials(deepcopy=False) if t.number == number), None)
    if trial is None or trial.state != TrialState.FAIL:
        return
    enqueue_retry(study, trial, "interrupted")


class DeferredInterrupt:
    """Ctrl-C during a trial takes effect at the trial's next pruning check (after an
    epoch), not in the middle of a storage write; a second Ctrl-C, or one between trials,
    interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.in_trial = False
        self._previous: Any = None

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)

    def uninstall(self) -> None:
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested or not self.in_trial:
            raise KeyboardInterrupt
        self.requested = True


class InterruptingPruner:
    """Wraps the study's pruner: raises the deferred Ctrl-C at a pruning check."""

    def __init__(self, pruner: Any, interrupt: DeferredInterrupt) -> None:
        self._pruner = pruner
        self._interrupt = interrupt

    def prune(self, study: Any, trial: Any) -> bool:
        if self._interrupt.requested:
            raise KeyboardInterrupt
        return bool(self._pruner.prune(study, trial))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pruner, name)
