"""A one-shot search run into a study: supernet, weight-sharing search, the derived trial."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna

    from optuna_nas._compat import ArtifactStore
    from optuna_nas.data import Dataset
    from optuna_nas.spaces import SearchSpace
    from optuna_nas.study._config import TrainingConfig


@dataclass
class OneShotResult:
    """What :func:`oneshot_search` did.

    Attributes:
        trial: Number of the study's trial that holds the derived architecture.
        params: The derived architecture's parameters.
        oneshot_score: Its validation accuracy with the supernet's weights.
        value: Its validation accuracy trained stand-alone (the trial's value).
        supernet_seconds: Wall time of training the supernet (0 when a checkpoint was given).
        search_seconds: Wall time of the weight-sharing search.
        losses: The supernet's training loss per epoch.
    """

    trial: int
    params: dict[str, Any]
    oneshot_score: float
    value: float | None
    supernet_seconds: float
    search_seconds: float
    losses: list[float]


def oneshot_search(
    study: optuna.Study,
    space: SearchSpace,
    dataset: Dataset,
    training: TrainingConfig,
    *,
    strategy: str = "spos",
    epochs: int = 10,
    candidates: int = 100,
    seed: int = 0,
    checkpoint: bytes | None = None,
    artifact_store: ArtifactStore | None = None,
    progress: bool = False,
) -> OneShotResult:
    """Trains a supernet, searches it, and adds the architecture it finds to ``study``.

    The supernet trains with ``strategy`` for ``epochs`` (or comes from ``checkpoint``),
    and is saved to ``artifact_store`` under the study's ``optuna_nas:supernet_artifact``
    attribute. Regularized evolution then scores ``candidates`` architectures with its
    shared weights. The best is enqueued into ``study`` and trained stand-alone there by
    :class:`~optuna_nas.ArchitectureObjective` with ``training``, so it is an ordinary
    completed trial beside the samplers' trials, with its one-shot score and strategy as
    user attributes.

    Args:
        study: A study made by :func:`optuna_nas.create_study` for ``space`` and ``dataset``.
        space: The space, one with a supernet (see :func:`optuna_nas.oneshot.build_supernet`).
        dataset: The data the supernet trains on and the trial trains on.
        training: How the derived architecture trains stand-alone.
        strategy: How the supernet trains: ``spos`` or ``fair``.
        epochs: Supernet training epochs.
        candidates: Architectures the weight-sharing search scores.
        seed: Seeds the supernet's training and the search.
        checkpoint: A supernet checkpoint (:func:`optuna_nas.oneshot.save_supernet`) to use
            instead of training one.
        artifact_store: Where to save the trained supernet; ``None`` saves nothing.
        progress: Show progress bars.

    Raises:
        ValueError: For a space without a supernet, an unknown strategy, or a checkpoint of
            another space or dataset.
    """
    from optuna_nas import oneshot
    from optuna_nas.study._objective import ArchitectureObjective

    if checkpoint is None:
        supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
        if strategy not in oneshot.STRATEGIES:
            raise ValueError(
                f"unknown one-shot strategy {strategy!r}; choose one of: "
                f"{', '.join(oneshot.STRATEGIES)}"
            )
        start = time.perf_counter()
        losses = oneshot.train_supernet(
            supernet,
            dataset,
            epochs=epochs,
            strategy=strategy,
            batch_size=training.batch_size,
            lr=training.lr,
            weight_decay=training.weight_decay,
            seed=seed,
            device=training.device,
            progress=progress,
        )
        supernet_seconds = time.perf_counter() - start
        if artifact_store is not None:
            _save(study, artifact_store, oneshot.save_supernet(supernet))
    else:
        supernet = oneshot.load_supernet(
            checkpoint, space, dataset.input_shape, dataset.num_classes
        )
        losses, supernet_seconds = [], 0.0
    start = time.perf_counter()
    params, score = oneshot.derive_architecture(
        space, supernet, dataset, candidates=candidates, seed=seed, device=training.device
    )
    search_seconds = time.perf_counter() - start
    study.enqueue_trial(
        params,
        user_attrs={_keys.ONESHOT_SCORE: score, _keys.ONESHOT_STRATEGY: strategy},
        skip_if_exists=False,
    )
    objective = ArchitectureObjective(
        space, dataset, training, seed=seed, artifact_store=artifact_store
    )
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    return OneShotResult(
        trial=trial.number,
        params=params,
        oneshot_score=score,
        value=trial.value,
        supernet_seconds=supernet_seconds,
        search_seconds=search_seconds,
        losses=losses,
    )


def _save(study: optuna.Study, store: ArtifactStore, checkpoint: bytes) -> None:
    import os
    import tempfile

    import optuna

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "supernet.pt")
        with open(path, "wb") as handle:
            handle.write(checkpoint)
        artifact_id = optuna.artifacts.upload_artifact(
            artifact_store=store, file_path=path, study_or_trial=study
        )
    study.set_user_attr(_keys.STUDY_SUPERNET, artifact_id)
