"""Every study and trial attribute key that optuna-nas writes, in one module.

All keys live under one namespace, ``optuna_nas:``, so that they cannot collide with a
user's own attributes (``batch_size`` or ``worker`` are common names) and so that the
dashboard groups them. Studies written by earlier releases used plain names for some of
them; :func:`read` still finds those, so such studies keep working (resume, workers,
``train-best``, the dashboard plots).

This module imports nothing from the package: spaces, training, samplers, pruners and the
CLI all depend on it, and it depends on none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAMESPACE = "optuna_nas:"

# -- Study user attributes: the settings a study is created with ------------------------
STUDY_SPACE = "optuna_nas:space"
"""The space spec ``{"space": name, "config": {...}}``; resuming with another is refused."""
STUDY_DATASET = "optuna_nas:dataset"
"""The :class:`~optuna_nas.DatasetConfig` as a dict."""
STUDY_TRAINING = "optuna_nas:training"
"""The :class:`~optuna_nas.TrainingConfig` as a dict."""
STUDY_OBJECTIVE = "optuna_nas:objective"
"""The :class:`~optuna_nas.study.ObjectiveConfig` as a dict (seed, weight inheritance,
checkpoints), which every process running trials of the study uses."""
STUDY_SAMPLER = "optuna_nas:sampler"
"""``{"name": ..., "seed": ..., "kwargs": {...}}``: the sampler a worker rebuilds (``kwargs``
only when given)."""
STUDY_PRUNER = "optuna_nas:pruner"
"""``{"name": ..., "kwargs": {...}}``: the pruner a worker rebuilds."""
STUDY_ARTIFACT_DIR = "optuna_nas:artifact_dir"
"""Absolute path of the study's artifact folder (drawings, checkpoints)."""
STUDY_RETRAINED = "optuna_nas:retrained"
"""Prefix of the retrainings of searched architectures (``train-best``), one attribute
``optuna_nas:retrained:NNNN`` each: trial, architecture, dataset, epochs, test accuracy,
params, FLOPs, settings, command."""
STUDY_RANK_CORRELATION = "optuna_nas:rank_correlation"
"""The low-fidelity pruner's measured rank correlation of each rung with the final value."""
FIDELITY_UNSELECTED_PREFIX = "optuna_nas:fidelity_unselected:"
"""Trial system attribute prefix, plus a rung's step: the trial passed that rung while it
was not pruning, so its value there and its final value measure the rung without bias."""

# -- Trial user attributes: what a trial was and what it measured -----------------------
TRIAL_SPACE = "optuna_nas:space"
"""The spec of the space that suggested the trial's architecture."""
ARCHITECTURE = "optuna_nas:architecture"
"""The trial's architecture as JSON (:meth:`~optuna_nas.Architecture.to_json`)."""
FAIL_REASON = "optuna_nas:fail_reason"
"""Why a trial failed: ``oom``, ``nan_loss``, ``interrupted``, ``artifact_write``, ..."""
TEST_ACCURACY = "optuna_nas:test_accuracy"
"""Test accuracy, recorded for reporting only; nothing selects on it."""
N_PARAMS = "optuna_nas:n_params"
FLOPS = "optuna_nas:flops"
DEVICE = "optuna_nas:device"
LATENCY_MS = "optuna_nas:latency_ms"
SECONDS_PER_EPOCH = "optuna_nas:seconds_per_epoch"
SAMPLES_PER_SECOND = "optuna_nas:samples_per_second"
PEAK_GPU_MEMORY_MB = "optuna_nas:peak_gpu_memory_mb"
ESTIMATED_GPU_MEMORY_MB = "optuna_nas:estimated_gpu_memory_mb"
"""The memory a trial reserved on a GPU shared with other trials (estimate times margin)."""
GPU_MEMORY_WAIT_SECONDS = "optuna_nas:gpu_memory_wait_seconds"
"""How long the trial waited for its GPU memory reservation."""
GPU_MEMORY_ESTIMATE_ERROR = "optuna_nas:gpu_memory_estimate_error"
"""Why the trial's GPU memory could not be estimated, so that it trained unreserved."""
GPU_ALONE = "optuna_nas:gpu_alone"
"""Whether the trial needed more than the shared GPU's budget and so ran alone on it."""
BATCH_SIZE = "optuna_nas:batch_size"
"""The batch size the trial trains with; set before the trial starts (an OOM retry), it
overrides the study's."""
DRAWING = "optuna_nas:architecture_svg"
"""Artifact id of the architecture's SVG drawing."""
ARTIFACT_ERROR = "optuna_nas:artifact_error"
"""Why an artifact of the trial could not be written."""
CHECKPOINT = "optuna_nas:checkpoint_artifact"
"""Artifact id of the trial's weights."""
INHERITED_TENSORS = "optuna_nas:inherited_tensors"
PARTIALLY_INHERITED_TENSORS = "optuna_nas:partially_inherited_tensors"
MODEL_TENSORS = "optuna_nas:model_tensors"
PEAK_LR = "optuna_nas:peak_lr"
PARENT_TRIAL = "optuna_nas:parent_trial"
"""The number of the trial a child was mutated from, shown in the dashboard."""
WORKER = "optuna_nas:worker"
"""``host``, ``pid``, ``slot``, ``gpu`` and ``cuda_visible_devices`` of the trial's process."""
RETRY_OF = "optuna_nas:retry_of"
"""The number of the failed trial a retry repeats."""
RETRY_REASON = "optuna_nas:retry_reason"
"""Why the trial a retry repeats failed."""
ONESHOT_SCORE = "optuna_nas:oneshot_score"
"""The trial's architecture scored with a supernet's shared weights (validation accuracy or
negative loss); on a search's derived trial with ``ONESHOT_PROXY``, the combined estimate."""
ONESHOT_PROXY = "optuna_nas:oneshot_proxy"
"""The zero-cost proxy the one-shot search that derived the trial combined with the shared
weights' score."""
ONESHOT_STRATEGY = "optuna_nas:oneshot_strategy"
"""How the trial's architecture was found: the supernet's training (``spos``, ``fair``) or
the gradient method (``darts``, ``gdas``, ``drnas``, ``beta-darts``)."""
ARCHITECTURE_WEIGHTS = "optuna_nas:architecture_weights"
"""The architecture distribution of the gradient search that derived the trial, after each
epoch: ``{"decisions": {name: [candidate, ...]}, "epochs": [[[p, ...], ...], ...]}``."""
PROXY_SCORE = "optuna_nas:proxy_score"
"""The zero-cost proxy score of the trial's architecture (an estimate rung, a proxy-seeded
trial, or a weight-sharing objective with a proxy)."""
STUDY_SUPERNET = "optuna_nas:supernet_artifact"
"""Artifact id of the study's trained supernet checkpoint (``optuna-nas oneshot``)."""
LCE_PREDICTED_MEAN = "optuna_nas:lce_predicted_mean"
LCE_PREDICTED_STD = "optuna_nas:lce_predicted_std"
LCE_P_IMPROVE = "optuna_nas:lce_p_improve"
LCE_STD_SCALE = "optuna_nas:lce_std_scale"
RANK_FRACTION_BETTER = "optuna_nas:rank_fraction_better"
"""The rank pruner's latest fraction of the study's trials that were better at the same step."""
PRUNER_NOT_DECIDED = "optuna_nas:pruner_not_decided"
"""Why a pruner could not decide for the trial, when the reason is not a documented wait."""
CURVE_PREFIX = "optuna_nas:intermediate_values:"
"""``CURVE_PREFIX + objective``: one objective's reported curve in a multi-objective study."""

# -- Trial system attributes: sampler and pruner state ----------------------------------
PARENT = "optuna_nas:parent"
"""The parent a sampler recorded for a child (system attribute, written before training)."""
PLAN_PREFIX = "optuna_nas:plan:"
"""``PLAN_PREFIX + sampler class``: the architecture a sampler planned for a trial."""
LCE_PREDICTIONS = "optuna_nas:lce_predictions"
"""The learning-curve pruner's fitted parameters, to warm-start the next fit."""

# -- Tabular-benchmark trials -----------------------------------------------------------
BENCH_ARCH = "optuna_nas:bench_arch"
BENCH_TEST_ACCURACY = "optuna_nas:bench_test_accuracy"
BENCH_SIMULATED_SECONDS = "optuna_nas:bench_simulated_seconds"
BENCH_OVER_BUDGET = "optuna_nas:bench_over_budget"

LEGACY: dict[str, str] = {
    STUDY_RANK_CORRELATION: "fidelity:rank_correlation",
    FAIL_REASON: "fail_reason",
    TEST_ACCURACY: "test_accuracy",
    N_PARAMS: "n_params",
    FLOPS: "flops",
    DEVICE: "device",
    LATENCY_MS: "latency_ms",
    SECONDS_PER_EPOCH: "seconds_per_epoch",
    SAMPLES_PER_SECOND: "samples_per_second",
    PEAK_GPU_MEMORY_MB: "peak_gpu_memory_mb",
    BATCH_SIZE: "batch_size",
    DRAWING: "architecture_svg",
    ARTIFACT_ERROR: "artifact_error",
    CHECKPOINT: "checkpoint_artifact",
    INHERITED_TENSORS: "inherited_tensors",
    PARTIALLY_INHERITED_TENSORS: "partially_inherited_tensors",
    MODEL_TENSORS: "model_tensors",
    PEAK_LR: "peak_lr",
    PARENT_TRIAL: "parent_trial",
    WORKER: "worker",
    RETRY_OF: "retry_of",
    RETRY_REASON: "retry_reason",
    LCE_PREDICTED_MEAN: "lce:predicted_mean",
    LCE_PREDICTED_STD: "lce:predicted_std",
    LCE_P_IMPROVE: "lce:p_improve",
    LCE_STD_SCALE: "lce:std_scale",
    LCE_PREDICTIONS: "lce:predictions",
}
"""Each namespaced key and the plain name earlier releases wrote it under."""

_LEGACY_PREFIXES = {CURVE_PREFIX: "intermediate_values:"}


def read(attrs: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``attrs[key]``, else the value under the key's earlier name, else ``default``.

    Args:
        attrs: A study's or trial's ``user_attrs`` or ``system_attrs``.
        key: One of this module's keys (or a :data:`CURVE_PREFIX` key).
        default: What to return when neither name is present.
    """
    if key in attrs:
        return attrs[key]
    legacy = LEGACY.get(key)
    if legacy is None:
        for prefix, old in _LEGACY_PREFIXES.items():
            if key.startswith(prefix):
                legacy = old + key[len(prefix) :]
    if legacy is not None and legacy in attrs:
        return attrs[legacy]
    return default


def has(attrs: Mapping[str, Any], key: str) -> bool:
    """Whether ``attrs`` holds ``key`` under its name or its earlier one."""
    sentinel = object()
    return read(attrs, key, sentinel) is not sentinel
