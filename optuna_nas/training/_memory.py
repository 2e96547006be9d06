"""GPU memory for concurrent trials: an estimate per trial and a ledger per GPU.

Several worker processes may share one GPU (``--jobs-per-gpu``). Each trial estimates
the memory its training needs before it touches the GPU, and reserves it in a ledger
that every process of the machine using that GPU shares: a JSON file under an exclusive
``flock``. A trial whose reservation does not fit beside the others waits for them; one
that needs more than the whole budget waits until the GPU is free and then runs alone.
Waiting trials are served first come, first served, so a large trial is not starved by
a stream of small ones. A reservation of a process that died is dropped by the next
process that reads the ledger.

The estimate counts what a training step keeps alive (see
:func:`estimate_training_memory`). It leaves out the allocator's caching and cuDNN's
workspaces, so the budget is a fraction of the device's memory and the estimate is
multiplied by a margin; a trial that still runs out of memory fails with
``fail_reason=oom`` and is retried at half the batch size, as before.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna

_logger = logging.getLogger(__name__)

LEDGER_DIR_ENV = "OPTUNA_NAS_GPU_LEDGER_DIR"
"""Environment variable naming the folder of the GPU ledgers; a worker pool sets it when
slots share a GPU, and :func:`~optuna_nas.training.fit` then reserves memory there."""

LEDGER_GPU_ENV = "OPTUNA_NAS_GPU_LEDGER_ID"
"""The physical GPU a process's ``cuda`` device is, so that processes that see it under
another index (``CUDA_VISIBLE_DEVICES``) share one ledger; the device index otherwise."""

MEMORY_MARGIN = 1.25
"""Factor on :func:`estimate_training_memory` for what it leaves out (allocator caching,
cuDNN workspaces, the loss and the optimizer's temporaries)."""

BUDGET_FRACTION = 0.9
"""Fraction of the device's memory that reservations may fill."""


def estimate_training_memory(
    model: nn.Module,
    inputs: Sequence[int] | torch.Tensor,
    batch_size: int,
    *,
    probe_batch: int = 2,
) -> int:
    """Bytes one AdamW training step of ``model`` keeps alive at ``batch_size``, in float32.

    Parameters count four times (the weights, their gradients and AdamW's two moments).
    Activations are counted exactly on a probe: a forward and backward pass of
    ``probe_batch`` inputs through a copy of ``model`` on the CPU, recording every
    tensor autograd saves for the backward pass (once per storage); they are scaled to
    ``batch_size``, with the input batch. bfloat16 autocast keeps many activations in
    half the bytes, so on CUDA this is an upper bound. The model itself is left untouched
    (its BatchNorm statistics, its gradients and the random streams).

    Args:
        model: The network, on any device.
        inputs: Shape of one input example (the probe draws random values), or a batch
            of real inputs whose first ``probe_batch`` examples the probe uses (needed
            when the model takes anything but floats, e.g. token ids).
        batch_size: Examples per training step.
        probe_batch: Examples in the probe; at least 2 (BatchNorm needs two).

    Returns:
        The estimate in bytes.
    """
    if batch_size < 1 or probe_batch < 2:
        raise ValueError(
            f"batch_size must be >= 1 and probe_batch >= 2, got {batch_size} and {probe_batch}"
        )
    params = list(model.parameters())
    param_bytes = sum(p.numel() * 4 for p in params if p.requires_grad)
    frozen_bytes = sum(p.numel() * 4 for p in params if not p.requires_grad)
    probe = copy.deepcopy(model).cpu().float().train()
    with torch.random.fork_rng():
        if isinstance(inputs, torch.Tensor):
            if len(inputs) < probe_batch:
                raise ValueError(f"the probe needs {probe_batch} inputs, got {len(inputs)}")
            x = inputs[:probe_batch].cpu()
            x = x.float() if x.is_floating_point() else x
        else:
            x = torch.randn(probe_batch, *inputs)
        saved = saved_activation_bytes(probe, x)
    per_example = (saved + x.nbytes) / probe_batch
    return int(4 * param_bytes + frozen_bytes + per_example * batch_size)


def saved_activation_bytes(
    model: nn.Module, x: torch.Tensor, target: torch.Tensor | None = None
) -> int:
    """Bytes of the tensors one forward pass of ``model`` on ``x`` saves for backward.

    Every tensor autograd keeps is counted once per storage, through
    ``torch.autograd.graph.saved_tensors_hooks``; parameters (counted with the
    parameters) and the input batch itself are left out. The loss is the cross-entropy
    against ``target`` (class 0 for every example by default), and the backward pass
    runs, so ``model``'s gradients are written.
    """
    saved: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, nn.Parameter):
            storage = t.untyped_storage()
            saved[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
        if target is None:
            target = torch.zeros(out.shape[0], dtype=torch.long, device=out.device)
        loss = nn.functional.cross_entropy(out.reshape(out.shape[0], -1), target)
    loss.backward()
    saved.pop((x.untyped_storage().data_ptr(), x.untyped_storage().nbytes()), None)
    return sum(saved.values())


@dataclass
class Reservation:
    """A granted reservation.

    Attributes:
        nbytes: The bytes reserved.
        waited_seconds: How long the trial waited for them.
        alone: Whether the trial needed more than the budget and so has the GPU to itself.
    """

    nbytes: int
    waited_seconds: float
    alone: bool


class GpuMemoryLedger:
    """Reservations of one GPU's memory, shared by the processes of one machine.

    Args:
        path: The ledger file; every process sharing the GPU uses the same one. Its
            folder is created if needed.
        capacity_bytes: What reservations may fill together.
        poll_interval: Seconds between looks at the ledger while waiting.

    Example:
        .. code-block:: python

            import tempfile

            from torch import nn

            from optuna_nas.training import GpuMemoryLedger, estimate_training_memory

            model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, 10))
            ledger = GpuMemoryLedger(tempfile.mkdtemp() + "/gpu-0.json", 70 * 2**30)
            need = estimate_training_memory(model, (3, 32, 32), batch_size=256)
            with ledger.reserve(need, "my run") as held:
                print(f"waited {held.waited_seconds:.1f} s")  # then train
    """

    def __init__(
        self, path: str | os.PathLike[str], capacity_bytes: int, *, poll_interval: float = 0.5
    ) -> None:
        if capacity_bytes < 1:
            raise ValueError(f"capacity_bytes must be positive, got {capacity_bytes}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.capacity_bytes = int(capacity_bytes)
        self.poll_interval = poll_interval

    @classmethod
    def from_environment(cls, device: torch.device) -> GpuMemoryLedger | None:
        """The ledger of ``device`` when :data:`LEDGER_DIR_ENV` is set and it is a GPU.

        The budget is :data:`BUDGET_FRACTION` of the device's total memory.
        """
        folder = os.environ.get(LEDGER_DIR_ENV)
        if not folder or device.type != "cuda":
            return None
        index = device.index if device.index is not None else torch.cuda.current_device()
        gpu = os.environ.get(LEDGER_GPU_ENV, str(index))
        total = torch.cuda.get_device_properties(index).total_memory
        return cls(Path(folder) / f"gpu-{gpu}.json", int(total * BUDGET_FRACTION))

    def reservations(self) -> dict[str, dict[str, Any]]:
        """The live reservations and waiting trials, by key (for logs and tests)."""
        with self._locked() as state:
            return dict(state["held"])

    @contextlib.contextmanager
    def reserve(self, nbytes: int, label: str = "") -> Iterator[Reservation]:
        """Waits until ``nbytes`` fit beside the other reservations, holds them, frees them.

        A request larger than the whole capacity waits until the ledger is empty and
        then holds all of it. Requests are granted in the order they arrived.

        Args:
            nbytes: Bytes to reserve.
            label: Names the holder in the ledger and the log, e.g. ``"trial 12"``.

        Yields:
            The :class:`Reservation`.
        """
        key = f"{os.getpid()}:{uuid.uuid4().hex[:8]}"
        alone = nbytes > self.capacity_bytes
        amount = self.capacity_bytes if alone else int(nbytes)
        entry = {"pid": os.getpid(), "bytes": amount, "label": label}
        start = time.monotonic()
        logged = False
        try:
            while True:
                with self._locked() as state:
                    if key not in state["queue"]:
                        state["queue"][key] = entry
                    first = next(iter(state["queue"]))
                    used = sum(int(e["bytes"]) for e in state["held"].values())
                    if first == key and used + amount <= self.capacity_bytes:
                        del state["queue"][key]
                        state["held"][key] = entry
                        break
                if not logged:
                    _logger.info(
                        "%s waits for %.0f MB of GPU memory (%d trial(s) hold %.0f of %.0f MB)%s",
                        label or "a trial",
                        amount / 2**20,
                        len(state["held"]),
                        used / 2**20,
                        self.capacity_bytes / 2**20,
                        "; it needs more than the budget, so it will run alone" if alone else "",
                    )
                    logged = True
                time.sleep(self.poll_interval)
            yield Reservation(amount, time.monotonic() - start, alone)
        finally:
            with self._locked() as state:
                state["queue"].pop(key, None)
                state["held"].pop(key, None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, dict[str, dict[str, Any]]]]:
        """The ledger's state under an exclusive lock, written back on exit."""
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                try:
                    state = json.loads(self.path.read_text())
                except (FileNotFoundError, json.JSONDecodeError):
                    state = {}
                state = {part: dict(state.get(part, {})) for part in ("held", "queue")}
                for part in state.values():
                    for key in [k for k, e in part.items() if not _alive(int(e["pid"]))]:
                        del part[key]
                yield state
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text(json.dumps(state))
                os.replace(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def reserve_for_training(
    ledger: GpuMemoryLedger | None,
    model: nn.Module,
    inputs: Sequence[int] | torch.Tensor,
    batch_size: int,
    trial: optuna.trial.BaseTrial | None,
) -> Iterator[Reservation | None]:
    """Reserves the estimated memory of training ``model`` in ``ledger`` for the block.

    With ``ledger=None`` it does nothing. Otherwise the estimate times
    :data:`MEMORY_MARGIN`, the wait and whether the trial runs alone go to the trial's
    user attributes. A model the probe cannot run trains without a reservation; the log
    says so once per process and the trial records why
    (``optuna_nas:gpu_memory_estimate_error``).
    """
    if ledger is None:
        yield None
        return
    try:
        estimate = int(estimate_training_memory(model, inputs, batch_size) * MEMORY_MARGIN)
    except Exception as err:  # any model may fail on a probe it was not written for
        reason = f"{type(err).__name__}: {err}"[:200]
        if not _warned:
            _logger.warning(
                "cannot estimate the GPU memory of this model (%s); trials train without "
                "a reservation, so concurrent trials may run out of memory",
                reason,
            )
            _warned.append(True)
        if trial is not None:
            trial.set_user_attr(_keys.GPU_MEMORY_ESTIMATE_ERROR, reason)
        yield None
        return
    number = getattr(trial, "number", None)
    with ledger.reserve(estimate, "a run" if number is None else f"trial {number}") as held:
        if trial is not None:
            for key, value in {
                _keys.ESTIMATED_GPU_MEMORY_MB: round(held.nbytes / 2**20, 3),
                _keys.GPU_MEMORY_WAIT_SECONDS: round(held.waited_seconds, 2),
                _keys.GPU_ALONE: held.alone,
            }.items():
                trial.set_user_attr(key, value)
        yield held


_warned: list[bool] = []  # the estimate failure is logged once per process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
