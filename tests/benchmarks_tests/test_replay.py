from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from scipy.stats import spearmanr

from optuna_nas import pruners
from optuna_nas.benchmarks import (
    Curve,
    random_orders,
    rank_correlation_before,
    reference_pick,
    replay_study,
    replay_top_k,
    run_methods,
    score_replay,
    summarize_scores,
)


def _curves() -> list[Curve]:
    # 0: starts high, ends 0.80; 1: late bloomer, ends best at 0.95; 2: poor; 3: ties 0 at the end.
    return [
        Curve((0.60, 0.70, 0.75, 0.80), test=0.79, name="steady"),
        Curve((0.10, 0.20, 0.60, 0.95), test=0.93, name="late"),
        Curve((0.20, 0.25, 0.30, 0.35), test=0.30, name="poor"),
        Curve((0.50, 0.60, 0.70, 0.80), test=0.81, name="tie"),
    ]


def test_no_pruning_completes_everything_and_matches_the_reference() -> None:
    curves = _curves()
    order = (2, 0, 1, 3)
    result = replay_study(curves, order, optuna.pruners.NopPruner(), method="none")
    assert result.n_steps == (4, 4, 4, 4)
    assert result.pruned == (False,) * 4
    assert result.selected == reference_pick(curves, order) == 2  # curve 1 ran third
    score = score_replay(curves, result)
    assert score.steps_saved == 0.0 and score.cost_saved == 0.0
    assert score.regret == 0.0 and score.unchanged and not score.best_pruned
    assert score.test == pytest.approx(0.93)


def test_a_pruner_that_stops_the_late_bloomer_is_charged_for_it() -> None:
    curves = _curves()
    order = (0, 1, 2, 3)
    # Optuna's ThresholdPruner stops any trial whose value falls below 0.5.
    result = replay_study(curves, order, optuna.pruners.ThresholdPruner(lower=0.5), method="t")
    assert result.n_steps == (4, 1, 1, 4)
    assert result.pruned == (False, True, True, False)
    assert [e.trial for e in result.events] == [1, 2]
    assert all(e.step == 0 for e in result.events)
    assert result.selected == 0  # ties with curve 3 at 0.80; the earlier trial wins
    score = score_replay(curves, result)
    assert score.steps_saved == pytest.approx(1 - 10 / 16)
    assert score.best_pruned
    assert score.regret == pytest.approx(0.15)
    assert not score.unchanged
    assert score.final == pytest.approx(0.80)
    assert score.test == pytest.approx(0.79) and score.reference_test == pytest.approx(0.93)


def test_a_prune_at_the_last_step_saves_nothing_but_loses_the_trial() -> None:
    curves = [Curve((0.9, 0.9, 0.4)), Curve((0.5, 0.6, 0.7))]
    result = replay_study(curves, (0, 1), optuna.pruners.ThresholdPruner(lower=0.45))
    assert result.n_steps == (3, 3)
    assert result.pruned == (True, False)
    score = score_replay(curves, result)
    assert score.steps_saved == 0.0
    assert result.selected == 1 and score.regret == 0.0  # 0.7 is the best final anyway


def test_minimisation_flips_pick_and_regret() -> None:
    curves = [Curve((0.9, 0.5)), Curve((0.8, 0.2)), Curve((0.7, 0.3))]
    order = (0, 1, 2)
    assert reference_pick(curves, order, "minimize") == 1
    result = replay_study(
        curves, order, optuna.pruners.ThresholdPruner(upper=0.75), direction="minimize"
    )
    assert result.pruned == (True, True, False)
    score = score_replay(curves, result, "minimize")
    assert score.regret == pytest.approx(0.1)
    assert score.best_pruned


def test_top_k_trains_all_one_step_and_finishes_the_best_k() -> None:
    curves = _curves()
    order = (0, 1, 2, 3)
    result = replay_top_k(curves, order, 2, method="top")
    assert result.n_steps == (4, 1, 1, 4)  # curves 0 and 3 lead after one step
    assert result.selected == 0
    score = score_replay(curves, result)
    assert score.best_pruned and score.regret == pytest.approx(0.15)
    everything = replay_top_k(curves, order, 4)
    assert everything.n_steps == (4, 4, 4, 4)
    assert everything.selected == reference_pick(curves, order)
    with pytest.raises(ValueError, match="k >= 1"):
        replay_top_k(curves, order, 0)


def test_costs_weight_the_saving() -> None:
    curves = [
        Curve((0.5, 0.6, 0.7), costs=(1.0, 2.0, 4.0)),
        Curve((0.1, 0.2, 0.3), costs=(1.0, 2.0, 4.0)),
    ]
    result = replay_study(curves, (0, 1), optuna.pruners.ThresholdPruner(lower=0.15))
    assert result.n_steps == (3, 1)
    score = score_replay(curves, result)
    assert score.steps_saved == pytest.approx(1 - 4 / 6)
    assert score.cost_saved == pytest.approx(1 - 8 / 14)


def test_bad_curves_and_orders_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match="at least 2 steps"):
        Curve((0.5,))
    with pytest.raises(ValueError, match="non-finite"):
        Curve((0.5, math.nan), name="x")
    with pytest.raises(ValueError, match="2 costs for 3 steps"):
        Curve((0.1, 0.2, 0.3), costs=(1.0, 2.0))
    with pytest.raises(ValueError, match=r"outside 0\.\.3"):
        replay_study(_curves(), (0, 7), optuna.pruners.NopPruner())
    with pytest.raises(ValueError, match="empty"):
        reference_pick(_curves(), ())
    with pytest.raises(ValueError, match="direction must be 'maximize' or 'minimize'"):
        reference_pick(_curves(), (0, 1), "max")
    with pytest.raises(ValueError, match="n_trials must be from 2"):
        random_orders(4, 3, n_trials=5)


def test_random_orders_are_seeded_and_distinct() -> None:
    a = random_orders(10, 5, n_trials=6, seed=3)
    assert a == random_orders(10, 5, n_trials=6, seed=3)
    assert a != random_orders(10, 5, n_trials=6, seed=4)
    assert all(len(set(o)) == 6 and all(0 <= i < 10 for i in o) for o in a)


def test_rank_correlation_is_recomputed_from_finished_trials_only() -> None:
    curves = [
        Curve((0.1, 0.2, 0.3)),
        Curve((0.3, 0.4, 0.9)),
        Curve((0.2, 0.1, 0.5)),
        Curve((0.4, 0.5, 0.6)),
        Curve((0.0, 0.1, 0.2)),
    ]
    result = replay_study(curves, (0, 1, 2, 3, 4), optuna.pruners.ThresholdPruner(lower=0.05))
    assert result.pruned == (False, False, False, False, True)
    rho, pairs = rank_correlation_before(curves, result, 4, 0)
    expected = spearmanr([0.1, 0.3, 0.2, 0.4], [0.3, 0.9, 0.5, 0.6]).statistic
    assert pairs == 4 and rho == pytest.approx(expected)
    assert rank_correlation_before(curves, result, 2, 0) == (None, 2)


def test_run_methods_scores_every_method_on_every_order_with_real_pruners() -> None:
    curves = [
        Curve(tuple(min(1.0, a * (1 - 0.7 ** (s + 1))) for s in range(12)), test=a)
        for a in (0.5, 0.9, 0.6, 0.7, 0.4, 0.8, 0.55, 0.65, 0.75, 0.85)
    ]
    orders = random_orders(len(curves), 3, seed=0)
    seen: list[str] = []
    scores = run_methods(
        curves,
        orders,
        {
            "none": lambda max_step: pruners.create("none", max_step=max_step),
            "hyperband": lambda max_step: pruners.create("hyperband", max_step=max_step),
        },
        top_k=(0.2,),
        on_result=lambda r: seen.append(r.method),
    )
    assert len(scores) == 9 and seen.count("top-20% after 1 step") == 3
    summaries = {s.method: s for s in summarize_scores(scores)}
    assert set(summaries) == {"none", "hyperband", "top-20% after 1 step"}
    assert summaries["none"].steps_saved == 0.0 and summaries["none"].unchanged == 1.0
    # These curves never cross, so the one-step ranking is the final ranking.
    assert summaries["top-20% after 1 step"].regret_max == 0.0
    assert summaries["top-20% after 1 step"].steps_saved == pytest.approx(1 - (10 + 2 * 11) / 120)
    assert summaries["hyperband"].steps_saved > 0.0
    # Hyperband brackets hash the study name, which is fixed per order: replays repeat.
    again = run_methods(
        curves,
        orders,
        {"hyperband": lambda m: pruners.create("hyperband", max_step=m)},
    )
    assert [s.steps_saved for s in again] == [
        s.steps_saved for s in scores if s.method == "hyperband"
    ]


def test_unselected_correlation_matches_what_the_fidelity_pruner_publishes() -> None:
    from optuna_nas.benchmarks import unselected_rank_correlation_before

    rng = np.random.RandomState(0)
    curves = []
    for _ in range(60):
        level = rng.uniform(0.3, 0.9)
        noise = rng.normal(0, 0.05, 10)
        curves.append(
            Curve(tuple(float(v) for v in level * (1 - np.exp(-np.arange(1, 11) / 3)) + noise))
        )
    pruner = pruners.LowFidelityPruner(max_step=9)
    result = replay_study(curves, tuple(range(60)), pruner)
    assert result.events  # the pruner did prune, so the check below ran
    for event in result.events:
        published = {e["step"]: e for e in event.study_user_attrs[pruners.RANK_CORRELATION_ATTR]}[
            event.step
        ]
        rho, pairs = unselected_rank_correlation_before(
            curves, result, event.trial, event.step, 0.6, 6
        )
        assert pairs == published["pairs"]
        assert rho == pytest.approx(published["correlation"])
