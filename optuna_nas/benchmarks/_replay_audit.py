"""Independent recomputation of rung correlations from a replay, to audit pruners."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from optuna_nas.benchmarks._replay import Curve, ReplayResult


def rank_correlation_before(
    curves: Sequence[Curve], result: ReplayResult, position: int, step: int
) -> tuple[float | None, int]:
    """Spearman correlation between ``step`` and the final step, as known at ``position``.

    Recomputed from the replay itself, independently of any pruner: over the trials that
    ran before ``position`` and reported both ``step`` and their curve's last step, the
    rank correlation of the values there. Use it to audit a pruner that promises to prune
    only at rungs that rank trials like the final rung.

    Returns:
        ``(correlation, pairs)``; the correlation is ``None`` with fewer than 3 pairs or
        when either side is constant.
    """
    return _finished_correlation(curves, result, range(position), step)


def unselected_rank_correlation_before(
    curves: Sequence[Curve],
    result: ReplayResult,
    position: int,
    step: int,
    min_correlation: float,
    min_pairs: int,
) -> tuple[float | None, int]:
    """Like :func:`rank_correlation_before`, over the trials a rung did not select.

    A low-fidelity pruner that measures a rung only on the trials that passed it while
    it was not pruning (:class:`~optuna_nas.pruners.LowFidelityPruner`) is audited with
    this: going through the replay in order, a trial that reached ``step`` while the
    rung's correlation so far (over such trials that also reached their last step) was
    below ``min_correlation`` or on fewer than ``min_pairs`` of them passed it unselected.
    The trials run one after another in a replay, so each one's whole curve is known
    before the next starts.

    Returns:
        ``(correlation, pairs)`` over the unselected trials before ``position`` that
        reached their last step; the correlation is ``None`` as in
        :func:`rank_correlation_before`.
    """
    unselected: list[int] = []
    for p in range(position):
        if result.n_steps[p] <= step:
            continue
        rho, pairs = _finished_correlation(curves, result, unselected, step)
        if rho is None or pairs < min_pairs or rho < min_correlation:
            unselected.append(p)
    return _finished_correlation(curves, result, unselected, step)


def _finished_correlation(
    curves: Sequence[Curve], result: ReplayResult, positions: Iterable[int], step: int
) -> tuple[float | None, int]:
    """Spearman correlation between ``step`` and the last step over the trials at
    ``positions`` that reached their curve's last step; ``None`` with fewer than 3 such
    trials or when either side is constant."""
    from scipy.stats import spearmanr

    pairs = [
        (curves[i].values[step], curves[i].final)
        for i, n in ((result.order[p], result.n_steps[p]) for p in positions)
        if n == len(curves[i].values) and step < n
    ]
    if len(pairs) < 3:
        return None, len(pairs)
    low, high = zip(*pairs, strict=True)
    if len(set(low)) < 2 or len(set(high)) < 2:
        return None, len(pairs)
    return float(spearmanr(low, high).statistic), len(pairs)


__all__ = ["rank_correlation_before", "unselected_rank_correlation_before"]
