"""Retraining a searched architecture as the final network, and recording it on the study."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from optuna_nas.data import Dataset
    from optuna_nas.spaces import Architecture
    from optuna_nas.training import Augment, FitResult

_logger = logging.getLogger(__name__)

RETRAINED = _keys.STUDY_RETRAINED


@dataclass
class RetrainResult:
    """One final training of a searched architecture.

    Attributes:
        trial: Number of the trial whose architecture was retrained.
        architecture: The architecture as built (scaled cells or channels included).
        dataset: Name or path of the dataset it was trained and tested on.
        width_multiplier: Width factor the network was built with.
        epochs: Training epochs.
        test_accuracy: Accuracy on the dataset's test split, in ``[0, 1]``.
        n_params: Trainable parameters.
        flops: Forward FLOPs of one example.
        seconds: Wall time of the training.
        settings: The rest of the recipe (batch size, lr, augmentation, seed).
        command: The command line that ran it, if any.
        model: The trained network (not recorded).
        data: The dataset (not recorded).
        fit: What :func:`optuna_nas.training.fit` returned (not recorded).
    """

    trial: int
    architecture: Architecture
    dataset: str
    width_multiplier: float
    epochs: int
    test_accuracy: float
    n_params: int
    flops: int
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    command: str | None = None
    model: nn.Module | None = field(default=None, repr=False)
    data: Dataset | None = field(default=None, repr=False)
    fit: FitResult | None = field(default=None, repr=False)

    def record(self) -> dict[str, Any]:
        """The JSON-serialisable facts stored with the study."""
        return {
            "trial": self.trial,
            "architecture": self.architecture.to_dict(),
            "dataset": self.dataset,
            "width_multiplier": self.width_multiplier,
            "epochs": self.epochs,
            "test_accuracy": self.test_accuracy,
            "n_params": self.n_params,
            "flops": self.flops,
            "seconds": round(self.seconds, 2),
            "settings": self.settings,
            "command": self.command,
        }


def retrain(
    study: optuna.Study,
    *,
    trial: int | None = None,
    dataset: Dataset | None = None,
    cells: int | None = None,
    channels: int | None = None,
    width_multiplier: float = 1.0,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    augment: Augment | None = None,
    label_smoothing: float = 0.0,
    seed: int = 0,
    device: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
    command: str | None = None,
    on_start: Callable[[int, Architecture, int], None] | None = None,
) -> RetrainResult:
    """Trains a searched architecture from scratch on train + valid and scores it on test.

    This is the last step of a search: the chosen cell, possibly in a deeper or wider
    network and on another dataset (cell transfer, Zoph et al. 2018), trained with the
    final recipe (cosine schedule, augmentation, label smoothing). Nothing is written to
    the study; :func:`record_retrain` does that.

    Args:
        study: A study made by :func:`optuna_nas.create_study`.
        trial: Number of the trial to retrain; ``None`` for the best completed one.
        dataset: The data to train and test on; ``None`` for the study's own.
        cells: Number of cells of the final network (see
            :meth:`optuna_nas.Architecture.scaled`); ``None`` keeps the searched one.
        channels: Channels of the final network; ``None`` keeps them.
        width_multiplier: Factor on every layer's width, for any space.
        epochs: Training epochs; ``None`` for the study's.
        batch_size: ``None`` for the study's.
        lr: Peak learning rate; ``None`` for the study's.
        augment: Batch augmentation (see :class:`optuna_nas.training.Augment`).
        label_smoothing: Label smoothing of the loss.
        seed: Seeds initialisation, batch order and augmentation.
        device: ``None`` for the study's.
        checkpoint: Epoch checkpoint file; an interrupted retraining resumes from it.
        progress: Show a progress bar.
        command: The command line to record.
        on_start: Called with the trial number, the architecture and the epochs once
            everything is checked, just before training starts.

    Returns:
        The result, with the trained model.

    Raises:
        ValueError: For a trial number the study lacks, a trial without an architecture, or
            a size the space cannot take.

    References:
        B. Zoph, V. Vasudevan, J. Shlens and Q. V. Le. Learning Transferable Architectures
        for Scalable Image Recognition. CVPR 2018.
    """
    from optuna_nas.spaces import Architecture
    from optuna_nas.study._create import best_trial, study_settings

    space, dataset_config, training = study_settings(study)
    chosen = best_trial(study) if trial is None else _trial(study, trial)
    try:
        arch = Architecture.from_trial(chosen, space)
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"trial {chosen.number} has no architecture of the study's space ({err}); pick "
            "another with --trial"
        ) from None
    if cells is not None or channels is not None:
        arch = arch.scaled(cells=cells, channels=channels)
    data = dataset_config.load() if dataset is None else dataset
    epochs = epochs or training.epochs
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    if on_start is not None:
        on_start(chosen.number, arch, epochs)
    result = train_final(
        arch,
        data,
        width_multiplier=width_multiplier,
        epochs=epochs,
        batch_size=batch_size or training.batch_size,
        lr=lr or training.lr,
        weight_decay=training.weight_decay,
        augment=augment,
        label_smoothing=label_smoothing,
        seed=seed,
        device=device or training.device,
        checkpoint=checkpoint,
        progress=progress,
    )
    result.trial = chosen.number
    result.command = command
    return result


def train_final(
    arch: Architecture,
    data: Dataset,
    *,
    epochs: int,
    width_multiplier: float = 1.0,
    batch_size: int = 128,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    augment: Augment | None = None,
    label_smoothing: float = 0.0,
    seed: int = 0,
    device: str | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    progress: bool = False,
) -> RetrainResult:
    """Trains ``arch`` from scratch on ``data``'s train + valid and scores it on test.

    The training half of :func:`retrain`, for an architecture that no trial holds (a
    random baseline, say). The result's ``trial`` is -1.

    Args:
        arch: The architecture, already scaled if wanted.
        data: The dataset.
        epochs: Training epochs.
        width_multiplier: Factor on every layer's width.
        batch_size: Examples per step.
        lr: Peak learning rate of AdamW (cosine schedule).
        weight_decay: AdamW weight decay.
        augment: Batch augmentation.
        label_smoothing: Label smoothing of the loss.
        seed: Seeds initialisation, batch order and augmentation.
        device: ``None`` picks CUDA, then MPS, then the CPU.
        checkpoint: Epoch checkpoint file to resume from and save to.
        progress: Show a progress bar.

    Returns:
        The result, with the trained model.
    """
    from optuna_nas.training import fit, seed_everything

    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be positive, got {width_multiplier}")
    full = dataclasses.replace(data, train=data.merged_train())
    seed_everything(seed)
    model = arch.build(data.input_shape, data.num_classes, width_multiplier=width_multiplier)
    start = time.perf_counter()
    result = fit(
        model,
        full,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        label_smoothing=label_smoothing,
        device=device,
        seed=seed,
        evaluate_test=True,
        augment=augment,
        checkpoint=checkpoint,
        progress=progress,
    )
    settings = {
        "batch_size": batch_size,
        "lr": lr,
        "label_smoothing": label_smoothing,
        "augment": None if augment is None else dataclasses.asdict(augment),
        "seed": seed,
        "device": result.device,
    }
    return RetrainResult(
        trial=-1,
        architecture=arch,
        dataset=data.name,
        width_multiplier=width_multiplier,
        epochs=epochs,
        test_accuracy=float(
            result.test_accuracy if result.test_accuracy is not None else math.nan
        ),
        n_params=result.n_params,
        flops=result.flops,
        seconds=time.perf_counter() - start,
        settings=settings,
        model=model,
        data=data,
        fit=result,
    )


def record_retrain(study: optuna.Study, result: RetrainResult) -> None:
    """Stores a retraining with the study, where the dashboard shows it.

    The record is the study user attribute ``optuna_nas:retrained:NNNN``, numbered from
    0000 in order (one attribute each, so that none grows without bound), and the
    retrained trial gets a dashboard note with a table of its
    retrainings (when optuna-dashboard is installed; the log says so once otherwise).
    """
    from optuna_nas._compat import save_trial_note

    records = retrained(study)
    records.append(result.record())
    study.set_user_attr(f"{RETRAINED}:{len(records) - 1:04d}", records[-1])
    try:
        import optuna_dashboard  # noqa: F401
    except ImportError:
        _logger.warning(
            "optuna-dashboard is not installed: the retraining is stored in the study "
            "attribute %r but gets no dashboard note; pip install 'optuna-nas[dashboard]'",
            RETRAINED,
        )
        return
    frozen = study.get_trials(deepcopy=False)[result.trial]
    mine = [r for r in records if r["trial"] == result.trial]
    save_trial_note(study, frozen, _note(result.trial, mine))


def retrained(study: optuna.Study) -> list[dict[str, Any]]:
    """The records of every retraining stored with the study, oldest first."""
    attrs = study.user_attrs
    prefix = f"{RETRAINED}:"
    return [attrs[key] for key in sorted(attrs) if key.startswith(prefix)]


def _note(number: int, records: list[dict[str, Any]]) -> str:
    lines = [
        f"## Trial {number}, retrained",
        "",
        "| dataset | cells / channels | width | epochs | test accuracy | params | FLOPs |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        config = r["architecture"]["config"]
        size = " / ".join(
            str(config[k])
            for k in ("cells_per_stage", "layers", "cells", "channels")
            if k in config
        )
        lines.append(
            f"| {r['dataset']} | {size or '-'} | {r['width_multiplier']:g} | {r['epochs']} | "
            f"{100 * r['test_accuracy']:.2f}% | {r['n_params']:,} | {r['flops']:,} |"
        )
    last = records[-1].get("command")
    if last:
        lines += ["", f"Last command: `{last}`"]
    return "\n".join(lines) + "\n"


def _trial(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    trials = study.get_trials(deepcopy=False)
    if not 0 <= number < len(trials):
        raise ValueError(
            f"study {study.study_name!r} has no trial {number} (it has trials 0 to "
            f"{len(trials) - 1}); pick one that `optuna-nas best` lists"
        )
    chosen = trials[number]
    if not chosen.params:
        raise ValueError(f"trial {number} is {chosen.state.name} and has no parameters yet")
    return chosen
