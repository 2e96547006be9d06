"""Training loop that reports to an Optuna trial and honours its pruner."""

from __future__ import annotations

import gc
import logging
import math
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from optuna_nas import _keys
from optuna_nas.nn import count_params, estimate_flops
from optuna_nas.training._augment import Augment
from optuna_nas.training._device import select_device
from optuna_nas.training._evaluate import (
    autocast,
    batch,
    evaluate,
    image_memory_format,
    measure_latency,
    place,
)
from optuna_nas.training._fidelity import Fidelity, apply_fidelity
from optuna_nas.training._inherit import (
    INHERIT_LR_SCALE,
    transfer_weights,
)
from optuna_nas.training._memory import GpuMemoryLedger, reserve_for_training
from optuna_nas.training._report import report_and_check
from optuna_nas.training._result import FAIL_REASON_ATTR, FitResult, TrainingDiverged
from optuna_nas.training._resume import EpochCheckpoint

if TYPE_CHECKING:
    import optuna

    from optuna_nas.data import Dataset
    from optuna_nas.spaces import Architecture

_logger = logging.getLogger(__name__)


def fit(
    model: nn.Module | Architecture,
    data: Dataset,
    *,
    trial: optuna.trial.BaseTrial | None = None,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    label_smoothing: float = 0.0,
    device: str | torch.device | None = None,
    seed: int = 0,
    amp: bool = True,
    channels_last: bool | None = None,
    compile: bool = False,
    evaluate_test: bool = False,
    init_state_dict: Mapping[str, torch.Tensor] | None = None,
    inherit_lr_scale: float = INHERIT_LR_SCALE,
    inherit_partial: bool = True,
    fidelity: Fidelity | None = None,
    augment: Augment | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    first_step: int = 0,
    memory_ledger: GpuMemoryLedger | None = None,
) -> FitResult:
    """Trains ``model`` on ``data.train`` and scores it on ``data.valid`` every epoch.

    AdamW with a per-step cosine learning-rate schedule and cross-entropy loss. After each
    epoch the validation accuracy goes to ``trial.report(value, epoch)``; if
    ``trial.should_prune()`` then says so, :class:`optuna.TrialPruned` is raised. Model size,
    FLOPs, timing, device and peak memory are stored as trial user attributes.

    On CUDA the loop uses bfloat16 autocast, ``channels_last`` for 2-D convolutional nets,
    non-blocking copies from pinned memory, and keeps datasets up to
    :data:`GPU_RESIDENT_LIMIT_BYTES` on the GPU. ``torch.compile`` is opt-in.

    A NaN or infinite loss, or CUDA running out of memory, fails only this trial: the
    reason is stored in the ``fail_reason`` user attribute, GPU memory is released and the
    returned ``valid_accuracy`` is NaN, which Optuna records as a failed trial before it
    moves on. Without a trial, a diverged loss raises :class:`TrainingDiverged` and an
    out-of-memory error propagates.

    Args:
        model: The network, e.g. from :meth:`optuna_nas.Architecture.build`, or an
            :class:`~optuna_nas.Architecture`, which is built here after
            ``torch.manual_seed(seed)``, at the fidelity's width and input shape.
        data: Dataset with ``train``, ``valid`` and ``test`` splits
            (see :func:`optuna_nas.data.load`).
        trial: Trial to report to and prune through; ``None`` trains without reporting.
            In a multi-objective study, values go through the study's
            :class:`optuna_nas.pruners.ObjectivePruner`; without one nothing is reported.
        epochs: Training epochs; also the last step reported.
        batch_size: Examples per step.
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        label_smoothing: Label smoothing of the cross-entropy loss.
        device: ``None``/``"auto"`` picks CUDA, then MPS, then the CPU.
        seed: Seeds batch order and dropout; seed model initialisation yourself with
            :func:`optuna_nas.training.seed_everything` before building the model.
        amp: Use bfloat16 autocast on CUDA.
        channels_last: Memory format for 4-D inputs; ``None`` enables it on CUDA.
        compile: Wrap the model in ``torch.compile``.
        evaluate_test: Also score ``data.test`` after the last epoch.
        fidelity: A :class:`~optuna_nas.training.Fidelity` to train at: its ``epochs``
            replace ``epochs``, its ``data_fraction`` and ``resolution`` reduce ``data``
            (the subset drawn with ``seed``), and its ``width_multiplier`` needs ``model``
            to be an Architecture.
        init_state_dict: Warm-start weights, e.g. a parent's checkpoint from
            :func:`optuna_nas.training.load_checkpoint`: every tensor whose name and shape
            match is copied into ``model`` before training, and one whose name matches but
            shape differs is transferred in part (see
            :func:`optuna_nas.training.transfer_weights`). The counts go to the
            ``inherited_tensors`` (whole or in part), ``partially_inherited_tensors`` and
            ``model_tensors`` user attributes.
        inherit_lr_scale: The parameters copied from ``init_state_dict`` train at a peak
            learning rate of ``lr * inherit_lr_scale``; freshly initialised ones (a
            mutated layer) keep ``lr``. Below 1, an inherited network is fine-tuned
            rather than retrained at the full rate (see
            :data:`optuna_nas.training.INHERIT_LR_SCALE`, the measured default). Ignored
            without ``init_state_dict``; the inherited tensors' peak rate goes to the
            ``peak_lr`` user attribute. Tensors transferred in part hold fresh values
            too, so they train at ``lr``.
        inherit_partial: Transfer the tensors of ``init_state_dict`` whose shapes differ
            from the child's in part; ``False`` starts them fresh.
        augment: Augment each training batch on the device (random crop, flip, cutout);
            see :class:`~optuna_nas.training.Augment`. Flat inputs are left as they are,
            and the log says so once.
        checkpoint: A file to save the whole training state to after every epoch (model,
            optimizer, schedule, random streams, history). If it exists when ``fit``
            starts, training resumes after its last epoch, so an interrupted run goes on
            where it stopped; a file of another run (other epochs, batch size or model)
            raises ``ValueError``. It is written atomically and loaded with
            ``weights_only=True``.
        progress: Show a progress bar (tqdm) over the training steps.
        first_step: Epoch ``e`` reports at step ``first_step + e``; 1 leaves step 0 to an
            estimate before training (:class:`optuna_nas.oneshot.EstimateRung`).
        memory_ledger: Where trials sharing a GPU reserve its memory: training waits
            until its estimated memory fits (see
            :class:`~optuna_nas.training.GpuMemoryLedger`). By default, the ledger a
            worker pool sets up when its slots share a GPU, and none otherwise.

    Returns:
        A :class:`FitResult`.

    Raises:
        optuna.TrialPruned: When the trial's pruner stops the run.
        ValueError: For non-positive ``epochs``, ``batch_size`` or ``inherit_lr_scale``,
            or a width multiplier with a module already built.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training

            dataset = data.load("mnist1d")
            space = spaces.create("chain")

            def objective(trial):
                model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
                return training.fit(model, dataset, trial=trial, epochs=5).valid_accuracy

            optuna.create_study(direction="maximize").optimize(objective, n_trials=3)
    """

    if fidelity is not None and fidelity.epochs is not None:
        epochs = fidelity.epochs
    model, data = apply_fidelity(model, data, fidelity, seed=seed)
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be positive, got {epochs} and {batch_size}")
    if isinstance(first_step, bool) or not isinstance(first_step, int) or first_step < 0:
        raise ValueError(f"first_step must be an integer >= 0, got {first_step!r}")
    if not inherit_lr_scale > 0:
        raise ValueError(
            f"inherit_lr_scale must be positive (a fraction of lr, 1.0 for the full rate), "
            f"got {inherit_lr_scale!r}"
        )
    dev = select_device(device)
    use_amp = amp and dev.type == "cuda"
    if augment is not None and not augment.applies_to(data.input_shape):
        _logger.warning(
            "augment has no effect on flat inputs of shape %s; training without it",
            data.input_shape,
        )
        augment = None
    memory_format = image_memory_format(dev, data, channels_last)

    transfer = (
        None
        if init_state_dict is None
        else transfer_weights(model, init_state_dict, partial=inherit_partial)
    )
    inherited = None if transfer is None else len(transfer.inherited)
    params = _param_groups(
        model, lr, None if transfer is None else set(transfer.copied), inherit_lr_scale
    )
    n_params = count_params(model)
    flops = estimate_flops(model, data.input_shape)
    if memory_ledger is None:
        memory_ledger = GpuMemoryLedger.from_environment(dev)
    # The memory estimate's inputs: real ones where there are two.
    probe: tuple[int, ...] | torch.Tensor = tuple(data.input_shape)
    if memory_ledger is not None and len(data.train.y) >= 2:
        probe = data.train.decode(data.train.x[:2])
    with reserve_for_training(memory_ledger, model, probe, batch_size, trial):
        model.to(dev)
        if memory_format is not None:
            model.to(memory_format=memory_format)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        result = FitResult(
            valid_accuracy=math.nan,
            best_valid_accuracy=math.nan,
            test_accuracy=None,
            n_params=n_params,
            flops=flops,
            device=str(dev),
            inherited_tensors=inherited,
            partially_inherited_tensors=None if transfer is None else len(transfer.partial),
        )
        _set_attrs(trial, {_keys.N_PARAMS: n_params, _keys.FLOPS: flops, _keys.DEVICE: str(dev)})
        if inherited is not None:
            _set_attrs(
                trial,
                {
                    _keys.INHERITED_TENSORS: inherited,
                    _keys.PARTIALLY_INHERITED_TENSORS: len(transfer.partial) if transfer else 0,
                    _keys.MODEL_TENSORS: len(model.state_dict()),
                    _keys.PEAK_LR: lr * inherit_lr_scale if inherited else lr,
                },
            )

        try:
            source = data.valid if len(data.valid.y) else data.train
            result.latency_ms = measure_latency(
                model,
                source.decode(source.x[:batch_size]),
                dev,
                amp=use_amp,
                memory_format=memory_format,
            )
            _set_attrs(trial, {_keys.LATENCY_MS: round(result.latency_ms, 4)})
            _train(
                model,
                data,
                result,
                trial,
                dev,
                epochs=epochs,
                batch_size=batch_size,
                params=params,
                weight_decay=weight_decay,
                label_smoothing=label_smoothing,
                seed=seed,
                use_amp=use_amp,
                memory_format=memory_format,
                compile=compile,
                evaluate_test=evaluate_test,
                augment=augment,
                checkpoint=checkpoint,
                progress=progress,
                first_step=first_step,
            )
        except torch.cuda.OutOfMemoryError:
            if trial is None:
                raise
            _fail(
                result,
                trial,
                "oom",
                "CUDA ran out of memory; the trial fails and the study goes on",
            )
        except TrainingDiverged as err:
            if trial is None:
                raise
            _fail(result, trial, "nan_loss", str(err))
        finally:
            if dev.type == "cuda":
                result.peak_memory_mb = torch.cuda.max_memory_allocated(dev) / 2**20
                _set_attrs(trial, {_keys.PEAK_GPU_MEMORY_MB: round(result.peak_memory_mb, 1)})
        return result


def _train(
    model: nn.Module,
    data: Dataset,
    result: FitResult,
    trial: optuna.trial.BaseTrial | None,
    dev: torch.device,
    *,
    epochs: int,
    batch_size: int,
    params: list[dict[str, Any]],
    weight_decay: float,
    label_smoothing: float,
    seed: int,
    use_amp: bool,
    memory_format: torch.memory_format | None,
    compile: bool,
    evaluate_test: bool,
    augment: Augment | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    first_step: int = 0,
) -> None:
    import optuna
    from tqdm.auto import tqdm

    generator = torch.Generator().manual_seed(seed)
    augment_generator = torch.Generator().manual_seed(seed + 1)
    torch.manual_seed(seed)
    train_x, train_y = place(data.train, dev)
    valid = data.valid.with_tensors(*place(data.valid, dev))
    n_train = len(train_y)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))

    step_model: nn.Module = torch.compile(model) if compile else model  # type: ignore[assignment]
    optimizer = torch.optim.AdamW(params, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * steps_per_epoch)
    criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    first, train_seconds = 0, 0.0
    saver = None
    if checkpoint is not None:
        signature = {"epochs": epochs, "batch_size": batch_size, "n_train": n_train}
        signature["n_params"] = result.n_params
        streams = {"order": generator, "augment": augment_generator}
        saver = EpochCheckpoint(checkpoint, signature, model, optimizer, scheduler, streams)
        first, train_seconds = saver.restore(result)
    bar = tqdm(
        total=epochs * steps_per_epoch,
        initial=first * steps_per_epoch,
        disable=not progress,
        unit="step",
        desc="training",
        dynamic_ncols=True,
    )

    for epoch in range(first, epochs):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n_train, generator=generator).to(train_x.device)
        loss_sum = torch.zeros((), device=dev)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            x, y = batch(train_x, train_y, index, dev, memory_format, data.train)
            if augment is not None:
                x = augment(x, augment_generator)
            with autocast(dev, use_amp):
                loss = criterion(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach() * len(index)
            bar.update()
        train_loss = float(loss_sum) / n_train  # one host sync per epoch
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        seconds = time.perf_counter() - start
        train_seconds += seconds
        if not math.isfinite(train_loss):
            raise TrainingDiverged(
                f"training loss became {train_loss} in epoch {epoch}; lower the learning rate "
                f"(now {max(g['lr'] for g in params)}) or check the inputs for NaN"
            )
        accuracy = evaluate(
            step_model,
            valid,
            dev,
            batch_size=max(batch_size, 512),
            amp=use_amp,
            memory_format=memory_format,
        )
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "valid_accuracy": accuracy,
                "seconds": seconds,
            }
        )
        result.valid_accuracy = accuracy
        result.best_valid_accuracy = (
            max(accuracy, result.best_valid_accuracy)
            if not math.isnan(result.best_valid_accuracy)
            else accuracy
        )
        result.seconds_per_epoch = train_seconds / (epoch + 1)
        result.samples_per_second = n_train * (epoch + 1) / train_seconds
        _set_attrs(
            trial,
            {
                _keys.SECONDS_PER_EPOCH: round(result.seconds_per_epoch, 4),
                _keys.SAMPLES_PER_SECOND: round(result.samples_per_second, 1),
            },
        )
        bar.set_postfix(loss=f"{train_loss:.3f}", valid=f"{accuracy:.4f}")
        if saver is not None:
            saver.save(epoch, result, train_seconds)
        if trial is not None and report_and_check(trial, accuracy, first_step + epoch):
            bar.close()
            raise optuna.TrialPruned(
                f"pruned after epoch {epoch} at validation accuracy {accuracy:.4f}"
            )

    bar.close()
    if evaluate_test:
        result.test_accuracy = evaluate(
            step_model,
            data.test,
            dev,
            batch_size=max(batch_size, 512),
            amp=use_amp,
            memory_format=memory_format,
        )
        _set_attrs(trial, {_keys.TEST_ACCURACY: result.test_accuracy})


def _param_groups(
    model: nn.Module, lr: float, copied: set[str] | None, inherit_lr_scale: float
) -> list[dict[str, Any]]:
    """AdamW parameter groups: inherited parameters at ``lr * inherit_lr_scale``.

    Freshly initialised parameters (a mutated layer) keep the full ``lr``: only what was
    already trained is fine-tuned gently.
    """
    if not copied:
        return [{"params": list(model.parameters()), "lr": lr}]
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in copied], "lr": lr * inherit_lr_scale},
        {"params": [p for n, p in named if n not in copied], "lr": lr},
    ]
    return [g for g in groups if g["params"]]


def _set_attrs(trial: optuna.trial.BaseTrial | None, attrs: dict[str, Any]) -> None:
    if trial is None:
        return
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _fail(result: FitResult, trial: optuna.trial.BaseTrial, reason: str, message: str) -> None:
    result.fail_reason = reason
    result.valid_accuracy = math.nan
    trial.set_user_attr(FAIL_REASON_ATTR, reason)
    _logger.warning("trial %s: %s", getattr(trial, "number", "?"), message)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
