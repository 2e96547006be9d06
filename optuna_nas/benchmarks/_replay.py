"""Replaying recorded learning curves through real Optuna studies to measure pruners.

A recorded curve stands in for training: a replayed trial reports the curve's values step
by step with ``trial.report`` and asks ``trial.should_prune``, exactly as
:func:`optuna_nas.training.fit` does, in a single-worker study with in-memory storage. A
pruner is judged by what it saves and by what it costs: the reference is the same study
without pruning, which completes every trial of the same order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

UNCHANGED_TOLERANCE = 0.001
"""Regret up to which a pick counts as unchanged: 0.1 percentage point of accuracy."""


@dataclass(frozen=True)
class Curve:
    """One recorded learning curve.

    Attributes:
        values: The metric after each step (steps ``0, 1, ...``); the last is the final value.
        test: The test metric after the last step, if recorded.
        costs: Cost of each step (e.g. the training-set size of a sample-wise curve);
            ``None`` means one unit per step (epochs).
        name: A label, e.g. the architecture.
    """

    values: tuple[float, ...]
    test: float | None = None
    costs: tuple[float, ...] | None = None
    name: str = ""

    def __post_init__(self) -> None:
        if len(self.values) < 2:
            raise ValueError(f"a curve needs at least 2 steps, got {len(self.values)}")
        if not all(math.isfinite(v) for v in self.values):
            raise ValueError(f"curve {self.name!r} has a non-finite value; drop it first")
        if self.costs is not None and len(self.costs) != len(self.values):
            raise ValueError(
                f"curve {self.name!r}: {len(self.costs)} costs for {len(self.values)} steps"
            )

    @property
    def final(self) -> float:
        """The value after the last step."""
        return self.values[-1]

    def cost(self, n_steps: int) -> float:
        """Cost of the first ``n_steps`` steps."""
        if self.costs is None:
            return float(n_steps)
        return float(sum(self.costs[:n_steps]))


@dataclass(frozen=True)
class PruneEvent:
    """A pruning decision that stopped a trial, with what the study published then.

    Attributes:
        trial: Position of the trial in the replay order.
        step: The last step the trial reported.
        study_user_attrs: A copy of the study's user attributes just after the decision,
            e.g. the rung correlations a low-fidelity pruner publishes.
    """

    trial: int
    step: int
    study_user_attrs: dict[str, Any]


@dataclass(frozen=True)
class ReplayResult:
    """What one method did on one ordering of the curves.

    Attributes:
        method: Name of the pruner or baseline.
        order: Curve indices in the order the trials ran.
        n_steps: Steps each trial reported, aligned with ``order``.
        pruned: Whether each trial was stopped early, aligned with ``order``.
        selected: Position in ``order`` of the trial the method picks as best (the
            study's ``best_trial``), or ``None`` if no trial completed.
        events: The pruning decisions, in order.
    """

    method: str
    order: tuple[int, ...]
    n_steps: tuple[int, ...]
    pruned: tuple[bool, ...]
    selected: int | None
    events: tuple[PruneEvent, ...] = field(default=())


@dataclass(frozen=True)
class ReplayScore:
    """One replay compared with the same order run without pruning.

    Attributes:
        method: Name of the pruner or baseline.
        steps_saved: Fraction of all steps (epochs) not run.
        cost_saved: Fraction of the summed step costs not run (equals ``steps_saved``
            for curves without costs).
        best_pruned: Whether the trial the unpruned study picks was stopped early.
        regret: Final value of the unpruned pick minus that of this method's pick
            (maximisation; the sign is flipped for minimisation), so 0 when as good.
        unchanged: Whether the regret is at most the tolerance (default
            :data:`UNCHANGED_TOLERANCE`, 0.1 percentage point of accuracy).
        final: Final value of this method's pick (NaN when nothing completed).
        test: Test value of this method's pick, when recorded (NaN otherwise).
        reference_test: Test value of the unpruned pick, when recorded (NaN otherwise).
    """

    method: str
    steps_saved: float
    cost_saved: float
    best_pruned: bool
    regret: float
    unchanged: bool
    final: float
    test: float
    reference_test: float


def replay_study(
    curves: Sequence[Curve],
    order: Sequence[int],
    pruner: optuna.pruners.BasePruner,
    *,
    method: str = "",
    direction: str = "maximize",
    study_name: str = "replay",
) -> ReplayResult:
    """Runs the curves of ``order`` one after another as trials of a study with ``pruner``.

    Each trial reports its curve with ``trial.report(value, step)`` and asks
    ``trial.should_prune()`` after every step, the last included, as
    :func:`optuna_nas.training.fit` does; it stops at the first yes (a prune at the last
    step saves nothing but still loses the trial), and otherwise completes with its final
    value. The study uses in-memory storage and ``study_name`` (Hyperband assigns brackets
    by hashing it, so a fixed name makes replays repeatable).

    Args:
        curves: The recorded curves.
        order: Indices into ``curves``, the trials in the order they run.
        pruner: The pruner under test; a fresh one per replay, since pruners keep state.
        method: Name stored in the result.
        direction: ``"maximize"`` or ``"minimize"``.
        study_name: Name of the in-memory study.

    Returns:
        A :class:`ReplayResult`.
    """
    _check_order(curves, order)
    study = optuna.create_study(
        storage=optuna.storages.InMemoryStorage(),
        study_name=study_name,
        direction="maximize" if _sign(direction) > 0 else "minimize",
        pruner=pruner,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    n_steps: list[int] = []
    pruned: list[bool] = []
    events: list[PruneEvent] = []
    for position, index in enumerate(order):
        trial = study.ask()
        values = curves[index].values
        stopped = False
        for step, value in enumerate(values):
            trial.report(value, step)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                events.append(PruneEvent(position, step, dict(study.user_attrs)))
                n_steps.append(step + 1)
                stopped = True
                break
        if not stopped:
            study.tell(trial, values[-1])
            n_steps.append(len(values))
        pruned.append(stopped)
    try:
        selected: int | None = study.best_trial.number
    except ValueError:
        selected = None
    return ReplayResult(
        method, tuple(order), tuple(n_steps), tuple(pruned), selected, tuple(events)
    )


def replay_top_k(
    curves: Sequence[Curve],
    order: Sequence[int],
    k: int,
    *,
    method: str = "",
    warmup_steps: int = 1,
    direction: str = "maximize",
) -> ReplayResult:
    """The "train everything briefly, keep the top-k" baseline.

    Every trial runs ``warmup_steps`` steps; the ``k`` best by the value after them (ties
    go to the earlier trial) run to the end, and the best of those by final value is
    picked (ties again to the earlier trial, as Optuna's ``best_trial`` does).

    Raises:
        ValueError: For ``k < 1`` or ``warmup_steps < 1``.
    """
    _check_order(curves, order)
    if k < 1 or warmup_steps < 1:
        raise ValueError(f"need k >= 1 and warmup_steps >= 1, got k={k}, {warmup_steps=}")
    sign = _sign(direction)
    early = [sign * curves[i].values[min(warmup_steps, len(curves[i].values)) - 1] for i in order]
    # Stable sort on the negated score keeps the earlier trial first among ties.
    kept = set(sorted(range(len(order)), key=lambda p: -early[p])[:k])
    n_steps = tuple(
        len(curves[i].values) if p in kept else min(warmup_steps, len(curves[i].values))
        for p, i in enumerate(order)
    )
    pruned = tuple(n < len(curves[i].values) for n, i in zip(n_steps, order, strict=True))
    complete = [p for p in range(len(order)) if not pruned[p]]
    selected = max(complete, key=lambda p: (sign * curves[order[p]].final, -p), default=None)
    return ReplayResult(method, tuple(order), n_steps, pruned, selected)


def reference_pick(
    curves: Sequence[Curve], order: Sequence[int], direction: str = "maximize"
) -> int:
    """Position in ``order`` of the trial a study without pruning picks as best.

    The best final value wins; among ties the earlier trial, as Optuna's ``best_trial``.
    """
    _check_order(curves, order)
    sign = _sign(direction)
    return max(range(len(order)), key=lambda p: (sign * curves[order[p]].final, -p))


def score_replay(
    curves: Sequence[Curve],
    result: ReplayResult,
    direction: str = "maximize",
    tolerance: float = UNCHANGED_TOLERANCE,
) -> ReplayScore:
    """Compares ``result`` with the same order run without pruning.

    Args:
        curves: The curves the replay used.
        result: From :func:`replay_study` or :func:`replay_top_k`.
        direction: ``"maximize"`` or ``"minimize"``.
        tolerance: Largest regret at which the pick counts as unchanged.
    """
    order = result.order
    sign = _sign(direction)
    full_steps = sum(len(curves[i].values) for i in order)
    full_cost = sum(curves[i].cost(len(curves[i].values)) for i in order)
    used_cost = sum(curves[i].cost(n) for i, n in zip(order, result.n_steps, strict=True))
    reference = reference_pick(curves, order, direction)
    ref_curve = curves[order[reference]]
    if result.selected is None:
        final = test = math.nan
        regret = math.inf
    else:
        pick = curves[order[result.selected]]
        final = pick.final
        test = math.nan if pick.test is None else pick.test
        regret = sign * (ref_curve.final - final)
    return ReplayScore(
        method=result.method,
        steps_saved=1.0 - sum(result.n_steps) / full_steps,
        cost_saved=1.0 - used_cost / full_cost,
        best_pruned=result.pruned[reference],
        regret=regret,
        unchanged=regret <= tolerance + 1e-12,
        final=final,
        test=test,
        reference_test=math.nan if ref_curve.test is None else ref_curve.test,
    )


@dataclass(frozen=True)
class MethodSummary:
    """Scores of one method averaged over replays.

    Attributes:
        method: Name of the pruner or baseline.
        n_replays: Replays scored.
        steps_saved: Mean fraction of steps saved.
        cost_saved: Mean fraction of step cost saved.
        best_pruned: Fraction of replays in which the unpruned pick was stopped early.
        unchanged: Fraction of replays whose pick is unchanged (regret within tolerance).
        regret_mean: Mean regret of the final value.
        regret_max: Largest regret.
        test_mean: Mean test value of the pick (NaN if not recorded).
        test_delta: Mean test value of the pick minus that of the unpruned pick.
    """

    method: str
    n_replays: int
    steps_saved: float
    cost_saved: float
    best_pruned: float
    unchanged: float
    regret_mean: float
    regret_max: float
    test_mean: float
    test_delta: float


def summarize_scores(scores: Sequence[ReplayScore]) -> list[MethodSummary]:
    """One :class:`MethodSummary` per method, in order of first appearance."""
    by_method: dict[str, list[ReplayScore]] = {}
    for s in scores:
        by_method.setdefault(s.method, []).append(s)
    out = []
    for method, group in by_method.items():
        regrets = np.array([s.regret for s in group])
        tests = np.array([s.test for s in group])
        ref_tests = np.array([s.reference_test for s in group])
        out.append(
            MethodSummary(
                method=method,
                n_replays=len(group),
                steps_saved=float(np.mean([s.steps_saved for s in group])),
                cost_saved=float(np.mean([s.cost_saved for s in group])),
                best_pruned=float(np.mean([s.best_pruned for s in group])),
                unchanged=float(np.mean([s.unchanged for s in group])),
                regret_mean=float(np.mean(regrets)),
                regret_max=float(np.max(regrets)),
                test_mean=_nanmean(tests),
                test_delta=_nanmean(tests - ref_tests),
            )
        )
    return out


def random_orders(
    n_curves: int, n_replays: int, n_trials: int | None = None, seed: int = 0
) -> list[tuple[int, ...]]:
    """``n_replays`` random orders, each of ``n_trials`` distinct curves (all if ``None``).

    Raises:
        ValueError: When ``n_trials`` exceeds ``n_curves`` or is below 2.
    """
    size = n_curves if n_trials is None else n_trials
    if not 2 <= size <= n_curves:
        raise ValueError(
            f"n_trials must be from 2 to the number of curves ({n_curves}), got {size}"
        )
    rng = np.random.default_rng(seed)
    return [tuple(int(i) for i in rng.permutation(n_curves)[:size]) for _ in range(n_replays)]


def run_methods(
    curves: Sequence[Curve],
    orders: Sequence[Sequence[int]],
    pruners: Mapping[str, Callable[[int], optuna.pruners.BasePruner]],
    *,
    top_k: Sequence[float] = (),
    direction: str = "maximize",
    on_result: Callable[[ReplayResult], None] | None = None,
) -> list[ReplayScore]:
    """Replays every order with every pruner and top-k baseline and scores them.

    Args:
        curves: The recorded curves.
        orders: Trial orders, e.g. from :func:`random_orders`.
        pruners: Method name -> factory taking ``max_step`` (the last step of the longest
            curve in the order) and returning a fresh pruner.
        top_k: Fractions of the trials the top-k baseline keeps (``k`` rounds up).
        direction: ``"maximize"`` or ``"minimize"``.
        on_result: Called with every :class:`ReplayResult`, e.g. to check pruning events.

    Returns:
        One :class:`ReplayScore` per (order, method), orders outermost.
    """
    scores = []
    for r, order in enumerate(orders):
        max_step = max(len(curves[i].values) for i in order) - 1
        results = [
            replay_study(
                curves,
                order,
                make(max_step),
                method=name,
                direction=direction,
                study_name=f"replay-{r}",
            )
            for name, make in pruners.items()
        ]
        for fraction in top_k:
            k = max(1, math.ceil(fraction * len(order)))
            results.append(
                replay_top_k(
                    curves,
                    order,
                    k,
                    method=f"top-{fraction:.0%} after 1 step",
                    direction=direction,
                )
            )
        for result in results:
            if on_result is not None:
                on_result(result)
            scores.append(score_replay(curves, result, direction))
    return scores


def _check_order(curves: Sequence[Curve], order: Sequence[int]) -> None:
    if not order:
        raise ValueError("order is empty; give at least one curve index")
    bad = [i for i in order if not 0 <= i < len(curves)]
    if bad:
        raise ValueError(f"order has indices outside 0..{len(curves) - 1}: {bad[:5]}")


def _sign(direction: str) -> float:
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', got {direction!r}")
    return 1.0 if direction == "maximize" else -1.0


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


__all__ = [
    "UNCHANGED_TOLERANCE",
    "Curve",
    "MethodSummary",
    "PruneEvent",
    "ReplayResult",
    "ReplayScore",
    "random_orders",
    "reference_pick",
    "replay_study",
    "replay_top_k",
    "run_methods",
    "score_replay",
    "summarize_scores",
]
