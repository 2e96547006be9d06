from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas import pruners
from optuna_nas.pruners import RankPruner

RANK = "optuna_nas:rank_fraction_better"
NOT_DECIDED = "optuna_nas:pruner_not_decided"


def _curves(
    n: int, seed: int = 0, steps: int = 10, chance_start: bool = False
) -> list[list[float]]:
    """Accuracy curves in [0, 1] whose ranks mostly hold from the first step, or from the
    second if ``chance_start`` (every curve then starts at 0.1, plus noise)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        final = rng.uniform(0.3, 0.95)
        x = np.arange(1.0, steps + 1)
        start = 0.1 if chance_start else final / 2
        clean = final - (final - start) * x**-1.0
        out.append(list(np.clip(clean + rng.normal(0.0, 0.01, steps), 0.0, 1.0)))
    return out


def _replay(
    curves: Sequence[Sequence[float]],
    pruner: optuna.pruners.BasePruner,
    direction: str = "maximize",
    transform: Callable[[float], float] = lambda v: v,
) -> list[int]:
    """Runs the curves as trials in order; returns the steps each trial ran."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    ran = []
    for curve in curves:
        trial = study.ask()
        for step, value in enumerate(curve):
            trial.report(transform(value), step)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                ran.append(step + 1)
                break
        else:
            study.tell(trial, transform(curve[-1]))
            ran.append(len(curve))
    return ran


def test_prunes_most_trials_and_keeps_the_best() -> None:
    curves = _curves(60)
    ran = _replay(curves, RankPruner(top_fraction=0.05))
    finals = [c[-1] for c, n in zip(curves, ran, strict=True) if n == len(c)]
    # The best trained to the end is the best of all, up to the curves' noise (0.01).
    assert max(finals) >= max(c[-1] for c in curves) - 0.02
    saved = 1.0 - sum(ran) / sum(len(c) for c in curves)
    median_ran = _replay(curves, optuna.pruners.MedianPruner())
    assert saved > 1.0 - sum(median_ran) / sum(len(c) for c in curves)


@pytest.mark.parametrize(
    ("direction", "transform"),
    [
        ("maximize", lambda v: 100.0 * v),  # percent
        ("minimize", lambda v: 1.0 - v),  # error
        ("minimize", lambda v: -math.log(max(v, 1e-9))),  # a loss-like monotone transform
        ("maximize", lambda v: 1000.0 * v - 5000.0),  # negative, unbounded
    ],
)
def test_decisions_do_not_depend_on_the_metric_scale(
    direction: str, transform: Callable[[float], float]
) -> None:
    curves = _curves(40, seed=1)
    reference = _replay(curves, RankPruner())
    assert _replay(curves, RankPruner(), direction, transform) == reference


def test_nothing_is_pruned_during_startup_and_warmup() -> None:
    curves = _curves(12, seed=2)
    ran = _replay(curves, RankPruner(n_startup_trials=12))
    assert ran == [len(c) for c in curves]
    ran = _replay(curves, RankPruner(n_startup_trials=1, n_warmup_steps=9))
    assert min(ran) >= 10


def test_the_fraction_is_stored_on_the_trial() -> None:
    curves = _curves(10, seed=3)
    study = optuna.create_study(direction="maximize", pruner=RankPruner())
    for curve in curves:
        study.add_trial(
            optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve)))
        )
    trial = study.ask()
    trial.report(-1.0, 0)  # worse than everyone
    assert trial.should_prune()
    attrs = study.trials[-1].user_attrs
    assert attrs[RANK] == 1.0


def test_nan_and_infinite_values_count_as_worst() -> None:
    curves = _curves(10, seed=4)
    for value in (math.nan, math.inf, -math.inf):
        study = optuna.create_study(direction="maximize", pruner=RankPruner())
        for curve in curves:
            study.add_trial(
                optuna.trial.create_trial(
                    value=curve[-1], intermediate_values=dict(enumerate(curve))
                )
            )
        trial = study.ask()
        trial.report(value, 0)
        assert trial.should_prune(), value


def test_a_pruned_trial_counts_as_worse_at_later_steps() -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=RankPruner(top_fraction=0.5, n_keep=1, completed_percentile=None),
    )
    for i in range(10):
        second = 0.6 + 0.02 * i
        study.add_trial(
            optuna.trial.create_trial(
                value=second, intermediate_values={0: 0.5 + 0.02 * i, 1: second}
            )
        )
    for _ in range(3):  # pruned after step 0, where they were far better than the rest
        study.add_trial(
            optuna.trial.create_trial(state=TrialState.PRUNED, intermediate_values={0: 0.9})
        )
    first = study.ask()
    first.report(0.1, 0)
    assert first.should_prune()  # 13 of 13 better at step 0
    study.tell(first, state=TrialState.PRUNED)
    second = study.ask()
    second.report(0.7, 0)
    second.report(0.77, 1)
    # At step 1 one completed trial is better; the four pruned ones count as worse.
    assert not second.should_prune()
    assert study.trials[-1].user_attrs[RANK] == pytest.approx(1 / 14)


def test_a_trial_is_ranked_by_its_best_value_so_far() -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=RankPruner(top_fraction=0.2, n_keep=1, completed_percentile=None),
    )
    for i in range(10):
        study.add_trial(
            optuna.trial.create_trial(
                value=0.5 + 0.02 * i, intermediate_values={0: 0.4 + 0.02 * i, 1: 0.5 + 0.02 * i}
            )
        )
    trial = study.ask()
    trial.report(0.95, 0)
    trial.report(0.1, 1)  # a dip after the best start of all: not a reason to stop
    assert not trial.should_prune()
    assert study.trials[-1].user_attrs[RANK] == 0.0


@pytest.mark.parametrize(("halving_steps", "expected_steps"), [(1, 2), (2, 3), (4, 4)])
def test_the_kept_fraction_halves_every_halving_steps(
    halving_steps: float, expected_steps: int
) -> None:
    study = optuna.create_study(
        direction="maximize",
        pruner=RankPruner(
            first_fraction=0.5,
            top_fraction=0.1,
            halving_steps=halving_steps,
            n_keep=1,
            completed_percentile=None,
            min_correlation=None,
        ),
    )
    for i in range(10):
        curve = {s: 0.1 * i + 0.01 * s for s in range(4)}
        study.add_trial(optuna.trial.create_trial(value=curve[3], intermediate_values=curve))
    trial = study.ask()
    ran = 0
    for step in range(4):  # 3 of the 10 trials are better at every step: a fraction 0.3
        trial.report(0.65 + 0.01 * step, step)
        ran += 1
        if trial.should_prune():
            break
    # Pruned at the first step whose kept fraction 0.5 * 2 ** (-step / halving_steps) is
    # below 0.3: step 1 (0.25), step 2 (0.25) or step 3 (0.297).
    assert ran == expected_steps


def test_unmatched_steps_are_said_once(caplog: pytest.LogCaptureFixture) -> None:
    study = optuna.create_study(direction="maximize", pruner=RankPruner(n_startup_trials=1))
    study.add_trial(optuna.trial.create_trial(value=0.9, intermediate_values={5: 0.9}))
    with caplog.at_level(logging.WARNING, logger="optuna_nas.pruners._rank"):
        for _ in range(2):
            trial = study.ask()
            trial.report(0.1, 2)  # no other trial reached step 2 or earlier
            assert not trial.should_prune()
            assert "report the same step" in study.trials[-1].user_attrs[NOT_DECIDED]
            study.tell(trial, state=TrialState.FAIL)  # failed trials are not compared
    assert sum("RankPruner cannot decide" in r.message for r in caplog.records) == 1


def test_created_by_name_and_checked() -> None:
    assert isinstance(pruners.create("rank", max_step=9), RankPruner)
    with pytest.raises(ValueError, match="top_fraction"):
        RankPruner(top_fraction=1.5)
    with pytest.raises(ValueError, match="n_keep"):
        RankPruner(n_keep=0)
    with pytest.raises(ValueError, match="completed_percentile"):
        RankPruner(completed_percentile=101)
    with pytest.raises(ValueError, match="n_warmup_steps"):
        RankPruner(n_warmup_steps=-1)
    with pytest.raises(ValueError, match="first_fraction"):
        RankPruner(first_fraction=0.0)
    with pytest.raises(ValueError, match="halving_steps"):
        RankPruner(halving_steps=0.5)
    with pytest.raises(ValueError, match="min_pairs"):
        RankPruner(min_pairs=3)
    with pytest.raises(ValueError, match="min_correlation"):
        RankPruner(min_correlation=2.0)


def test_multi_objective_is_refused() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    trial = study.ask()
    frozen = study.trials[-1]
    with pytest.raises(ValueError, match="single-objective"):
        RankPruner().prune(study, frozen)
    study.tell(trial, state=TrialState.FAIL)


def test_steps_that_do_not_foretell_the_final_values_prune_less() -> None:
    # Step 0 is noise (every network at chance level); the ranks hold from step 1 on.
    def lost_and_early(pruner: Callable[[], optuna.pruners.BasePruner]) -> tuple[int, int]:
        lost = early = 0
        for seed in range(20):
            curves = _curves(40, seed=seed, chance_start=True)
            ran = _replay(curves, pruner())
            kept = max(c[-1] for c, n in zip(curves, ran, strict=True) if n == len(c))
            lost += kept < max(c[-1] for c in curves) - 0.02
            early += sum(n == 1 for n in ran)
        return lost, early

    gated = lost_and_early(RankPruner)
    ungated = lost_and_early(lambda: RankPruner(min_correlation=None))
    median = lost_and_early(optuna.pruners.MedianPruner)
    assert gated[1] < 0.6 * ungated[1]  # far fewer prunes at the noise step
    assert gated[0] < ungated[0]
    assert gated[0] <= median[0]


def test_nothing_is_pruned_at_the_last_step() -> None:
    def last_step_prunes(pruner: optuna.pruners.BasePruner) -> bool:
        study = optuna.create_study(direction="maximize", pruner=pruner)
        for curve in _curves(10, seed=8, steps=3):
            study.add_trial(
                optuna.trial.create_trial(
                    value=curve[-1], intermediate_values=dict(enumerate(curve))
                )
            )
        trial = study.ask()
        trial.report(-1.0, 2)  # worse than everyone, at the last step
        return trial.should_prune()

    assert last_step_prunes(RankPruner())
    assert not last_step_prunes(RankPruner(max_step=2))
    assert not last_step_prunes(pruners.create("rank", max_step=2))
    assert last_step_prunes(pruners.create("rank", max_step=3))


def _finished_study(pruner: optuna.pruners.BasePruner, steps: int = 30) -> optuna.Study:
    study = optuna.create_study(direction="maximize", pruner=pruner)
    for curve in _curves(6, seed=7, steps=steps):
        study.add_trial(
            optuna.trial.create_trial(value=curve[-1], intermediate_values=dict(enumerate(curve)))
        )
    return study


def _hopeless(study: optuna.Study, n: int) -> tuple[optuna.trial.Trial, bool]:
    trial = study.ask()
    for step in range(n):
        trial.report(0.1 + 0.002 * step, step)
    return trial, trial.should_prune()


@pytest.mark.parametrize("max_step", [29, None])
def test_the_extrapolation_rule_prunes_what_the_rank_rules_let_run(max_step: int | None) -> None:
    # n_keep and no percentile rule: the rank rules cannot prune here.
    rank_only = dict(n_keep=100, completed_percentile=None, max_step=max_step)
    study = _finished_study(RankPruner(**rank_only))
    assert not _hopeless(study, 8)[1]
    study = _finished_study(RankPruner(**rank_only, pfn_threshold=0.05))
    trial, pruned = _hopeless(study, 8)
    assert pruned
    attrs = study._storage.get_trial(trial._trial_id).user_attrs
    assert attrs["optuna_nas:lce_p_improve"] < 0.05
    # Before an eighth of the curve (4 values at least), the network is not asked.
    study = _finished_study(RankPruner(**rank_only, pfn_threshold=0.05))
    assert not _hopeless(study, 3)[1]


@pytest.mark.parametrize(
    ("direction", "transform"),
    [("maximize", lambda v: 100.0 * v), ("minimize", lambda v: 1.0 - v)],
)
def test_the_extrapolation_rule_decides_alike_on_percent_and_error(
    direction: str, transform: Callable[[float], float]
) -> None:
    curves = _curves(30, seed=4, steps=16)

    rank_only = dict(n_keep=100, completed_percentile=None, max_step=15)

    def make() -> RankPruner:
        return RankPruner(**rank_only, pfn_threshold=0.05)

    reference = _replay(curves, make())
    assert min(reference) < 16  # the rule acted: the rank rules alone prune nothing
    assert _replay(curves, RankPruner(**rank_only)) == [16] * len(curves)
    assert _replay(curves, make(), direction, transform) == reference


def test_pfn_threshold_is_checked() -> None:
    for bad in (0.0, 1.0, -0.1, "0.1"):
        with pytest.raises(ValueError, match="pfn_threshold must lie in"):
            RankPruner(pfn_threshold=bad)  # type: ignore[arg-type]
