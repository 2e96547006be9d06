"""A one-shot search run into a study: supernet, weight-sharing search, the derived trial."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna

    from optuna_nas._compat import ArtifactStore
    from optuna_nas.data import Dataset
    from optuna_nas.spaces import SearchSpace
    from optuna_nas.study._config import TrainingConfig

_logger = logging.getLogger(__name__)


@dataclass
class OneShotResult:
    """What :func:`oneshot_search` did.

    Attributes:
        trial: Number of the study's trial that holds the derived architecture.
        params: The derived architecture's parameters.
        oneshot_score: Its validation accuracy with the supernet's weights (``None`` after
            a gradient method, whose supernet was trained as a mixture).
        value: Its validation accuracy trained stand-alone (the trial's value).
        supernet_seconds: Wall time of training the supernet (0 when a checkpoint was
            given); for a gradient method, of the whole gradient search.
        search_seconds: Wall time of the weight-sharing search (0 for a gradient method).
        losses: The supernet's training loss per epoch.
        history: For a gradient method, the architecture distribution after each epoch
            (:attr:`optuna_nas.oneshot.GradientSearchResult.history`); else empty.
        plot: The id of the architecture-weights plot saved for optuna-dashboard, if any.
    """

    trial: int
    params: dict[str, Any]
    oneshot_score: float | None
    value: float | None
    supernet_seconds: float
    search_seconds: float
    losses: list[float]
    history: list[dict[str, dict[str, float]]] = field(default_factory=list)
    plot: str | None = None


def oneshot_search(
    study: optuna.Study,
    space: SearchSpace,
    dataset: Dataset,
    training: TrainingConfig,
    *,
    strategy: str = "fair",
    epochs: int = 10,
    candidates: int = 100,
    metric: str = "loss",
    proxy: str | None = "zico",
    seed: int = 0,
    checkpoint: bytes | None = None,
    artifact_store: ArtifactStore | None = None,
    progress: bool = False,
) -> OneShotResult:
    """Trains a supernet, searches it, and adds the architecture it finds to ``study``.

    With a gradient method (``darts``, ``gdas``, ``drnas`` or ``beta-darts``, see
    :func:`optuna_nas.oneshot.gradient_search`) as ``strategy``, the search runs for
    ``epochs`` and derives the architecture itself; its architecture weights by epoch go to
    the derived trial's ``optuna_nas:architecture_weights`` attribute and, when
    optuna-dashboard and plotly are installed, into a plot of the study
    (:func:`optuna_nas.dashboard.save_architecture_weights`).

    Otherwise the supernet trains with ``strategy`` for ``epochs`` (or comes from ``checkpoint``),
    and is saved to ``artifact_store`` under the study's ``optuna_nas:supernet_artifact``
    attribute. Regularized evolution then scores ``candidates`` architectures with its
    shared weights. The best is enqueued into ``study`` and trained stand-alone there by
    :class:`~optuna_nas.ArchitectureObjective` with ``training``, so it is an ordinary
    completed trial beside the samplers' trials, with its one-shot score and strategy as
    user attributes.

    The defaults (FairNAS, scored by validation loss and averaged with ZiCo) are the
    combination that ranked stand-alone-trained NB201 cells best in this project's
    benchmarks, on a held-out ground truth as well as the one they were chosen on (see the
    benchmarks page).

    Args:
        study: A study made by :func:`optuna_nas.create_study` for ``space`` and ``dataset``.
        space: The space, one with a supernet (see :func:`optuna_nas.oneshot.build_supernet`).
        dataset: The data the supernet trains on and the trial trains on.
        training: How the derived architecture trains stand-alone.
        strategy: How the supernet trains, ``spos`` or ``fair``, or a gradient method:
            ``darts``, ``gdas``, ``drnas`` or ``beta-darts``.
        epochs: Supernet training epochs.
        candidates: Architectures the weight-sharing search scores.
        metric: The weight-sharing score, ``"accuracy"`` or ``"loss"`` (see
            :func:`optuna_nas.oneshot.score_architecture`). Unused by gradient methods.
        proxy: A zero-cost proxy to combine with the weight-sharing score (see
            :class:`optuna_nas.oneshot.CombinedScore`), or ``None`` for the weight-sharing
            score alone. Unused by gradient methods.
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
    from optuna_nas.training import seed_everything

    known = (*oneshot.STRATEGIES, *oneshot.GRADIENT_METHODS)
    if strategy not in known:
        raise ValueError(
            f"unknown one-shot strategy {strategy!r}; choose one of: {', '.join(known)}"
        )
    if strategy in oneshot.GRADIENT_METHODS:
        if checkpoint is not None:
            raise ValueError(
                f"{strategy} trains its own supernet; leave out the checkpoint, which serves "
                "spos and fair"
            )
        return _gradient(
            study, space, dataset, training, strategy, epochs, seed, artifact_store, progress
        )
    if checkpoint is None:
        seed_everything(seed)  # the supernet's initial weights
        supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
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
        space,
        supernet,
        dataset,
        candidates=candidates,
        seed=seed,
        device=training.device,
        metric=metric,
        proxy=proxy,
    )
    search_seconds = time.perf_counter() - start
    trial = _train_derived(
        study,
        ArchitectureObjective(space, dataset, training, seed=seed, artifact_store=artifact_store),
        params,
        {
            _keys.ONESHOT_SCORE: score,
            _keys.ONESHOT_STRATEGY: strategy,
            **({_keys.ONESHOT_PROXY: proxy} if proxy else {}),
        },
    )
    return OneShotResult(
        trial=trial.number,
        params=params,
        oneshot_score=score,
        value=trial.value,
        supernet_seconds=supernet_seconds,
        search_seconds=search_seconds,
        losses=losses,
    )


def _gradient(
    study: optuna.Study,
    space: SearchSpace,
    dataset: Dataset,
    training: TrainingConfig,
    method: str,
    epochs: int,
    seed: int,
    artifact_store: ArtifactStore | None,
    progress: bool,
) -> OneShotResult:
    from optuna_nas import oneshot
    from optuna_nas.oneshot._gradient import encode_history
    from optuna_nas.study._objective import ArchitectureObjective
    from optuna_nas.training import seed_everything

    seed_everything(seed)  # the supernet's initial weights
    supernet = oneshot.build_supernet(space, dataset.input_shape, dataset.num_classes)
    start = time.perf_counter()
    found = oneshot.gradient_search(
        supernet,
        dataset,
        method=method,
        epochs=epochs,
        lr=training.lr,
        weight_decay=training.weight_decay,
        seed=seed,
        device=training.device,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    trial = _train_derived(
        study,
        ArchitectureObjective(space, dataset, training, seed=seed, artifact_store=artifact_store),
        found.params,
        {
            _keys.ONESHOT_STRATEGY: method,
            _keys.ARCHITECTURE_WEIGHTS: encode_history(found.history),
        },
    )
    plot = None
    try:
        from optuna_nas.dashboard import save_architecture_weights

        plot = save_architecture_weights(study, trial)
    except ImportError as err:
        _logger.warning("the architecture-weights plot was not saved: %s", err)
    return OneShotResult(
        trial=trial.number,
        params=found.params,
        oneshot_score=None,
        value=trial.value,
        supernet_seconds=seconds,
        search_seconds=0.0,
        losses=found.losses,
        history=found.history,
        plot=plot,
    )


def _train_derived(
    study: optuna.Study,
    objective: Any,
    params: dict[str, Any],
    user_attrs: dict[str, Any],
) -> optuna.trial.FrozenTrial:
    """Enqueues the derived architecture with ``user_attrs`` and trains it as one trial."""
    study.enqueue_trial(params, user_attrs=user_attrs, skip_if_exists=False)
    study.optimize(objective, n_trials=1)
    return study.trials[-1]


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
