from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.study._constrained_optimization import _CONSTRAINTS_KEY
from optuna.testing.pytest_samplers import BasicSamplerTestCase, MultiObjectiveSamplerTestCase
from optuna.trial import TrialState

from optuna_nas import samplers, spaces
from optuna_nas.samplers import ConditionalGPSampler
from optuna_nas.samplers import _gp_model as gpm
from optuna_nas.samplers._genome import genome_key

CHAIN = spaces.create("chain", max_layers=3)
OP_SCORE = {"conv": 1.0, "sepconv": 0.6, "pool": 0.2, "identity": 0.0}
X = CategoricalDistribution(["a", "b", "c"])
Y = IntDistribution(0, 2)


class TestConformance(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        # The default ten random trials: the suites' 20-trial studies (a range that
        # changes halfway) and the NaN study fit the model; a smaller number would fit it
        # in some hundred more trials, too slow for a GP on a small machine.
        return lambda: ConditionalGPSampler(seed=0)


def chain_score(trial: optuna.Trial) -> float:
    """A synthetic score of the active layers: best with three 64-filter 5-wide convs."""
    layers = CHAIN.suggest(trial).genotype
    score = 0.0
    for layer in layers:
        score += OP_SCORE[layer.op]
        if layer.op == "conv":
            score += 0.3 * (layer.filters == 64) + 0.2 * (layer.kernel_size == 5)
    return score


def planned(study: optuna.Study, sampler: ConditionalGPSampler) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if sampler.plan_attr in t.system_attrs]


# Pure parts.


def test_encoding_one_hot_numeric_and_inactive() -> None:
    encoding = gpm.ConditionalEncoding(
        {
            "op": CategoricalDistribution(["conv", "pool"]),
            "lr": FloatDistribution(1e-4, 1e-2, log=True),
            "width": IntDistribution(8, 16),
            "only": CategoricalDistribution(["x"]),
        }
    )
    # Sorted names; value columns then an indicator per parameter; "only" keeps only its
    # indicator.
    assert encoding.columns == (
        "lr",
        "lr:active",
        "only:active",
        "op='conv'",
        "op='pool'",
        "op:active",
        "width",
        "width:active",
    )
    X = encoding.encode([{"op": "pool", "lr": 1e-3, "width": 12}, {"op": "conv"}])
    assert X.dtype == torch.float64 and X.shape == (2, encoding.dim)
    torch.testing.assert_close(X[0], torch.tensor([0.5, 1, 0, 0, 1, 1, 0.5, 1.0]).double())
    # Inactive parameters are zeros with a zero indicator.
    torch.testing.assert_close(X[1], torch.tensor([0, 0, 0, 1, 0, 1, 0, 0.0]).double())


def test_encoding_clips_changed_ranges_and_ignores_unknown_choices() -> None:
    encoding = gpm.ConditionalEncoding(
        {"x": FloatDistribution(20, 30), "c": CategoricalDistribution([1, 2])}
    )
    X = encoding.encode([{"x": 5.0, "c": True}, {"x": 31.0, "c": 2, "other": 1}])
    # True == 1 in Python, but it is not the choice 1.
    assert X[0].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0]
    assert X[1].tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]


def test_fit_gp_warm_start_follows_columns() -> None:
    gen = torch.Generator().manual_seed(0)
    X = torch.rand(12, 3, generator=gen, dtype=torch.float64)
    y = X[:, :1] * 2 - X[:, 1:2]
    _, first = gpm.fit_gp(X, y, ["a", "b", "c"], max_iter=30)
    lengthscale = next(v for k, v in first.values.items() if k.endswith("lengthscale"))
    # A new column "z" in front: "a" to "c" keep their fitted lengthscales.
    X2 = torch.cat([torch.rand(12, 1, generator=gen, dtype=torch.float64), X], dim=-1)
    model, kept = gpm.fit_gp(X2, y, ["z", "a", "b", "c"], warm_start=first, max_iter=0)
    torch.testing.assert_close(model.covar_module.lengthscale[..., 1:], lengthscale)
    assert kept.columns == ("z", "a", "b", "c")


def test_fit_gp_noise_floor_stops_interpolation() -> None:
    gen = torch.Generator().manual_seed(3)
    X = torch.rand(24, 3, generator=gen, dtype=torch.float64)
    y = torch.sin(6 * X[:, :1]) + X[:, 1:2]  # noise-free scores
    free, _ = gpm.fit_gp(X, y, ["a", "b", "c"])
    floored, fitted = gpm.fit_gp(X, y, ["a", "b", "c"], min_noise=0.1)
    assert float(free.likelihood.noise) < 0.01
    assert float(floored.likelihood.noise) >= 0.1
    with torch.no_grad():
        free_fit = (free.posterior(X).mean - y).abs().max()
        floored_fit = (floored.posterior(X).mean - y).abs().max()
    # Interpolating the free model reproduces every score; the floored one smooths.
    assert free_fit < 0.05 < floored_fit
    # The floor holds when the hyperparameters come from a warm start.
    again, _ = gpm.fit_gp(X, y, ["a", "b", "c"], warm_start=fitted, max_iter=0, min_noise=0.1)
    assert float(again.likelihood.noise) >= 0.1
    for bad in (0.0, -1.0):
        with pytest.raises(ValueError, match="min_noise must be positive"):
            gpm.fit_gp(X, y, ["a", "b", "c"], min_noise=bad)


def test_objective_models_get_the_noise_floor_and_constraints_do_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    floors: list[float | None] = []
    fit_gp = gpm.fit_gp

    def recording_fit_gp(*args, **kwargs):  # the real fit, with its floor written down
        floors.append(kwargs.get("min_noise"))
        return fit_gp(*args, **kwargs)

    monkeypatch.setattr(gpm, "fit_gp", recording_fit_gp)
    sampler = ConditionalGPSampler(
        seed=0, n_startup_trials=4, constraints_func=lambda t: [t.params["x"] - 0.5]
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2, n_trials=7)
    # Three planned trials, each fitting the objective then the constraint.
    assert floors == [0.1, None] * 3


def small_models(n_outcomes: int, n: int = 10) -> tuple[list, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    X = torch.rand(n, 2, generator=gen, dtype=torch.float64)
    Y = torch.stack([X[:, 0] - X[:, 1], X[:, 1] - X[:, 0], X.sum(-1) - 1][:n_outcomes], -1)
    models = [gpm.fit_gp(X, Y[:, i : i + 1], ["u", "v"])[0] for i in range(n_outcomes)]
    return models, X, Y


@pytest.mark.parametrize(
    ("n_objectives", "n_constraints", "name"),
    [
        (1, 0, "qLogNoisyExpectedImprovement"),
        (1, 1, "qLogNoisyExpectedImprovement"),
        (2, 0, "qLogNoisyExpectedHypervolumeImprovement"),
        (2, 1, "qLogNoisyExpectedHypervolumeImprovement"),
    ],
)
def test_make_acquisition_scores_each_candidate(n_objectives, n_constraints, name) -> None:
    models, X, Y = small_models(n_objectives + n_constraints)
    acquisition = gpm.make_acquisition(
        models,
        n_objectives=n_objectives,
        X_baseline=X,
        Y_baseline=Y[:, :n_objectives],
        feasible=(Y[:, -1] <= 0) if n_constraints else None,
        X_pending=X[:2] + 0.01,
    )
    assert type(acquisition).__name__ == name
    values = gpm.evaluate_acquisition(acquisition, torch.rand(7, 2, dtype=torch.float64), 3)
    assert values.shape == (7,) and torch.isfinite(values).all()


def test_constraint_model_steers_the_acquisition() -> None:
    # The objective grows with u, the constraint u - 0.5 <= 0 caps it.
    X = torch.linspace(0, 1, 11, dtype=torch.float64).unsqueeze(-1)
    objective, _ = gpm.fit_gp(X, X, ["u"])
    constraint, _ = gpm.fit_gp(X, X - 0.5, ["u"])
    candidates = torch.tensor([[0.45], [0.95]], dtype=torch.float64)
    free = gpm.make_acquisition([objective], 1, X, X)
    bound = gpm.make_acquisition([objective, constraint], 1, X, X, feasible=X[:, 0] <= 0.5)
    assert gpm.evaluate_acquisition(free, candidates).argmax() == 1
    assert gpm.evaluate_acquisition(bound, candidates).argmax() == 0


def test_search_candidates_climbs_and_skips_excluded() -> None:
    distributions = {f"x{i}": CategoricalDistribution(list(range(5))) for i in range(4)}
    best = {f"x{i}": 4 for i in range(4)}

    def score(genomes):
        return np.array([sum(g.values()) for g in genomes], dtype=float)

    start = {f"x{i}": 0 for i in range(4)}
    kwargs = dict(
        score=score,
        incumbents=[start],
        templates=[start],
        distributions=distributions,
        rng=np.random.RandomState(0),
        n_random=4,
        n_rounds=10,
    )
    assert gpm.search_candidates(excluded=[genome_key(start)], **kwargs) == best
    found = gpm.search_candidates(excluded=[genome_key(start), genome_key(best)], **kwargs)
    assert found is not None and found != best and sum(found.values()) == 15


def test_search_candidates_returns_none_when_everything_was_evaluated() -> None:
    distributions = {"x": CategoricalDistribution(["a", "b"])}
    excluded = [(("x", "a"),), (("x", "b"),)]
    found = gpm.search_candidates(
        lambda genomes: np.zeros(len(genomes)),
        incumbents=[{"x": "a"}],
        templates=[{"x": "a"}],
        distributions=distributions,
        excluded=excluded,
        rng=np.random.RandomState(0),
    )
    assert found is None


def test_a_candidate_holding_an_evaluated_assignment_counts_as_a_repeat() -> None:
    # Running {"op": "id", "width": 8} asks only "op", exactly as the trial {"op": "id"} did.
    dedup = gpm._Dedup([genome_key({"op": "id"})], exact=False)
    assert {"op": "id", "width": 8} in dedup
    assert {"op": "conv", "width": 8} not in dedup
    assert {"op": "id", "width": 8} not in gpm._Dedup([genome_key({"op": "id"})], exact=True)


# The sampler on studies.


def test_registry_and_argument_checks() -> None:
    assert isinstance(samplers.create("gp", seed=0), ConditionalGPSampler)
    with pytest.raises(ValueError, match="n_startup_trials"):
        ConditionalGPSampler(n_startup_trials=-1)
    with pytest.raises(ValueError, match=r"spaces\.create"):
        ConditionalGPSampler(space="chain")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="pass space="):
        ConditionalGPSampler(canonicalize=str)
    with pytest.raises(ValueError, match="canonicalize must be a function"):
        ConditionalGPSampler(space=CHAIN, canonicalize="iso")  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="trust_region_radius must be a positive integer"):
            ConditionalGPSampler(trust_region_radius=bad)  # type: ignore[arg-type]


def test_startup_trials_are_random() -> None:
    sampler = ConditionalGPSampler(seed=0, n_startup_trials=4)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    assert [sampler.plan_attr in t.system_attrs for t in study.trials] == [False] * 4 + [True] * 2


def test_never_reproposes_an_evaluated_assignment() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", ["a", "b", "c"])
        y = trial.suggest_int("y", 0, 2) if x != "c" else 0
        return {"a": 0.0, "b": 1.0, "c": 0.5}[x] + 0.1 * y

    sampler = ConditionalGPSampler(seed=0, n_startup_trials=2)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=7)  # the space holds 7 assignments
    for i, trial in enumerate(study.trials):
        if sampler.plan_attr in trial.system_attrs:
            earlier = {genome_key(t.params) for t in study.trials[:i]}
            assert genome_key(trial.params) not in earlier
    assert len(planned(study, sampler)) >= 4


def test_pruned_failed_and_running_trials() -> None:
    sampler = ConditionalGPSampler(seed=0, n_startup_trials=2)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    dists = {"x": X, "y": Y}
    for params, value in [({"x": "a", "y": 0}, 0.0), ({"x": "b", "y": 0}, 1.0)]:
        study.add_trial(optuna.create_trial(params=params, distributions=dists, value=value))
    study.add_trial(
        optuna.create_trial(
            state=TrialState.PRUNED,
            params={"x": "b", "y": 1},
            distributions=dists,
            intermediate_values={0: 0.5, 1: 2.0},
        )
    )
    study.add_trial(
        optuna.create_trial(state=TrialState.FAIL, params={"x": "b", "y": 2}, distributions=dists)
    )
    study.enqueue_trial({"x": "c", "y": 2})
    running = study.ask()
    running.suggest_categorical("x", X.choices)
    running.suggest_int("y", 0, 2)

    trial = study.ask()
    plan = study._storage.get_trial(trial._trial_id).system_attrs[sampler.plan_attr]
    taken = [t.params for t in study.trials if t.params]
    assert genome_key(plan) not in {genome_key(p) for p in taken}
    assert plan in [{"x": x, "y": y} for x in X.choices for y in (0, 1, 2)]


def test_same_seed_same_sequence_and_reseed() -> None:
    def run(seed: int) -> list[dict]:
        study = optuna.create_study(
            sampler=ConditionalGPSampler(seed=seed, n_startup_trials=3, space=CHAIN),
            direction="maximize",
        )
        study.optimize(chain_score, n_trials=6)
        return [t.params for t in study.trials]

    assert run(3) == run(3)
    sampler = ConditionalGPSampler(seed=3)
    sampler.reseed_rng()
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)


@pytest.mark.parametrize("use_space", [True, False])
def test_beats_random_on_a_conditional_chain_space(use_space: bool) -> None:
    gp_best, random_best = [], []
    for seed in range(5):
        sampler = ConditionalGPSampler(
            seed=seed, n_startup_trials=8, space=CHAIN if use_space else None
        )
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(chain_score, n_trials=25)
        gp_best.append(study.best_value)
        baseline = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize"
        )
        baseline.optimize(chain_score, n_trials=25)
        random_best.append(baseline.best_value)
    # The optimum is 4.5; random search reaches about 2.5 in 25 trials, gp without the
    # space about 3.4 (mean of 40 seeds), with it more.
    assert np.mean(gp_best) > np.mean(random_best) + 0.5, (gp_best, random_best)


def test_constraints_func_is_respected_more_often_than_random() -> None:
    def constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
        # No convolution in the first layer, though convolutions score best.
        return [float(trial.params["layer0/op"] in ("conv", "sepconv")) - 0.5]

    def feasible_share(sampler: optuna.samplers.BaseSampler) -> float:
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(chain_score, n_trials=20)
        return float(np.mean([constraints(t)[0] <= 0 for t in study.trials[6:]]))

    sampler = ConditionalGPSampler(
        seed=0, n_startup_trials=6, constraints_func=constraints, space=CHAIN
    )
    ours = feasible_share(sampler)
    random = feasible_share(optuna.samplers.RandomSampler(seed=0))
    assert ours > random + 0.3, (ours, random)


def test_multi_objective_returns_a_pareto_front() -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        score = chain_score(trial)
        size = sum(1 for k in trial.params if k.endswith("/op"))
        return score, float(size)

    def constraints(trial: optuna.trial.FrozenTrial) -> list[float]:
        return [trial.params["n_layers"] - 2.5]

    sampler = ConditionalGPSampler(
        seed=0, n_startup_trials=5, space=CHAIN, constraints_func=constraints
    )
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=10)
    assert len(planned(study, sampler)) == 5
    for trial in study.trials:  # stored where Optuna's samplers store them
        assert trial.system_attrs[_CONSTRAINTS_KEY] == (trial.params["n_layers"] - 2.5,)
    front = study.best_trials
    assert front and all(t.state == TrialState.COMPLETE for t in front)
    assert all(math.isfinite(v) for t in front for v in t.values)


# Exhaustive scoring of an enumerable space.

NB201 = spaces.create("nb201")
NB201_OP_SCORE = {
    "nor_conv_3x3": 1.0,
    "nor_conv_1x1": 0.6,
    "skip_connect": 0.3,
    "avg_pool_3x3": 0.1,
    "none": 0.0,
}


def nb201_score(trial: optuna.Trial) -> float:
    """Additive over the six edges, best with 3x3 convs except a skip on node3/in0."""
    params = NB201.suggest(trial).param_dict
    score = sum(NB201_OP_SCORE[op] for op in params.values())
    return score + 1.0 * (params["node3/in0"] == "skip_connect")


NB201_OPTIMUM = 5.0 + 1.3


def test_log_expected_improvement_matches_botorch() -> None:
    from botorch.acquisition.analytic import LogExpectedImprovement

    torch.manual_seed(0)
    train_X = torch.rand(20, 4, dtype=torch.float64)
    train_Y = 3 * train_X.sum(-1, keepdim=True) + 7 + 0.1 * torch.randn(20, 1).double()
    model, _ = gpm.fit_gp(train_X, train_Y, ["a", "b", "c", "d"])
    candidates = torch.rand(50, 4, dtype=torch.float64)
    best_f = float(train_Y.max())
    ours = gpm.log_expected_improvement(model, candidates, best_f, batch_size=16)
    with torch.no_grad():
        theirs = LogExpectedImprovement(model, best_f=best_f)(candidates.unsqueeze(-2))
    torch.testing.assert_close(ours, theirs, atol=1e-2, rtol=1e-3)


@pytest.mark.parametrize("categorical", [False, True], ids=["rbf", "overlap"])
def test_noisy_log_expected_improvement_matches_botorch(categorical: bool) -> None:
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.sampling import SobolQMCNormalSampler
    from scipy.stats import spearmanr

    from optuna_nas.samplers._gp_posterior import LatentPosterior

    torch.manual_seed(0)

    def inputs(n: int) -> torch.Tensor:
        X = torch.rand(n, 5, dtype=torch.float64)
        if categorical:
            X[:, :2] = torch.randint(0, 3, (n, 2)).double()
        return X

    # A noisy, wiggly objective, so that several observed points may be the best.
    train_X = inputs(60)
    train_Y = torch.sin(6 * train_X).sum(-1, keepdim=True) + torch.randn(60, 1).double()
    model, _ = gpm.fit_gp(
        train_X,
        train_Y,
        list("abcde"),
        min_noise=0.1,
        categorical_dims=[0, 1] if categorical else (),
    )
    candidates = inputs(300)
    pending = inputs(2)
    sampler = SobolQMCNormalSampler(torch.Size([4096]), seed=1)
    acquisition = qLogNoisyExpectedImprovement(
        model, X_baseline=train_X, sampler=sampler, X_pending=pending, prune_baseline=True
    )
    with torch.no_grad():
        theirs = acquisition(candidates.unsqueeze(-2))
    baseline = acquisition.X_baseline
    assert len(baseline) > 3  # the test compares against more than one incumbent
    ours = LatentPosterior(model).noisy_log_expected_improvement(
        candidates, baseline, n_mc_samples=4096, seed=1, batch_size=64
    )
    # Different draws: the values agree where they matter, among the best candidates,
    # and the order agrees everywhere but in the far tail.
    top = theirs.argsort(descending=True)[:30]
    torch.testing.assert_close(ours[top], theirs[top], atol=0.3, rtol=0.0)
    assert int(ours.argmax()) == int(theirs.argmax())
    assert spearmanr(ours.numpy(), theirs.numpy())[0] > 0.99


def test_local_search_takes_analytic_log_ei_unless_other_trials_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    analytic: list[int] = []
    original = gpm.log_expected_improvement

    def counting(model, X, *args, **kwargs):
        analytic.append(len(X))
        return original(model, X, *args, **kwargs)

    monkeypatch.setattr(gpm, "log_expected_improvement", counting)
    sampler = ConditionalGPSampler(seed=0, n_startup_trials=5)  # no space: local search
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(nb201_score, n_trials=8)
    assert len(planned(study, sampler)) == 3 and len(analytic) >= 3
    # With a trial still running, the plan conditions on it through qLogNEI instead.
    analytic.clear()
    running = study.ask()
    nb201_score(running)
    n_calls = len(analytic)
    assert n_calls > 0
    other = study.ask()
    nb201_score(other)
    assert len(analytic) == n_calls
    assert sampler.plan_attr in study.trials[-1].system_attrs


def test_exhaustive_scoring_only_under_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(ConditionalGPSampler(space=NB201)._enumerate()) == 5**6
    assert ConditionalGPSampler(space=NB201, max_exhaustive_candidates=5**6 - 1)._enumerate() == []
    assert ConditionalGPSampler(space=NB201, max_exhaustive_candidates=0)._enumerate() == []
    assert ConditionalGPSampler()._enumerate() == []
    with pytest.raises(ValueError):
        ConditionalGPSampler(space=NB201, max_exhaustive_candidates=-1)

    local_searches = []
    original = gpm.search_candidates

    def spy(*args, **kwargs):
        local_searches.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(gpm, "search_candidates", spy)
    for cap, expected in [(5**6, 0), (100, 3)]:
        local_searches.clear()
        sampler = ConditionalGPSampler(
            seed=0, n_startup_trials=4, space=NB201, max_exhaustive_candidates=cap
        )
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(nb201_score, n_trials=7)
        assert len(planned(study, sampler)) == 3
        assert len(local_searches) == expected


def test_exhaustive_scoring_finds_the_optimum_without_repeats() -> None:
    gp_hits = random_hits = 0
    for seed in range(3):
        sampler = ConditionalGPSampler(seed=seed, space=NB201)
        study = optuna.create_study(sampler=sampler, direction="maximize")
        study.optimize(nb201_score, n_trials=40)
        keys = [genome_key(t.params) for t in study.trials]
        assert len(set(keys)) == len(keys)
        gp_hits += math.isclose(study.best_value, NB201_OPTIMUM)
        baseline = optuna.create_study(
            sampler=optuna.samplers.RandomSampler(seed=seed), direction="maximize"
        )
        baseline.optimize(nb201_score, n_trials=40)
        random_hits += math.isclose(baseline.best_value, NB201_OPTIMUM)
    # Random search finds the one optimum of 15,625 cells in 40 trials 0.26% of the time.
    assert gp_hits >= 2 and gp_hits > random_hits, (gp_hits, random_hits)


@pytest.mark.parametrize("cap", [5**6, 0])
def test_canonicalizer_keeps_equivalent_cells_out(cap: int) -> None:
    # A coarse canonicalizer: cells with the same ops on the two edges leaving the input
    # count as one. The score's best cells all share conv/conv there, so a sampler that
    # only avoided exact repeats would propose that class again and again.
    def canonicalize(params):
        return params["node1/in0"], params["node2/in0"]

    sampler = ConditionalGPSampler(
        seed=0,
        n_startup_trials=4,
        space=NB201,
        max_exhaustive_candidates=cap,
        canonicalize=canonicalize,
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(nb201_score, n_trials=10)
    assert len(planned(study, sampler)) == 6
    for i, trial in enumerate(study.trials):
        if sampler.plan_attr in trial.system_attrs:
            earlier = {canonicalize(t.params) for t in study.trials[:i]}
            assert canonicalize(trial.params) not in earlier


def test_decision_codes_count_changed_parameters() -> None:
    from optuna_nas.samplers._gp_context import DecisionCodes

    codes = DecisionCodes(
        [
            {"n": 1, "a": "x"},
            {"n": 2, "a": "x", "b": "y"},
            {"n": 2, "a": "z", "b": "y"},
        ]
    )
    # b is absent from the first genome: present-against-absent counts as a change.
    assert codes.within([{"n": 2, "a": "x", "b": "y"}], 0).tolist() == [False, True, False]
    assert codes.within([{"n": 2, "a": "x", "b": "y"}], 1).tolist() == [False, True, True]
    assert codes.within([{"n": 1, "a": "x"}], 1).tolist() == [True, False, False]
    # An unseen value differs from every code; parameters outside the space are ignored.
    assert codes.within([{"n": 1, "a": "w", "lr": 0.1}], 1).tolist() == [True, False, False]
    # Several centers: the union of their regions.
    near = codes.within([{"n": 1, "a": "x"}, {"n": 2, "a": "z", "b": "y"}], 0)
    assert near.tolist() == [True, False, True]


def _changed(a: dict, b: dict) -> int:
    return sum(a.get(k) != b.get(k) for k in a.keys() | b.keys())


@pytest.mark.parametrize("radius", [1, 2, None])
def test_trust_region_keeps_plans_near_the_best_cell(
    radius: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    scored: list[int] = []
    original = gpm.log_expected_improvement

    def counting(model, X, *args, **kwargs):
        scored.append(len(X))
        return original(model, X, *args, **kwargs)

    monkeypatch.setattr(gpm, "log_expected_improvement", counting)
    sampler = ConditionalGPSampler(
        seed=0, n_startup_trials=5, space=NB201, trust_region_radius=radius
    )
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(nb201_score, n_trials=15)
    distances = []
    for trial in planned(study, sampler):
        earlier = study.trials[: trial.number]
        best = max(t.value for t in earlier)
        distances.append(
            min(_changed(trial.params, t.params) for t in earlier if t.value >= best - 1e-9)
        )
    assert len(distances) == len(scored) == 10
    if radius is None:  # the whole space, less what was queried
        assert min(scored) >= 5**6 - 15
    else:
        assert max(distances) <= radius, distances
        # Six edges of five ops: 24 cells one change away, 240 more two changes away.
        assert max(scored) <= {1: 1 + 24, 2: 1 + 24 + 240}[radius]


def test_trust_region_falls_back_to_the_whole_space_once_it_is_used_up() -> None:
    # Nine architectures; within one change of any of them are only five.
    space = spaces.create(
        "chain",
        min_layers=1,
        max_layers=1,
        ops=["conv"],
        filters=[16, 32, 64],
        kernel_sizes=[3, 5, 7],
        strides=[1],
        dilations=[1],
    )

    def objective(trial: optuna.Trial) -> float:
        params = space.suggest(trial).param_dict
        return params["layer0/filters"] / 64 + params["layer0/kernel_size"] / 7

    sampler = ConditionalGPSampler(seed=0, n_startup_trials=2, space=space, trust_region_radius=1)
    study = optuna.create_study(sampler=sampler, direction="maximize")
    study.optimize(objective, n_trials=9)
    assert len(planned(study, sampler)) == 7
    assert len({genome_key(t.params) for t in study.trials}) == 9


def test_warp_outcomes_keeps_order_and_spreads_skewed_scores() -> None:
    from scipy.stats import norm

    # A skewed column (one broken architecture far below) with a tie and a NaN.
    Y = torch.tensor(
        [[84.9, 1.0], [10.0, 2.0], [84.1, 2.0], [83.0, math.nan], [84.5, 0.0]],
        dtype=torch.float64,
    )
    W = gpm.warp_outcomes(Y)
    order = torch.argsort(Y[:, 0])
    assert torch.all(W[order, 0].diff() > 0)
    expected = norm.ppf((np.arange(1, 6) - 0.5) / 5)
    np.testing.assert_allclose(W[order, 0].numpy(), expected)
    # Evenly spread: the gap at the top is no longer dwarfed by the broken one.
    assert W[0, 0] - W[2, 0] > (W[2, 0] - W[1, 0]) / 3
    assert W[1, 1] == W[2, 1] and math.isnan(W[3, 1]) and W[4, 1] < W[0, 1] < W[1, 1]


# Overlap kernel and the adaptive trust region (no space needed).


def test_coded_encoding_one_column_per_decision_and_inactive_as_a_category() -> None:
    enc = gpm.CodedEncoding({"op": X, "width": Y, "rate": FloatDistribution(0.0, 1.0)})
    assert enc.columns == ("op", "rate", "rate:active", "width", "width:active")
    assert enc.categorical_dims == (0, 2, 4)
    rows = enc.encode([{"op": "b", "width": 2}, {"rate": 0.25}]).tolist()
    assert rows[0] == [1.0, 0.0, 0.0, 1.0, 1.0]
    # op inactive: its own category 3 (= number of choices); rate active at 0.25.
    assert rows[1] == [3.0, 0.25, 1.0, 0.0, 0.0]


def test_overlap_kernel_model_depends_only_on_decisions_shared() -> None:
    enc = gpm.CodedEncoding({f"x{i}": CategoricalDistribution(list(range(4))) for i in range(3)})
    rng = np.random.RandomState(0)
    genomes = [{f"x{i}": int(rng.randint(4)) for i in range(3)} for _ in range(20)]
    X_ = enc.encode(genomes)
    y = torch.tensor([[float(g["x0"] == 2) + 0.1 * g["x1"]] for g in genomes], dtype=gpm.DTYPE)
    model, _ = gpm.fit_gp(X_, y, enc.columns, categorical_dims=enc.categorical_dims)
    assert "CategoricalKernel" in repr(model.covar_module)
    # Relabelling the choices of every decision changes nothing for an overlap kernel.
    a = enc.encode([{"x0": 2, "x1": 3, "x2": 0}, {"x0": 1, "x1": 3, "x2": 0}])
    b = enc.encode([{"x0": 2, "x1": 3, "x2": 1}, {"x0": 2, "x1": 3, "x2": 3}])
    k = model.covar_module
    assert torch.allclose(k(a[:1], a[1:]).to_dense(), k(b[:1].roll(0), b[1:]).to_dense()) is False
    same = k(a[:1], enc.encode([{"x0": 2, "x1": 3, "x2": 3}])).to_dense()
    other = k(a[:1], enc.encode([{"x0": 2, "x1": 3, "x2": 2}])).to_dense()
    assert torch.allclose(same, other)


def test_trust_region_grows_on_success_and_shrinks_then_restarts_on_failure() -> None:
    # Three successes in a row double the radius (capped at the decisions).
    grown = gpm.replay_trust_region([0, 1, 2, 3, 4], n_dims=8, n_startup=1)
    assert grown.radius == 8 and grown.start == 0 and grown.n_restarts == 0
    assert gpm.replay_trust_region([0, 1, 2], n_dims=8, n_startup=1).radius == 4
    # max(4, n_dims) failures in a row halve it; below one it restarts.
    flat = [1.0] + [0.0] * 4
    assert gpm.replay_trust_region(flat, n_dims=4, n_startup=1).radius == 1
    collapsed = gpm.replay_trust_region([1.0] + [0.0] * 8, n_dims=4, n_startup=1)
    assert (collapsed.radius, collapsed.start, collapsed.n_restarts) == (2, 9, 1)
    # After a restart the bar is the new segment's best, not the old one's.
    after = gpm.replay_trust_region([1.0] + [0.0] * 8 + [0.1, 0.2, 0.3, 0.4], 4, 1)
    assert after.start == 9 and after.radius == 4
    # NaN fails; a custom initial radius and tolerances are honoured.
    assert gpm.replay_trust_region([1.0, math.nan], 6, 1, failure_tolerance=1).radius == 1
    assert gpm.replay_trust_region([], 6, 10, initial_radius=2).radius == 2


def test_hamming_and_neighbourhood() -> None:
    names = ["a", "b", "c"]
    assert gpm.hamming({"a": 1, "b": 2}, {"a": 1, "b": 3}, names) == 1
    assert gpm.hamming({"a": 1, "c": 0}, {"a": 1}, names) == 1
    dists = {"a": CategoricalDistribution([0, 1, 2]), "b": FloatDistribution(0.0, 1.0)}
    near = gpm.neighbourhood({"a": 0, "b": 0.5}, dists, np.random.RandomState(0), n_numeric=3)
    assert len(near) == 2 + 3
    assert all(gpm.hamming(g, {"a": 0, "b": 0.5}, ["a", "b"]) == 1 for g in near)


def test_search_candidates_stays_inside_the_trust_region() -> None:
    distributions = {f"x{i}": CategoricalDistribution(list(range(5))) for i in range(6)}
    center = {f"x{i}": 0 for i in range(6)}
    scored: list[dict] = []

    def score(genomes):
        scored.extend(genomes)
        return np.array([sum(g.values()) for g in genomes], dtype=float)

    found = gpm.search_candidates(
        score,
        incumbents=[center],
        templates=[center],
        distributions=distributions,
        excluded=[genome_key(center)],
        rng=np.random.RandomState(0),
        n_rounds=10,
        center=center,
        radius=2,
    )
    assert found is not None and sum(v > 0 for v in found.values()) == 2
    assert max(found.values()) == 4
    assert all(gpm.hamming(g, center, list(distributions)) <= 2 for g in scored)
    with pytest.raises(ValueError, match="center and radius"):
        gpm.search_candidates(
            score, [center], [center], distributions, [], np.random.RandomState(0), center=center
        )


@pytest.mark.parametrize("kernel", ["overlap", "rbf"])
def test_adaptive_trust_region_without_a_space_beats_random(kernel: str) -> None:
    # A plain conditional objective, no space: a family per edge, a detail only for convs.
    def objective(trial: optuna.Trial) -> float:
        score = 0.0
        for k in range(5):
            family = trial.suggest_categorical(f"e{k}", ["none", "skip", "conv", "pool"])
            if family == "conv":
                score += 1.0 + 0.5 * (trial.suggest_categorical(f"e{k}/k", [1, 3]) == 3)
            elif family == "skip":
                score += 0.3
        return score

    best = {}
    for name in ("gp", "optuna-random"):
        kwargs = {"kernel": kernel} if name == "gp" else {}
        study = optuna.create_study(
            direction="maximize", sampler=samplers.create(name, seed=1, **kwargs)
        )
        study.optimize(objective, n_trials=40)
        best[name] = study.best_value
        keys = [genome_key(t.params) for t in study.trials]
        if name == "gp":
            assert len(set(keys)) == len(keys)
    assert best["gp"] > best["optuna-random"]
    with pytest.raises(ValueError, match="kernel"):
        ConditionalGPSampler(kernel="matern")


def test_additive_trust_region_and_avoided_surroundings() -> None:
    # Additive: three successes grow the radius by one, max(4, n) failures shrink it by one.
    assert gpm.replay_trust_region([0, 1, 2, 3], 8, 1, additive=True).radius == 5
    assert gpm.replay_trust_region([1.0] + [0.0] * 8, 8, 1, additive=True).radius == 3
    distributions = {f"x{i}": CategoricalDistribution(list(range(3))) for i in range(4)}
    best = {f"x{i}": 0 for i in range(4)}
    scored: list[dict] = []

    def score(genomes):
        scored.extend(genomes)
        return np.array([-sum(g.values()) for g in genomes], dtype=float)

    found = gpm.search_candidates(
        score,
        incumbents=[],
        templates=[best],
        distributions=distributions,
        excluded=[genome_key(best)],
        rng=np.random.RandomState(0),
        avoid=best,
        avoid_radius=2,
    )
    assert found is not None and gpm.hamming(found, best, list(distributions)) == 3
    assert all(gpm.hamming(g, best, list(distributions)) > 2 for g in scored)


def test_history_index_finds_the_first_extending_trial() -> None:
    rng = np.random.RandomState(0)
    names = list("abcdefg")

    def assignment() -> dict[str, int]:
        chosen = rng.choice(names, rng.randint(1, 7), replace=False)
        return {str(n): int(rng.randint(3)) for n in chosen}

    def first_by_scan(genome: dict[str, int], templates: list[dict[str, int]]):
        for t in templates:
            if len(t) > len(genome) and all(k in t and t[k] == v for k, v in genome.items()):
                return t
        return None

    found = 0
    for _ in range(100):
        templates = [assignment() for _ in range(rng.randint(0, 60))]
        history = gpm._History(templates)
        for _ in range(50):
            genome = assignment()
            expected = first_by_scan(genome, templates)
            assert history.first_extension(genome) is expected
            found += expected is not None
    assert found > 500  # the check covered many hits, not only misses


def test_baseline_prefilter_keeps_every_point_botorch_keeps() -> None:
    from botorch.acquisition.utils import prune_inferior_points

    from optuna_nas.samplers._gp_posterior import LatentPosterior

    torch.manual_seed(0)
    train_X = torch.rand(200, 4, dtype=torch.float64)
    train_Y = 5 * torch.sin(5 * train_X).sum(-1, keepdim=True) + torch.randn(200, 1).double()
    model, _ = gpm.fit_gp(train_X, train_Y, list("abcd"), min_noise=0.1)
    posterior = LatentPosterior(model)
    kept = posterior.contenders(train_X)
    assert 1 <= int(kept.sum()) < 100  # most points are out of the running
    for seed in range(5):
        torch.manual_seed(seed)
        pruned = prune_inferior_points(model, train_X)
        rows = [int(torch.nonzero((train_X == x).all(-1))[0]) for x in pruned]
        assert all(kept[rows])
    baseline = gpm.noisy_baseline(posterior, train_X, X_pending=train_X[:2])
    assert torch.equal(baseline[-2:], train_X[:2])
