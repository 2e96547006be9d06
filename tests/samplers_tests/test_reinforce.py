from __future__ import annotations

import pickle
from collections.abc import Callable

import numpy as np
import optuna
import pytest
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.trial import TrialState

from optuna_nas import samplers, spaces
from optuna_nas.samplers import REINFORCESampler
from optuna_nas.samplers._policy import (
    AdamMoments,
    Controller,
    IndependentController,
    LSTMController,
    Reinforce,
    adam_step,
    discretize,
    update_baseline,
)

CONTROLLERS = ["independent", "lstm"]


def make_controller(kind: str, sizes: list[int]) -> Controller:
    controller = LSTMController(hidden_size=8) if kind == "lstm" else IndependentController()
    for size in sizes:
        controller.add_decision(size)
    return controller


def snapshot(controller: Controller) -> list[torch.Tensor]:
    return [p.detach().clone() for p in controller.parameters]


# --- Optuna's conformance suite -------------------------------------------------------------


class TestConformance(BasicSamplerTestCase):
    @pytest.fixture(params=CONTROLLERS)
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], REINFORCESampler]:
        return lambda: REINFORCESampler(seed=0, controller=request.param)


# --- Pure policy math -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", CONTROLLERS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_advantage_sign_moves_chosen_action_probability(kind: str, sign: float) -> None:
    controller = make_controller(kind, [3, 4])
    learner = Reinforce(controller, learning_rate=0.1)
    actions = [(0, 2), (1, 1)]
    before = controller.log_prob(actions)[0].item()
    assert learner.observe(actions, 0.0) == 0.0  # the first reward only starts the baseline
    assert controller.log_prob(actions)[0].item() == before
    assert learner.observe(actions, sign) == sign
    after = controller.log_prob(actions)[0].item()
    assert (after - before) * sign > 0


def test_baseline_is_moving_average_of_earlier_rewards() -> None:
    assert update_baseline(None, 3.0, 0.9) == 3.0
    assert update_baseline(3.0, 13.0, 0.9) == pytest.approx(4.0)
    learner = Reinforce(IndependentController(), learning_rate=0.1, baseline_momentum=0.9)
    advantages = [learner.observe([], reward) for reward in (3.0, 13.0, 0.0)]
    assert advantages == pytest.approx([0.0, 10.0, -4.0])
    assert learner.baseline == pytest.approx(0.9 * 4.0)


def test_adam_step_follows_kingma_and_ba() -> None:
    gen = torch.Generator().manual_seed(0)
    ours = torch.randn(7, generator=gen)
    expected = ours.clone()
    first, second = torch.zeros(7), torch.zeros(7)
    moments = AdamMoments(torch.zeros(7), torch.zeros(7))
    lr, (beta1, beta2), eps = 0.05, (0.9, 0.999), 1e-8
    for step in range(1, 21):
        grad = torch.randn(7, generator=gen)
        adam_step(ours, grad, moments, lr)
        first = beta1 * first + (1 - beta1) * grad
        second = beta2 * second + (1 - beta2) * grad**2
        unbiased = first / (1 - beta1**step), second / (1 - beta2**step)
        expected -= lr * unbiased[0] / (unbiased[1].sqrt() + eps)
    assert moments.steps == 20
    torch.testing.assert_close(ours, expected)


@pytest.mark.parametrize("kind", CONTROLLERS)
def test_inactive_decision_is_not_updated(kind: str) -> None:
    controller = make_controller(kind, [3, 2, 4])
    learner = Reinforce(controller, learning_rate=0.1)
    learner.observe([(0, 1), (1, 0), (2, 3)], 0.0)
    before = snapshot(controller)
    learner.observe([(0, 1), (2, 3)], 5.0)  # decision 1 inactive
    own = set(controller.log_prob([(1, 0)])[1]) - set(controller.log_prob([(0, 0)])[1])
    assert own  # decision 1 has parameters of its own
    after = snapshot(controller)
    for index in own:
        torch.testing.assert_close(after[index], before[index], rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_lstm_log_prob_skips_inactive_decisions() -> None:
    controller = make_controller("lstm", [3, 2, 4])
    with torch.no_grad():
        for p in controller.parameters:
            p.uniform_(-1.0, 1.0, generator=torch.Generator().manual_seed(1))
    full = controller.log_prob([(0, 1), (1, 0), (2, 3)])[0]
    partial = controller.log_prob([(0, 1), (2, 3)])[0]
    assert torch.isfinite(partial) and not torch.isclose(full, partial)
    assert len(controller.sample(np.random.RandomState(0))) == 3
    assert [len(logits) for logits in controller.logits()] == [3, 2, 4]


@pytest.mark.parametrize(
    ("dist", "n_actions"),
    [
        (CategoricalDistribution(["a", 1, None, 2.5]), 4),
        (IntDistribution(0, 9), 10),
        (IntDistribution(-10, 10, step=2), 10),
        (IntDistribution(0, 1000), 10),
        (IntDistribution(3, 999, step=3), 10),
        (IntDistribution(1, 20, log=True), None),
        (IntDistribution(1, 100_000, log=True), 10),
        (IntDistribution(5, 5), 1),
        (FloatDistribution(-1.0, 1.0), 10),
        (FloatDistribution(1e-7, 1.0, log=True), 10),
        (FloatDistribution(-10.2, 10.2, step=0.1), 10),
        (FloatDistribution(0.0, 1.0, step=0.25), 5),
        (FloatDistribution(2.0, 2.0), 1),
    ],
)
def test_discretization_round_trips(dist: BaseDistribution, n_actions: int | None) -> None:
    disc = discretize(dist, n_bins=10)
    if n_actions is not None:
        assert disc.n_actions == n_actions
    assert 1 <= disc.n_actions <= 10
    rng = np.random.RandomState(0)
    for action in range(disc.n_actions):
        for _ in range(50):
            value = disc.value(action, rng)
            assert dist._contains(dist.to_internal_repr(value))
            assert disc.action(value) == action
    if not isinstance(dist, CategoricalDistribution):
        lo, hi = dist.low, dist.high  # type: ignore[attr-defined]
        assert disc.action(lo) == 0 and disc.action(hi) == disc.n_actions - 1
        assert disc.action(lo - 1e6) == 0 and disc.action(hi + 1e6) == disc.n_actions - 1


def test_small_int_gets_one_action_per_value() -> None:
    disc = discretize(IntDistribution(0, 4), n_bins=10)
    assert [disc.action(v) for v in range(5)] == list(range(5))
    assert [disc.value(a, np.random.RandomState(0)) for a in range(5)] == list(range(5))


# --- The sampler on studies -----------------------------------------------------------------

NB201 = spaces.create("nb201")


def conv3x3_count(trial: optuna.Trial) -> int:
    return sum(op == "nor_conv_3x3" for op in NB201.suggest(trial).genotype)


def test_created_by_name_and_validates_arguments() -> None:
    assert "reinforce" in samplers.available()
    sampler = samplers.create("reinforce", seed=1, controller="lstm", learning_rate=0.01)
    assert isinstance(sampler, REINFORCESampler)
    for bad in (
        {"controller": "gru"},
        {"learning_rate": 0.0},
        {"learning_rate": float("nan")},
        {"baseline_momentum": 1.0},
        {"n_bins": 1},
        {"hidden_size": 0},
    ):
        with pytest.raises(ValueError, match=r"invalid|unknown"):
            samplers.create("reinforce", **bad)


def params_sequence(sampler: REINFORCESampler, n_trials: int = 25) -> list[dict]:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conv3x3_count, n_trials=n_trials)
    return [t.params for t in study.trials]


@pytest.mark.parametrize("kind", CONTROLLERS)
def test_same_seed_same_sequence(kind: str) -> None:
    first = params_sequence(REINFORCESampler(seed=7, controller=kind))
    assert first == params_sequence(REINFORCESampler(seed=7, controller=kind))
    assert first != params_sequence(REINFORCESampler(seed=8, controller=kind))
    reseeded = REINFORCESampler(seed=7, controller=kind)
    reseeded.reseed_rng()
    assert first != params_sequence(reseeded)


@pytest.mark.parametrize(
    ("kind", "direction"),
    [("independent", "maximize"), ("independent", "minimize"), ("lstm", "maximize")],
)
def test_learns_synthetic_nb201_objective(kind: str, direction: str) -> None:
    # The objective rewards nor_conv_3x3 edges whatever the direction, so a sampler that
    # ignored the direction would learn the opposite. Repeats are allowed: with
    # skip_evaluated the last trials must leave the few best cells once all are measured.
    sign = 1 if direction == "maximize" else -1
    sampler = REINFORCESampler(seed=0, controller=kind, skip_evaluated=False)
    study = optuna.create_study(direction=direction, sampler=sampler)
    study.optimize(lambda t: sign * conv3x3_count(t), n_trials=200)
    counts = np.array([sign * t.value for t in study.trials])
    # Random search averages 6 / 5 = 1.2 such edges.
    assert counts[-50:].mean() > counts[:50].mean() + 1.5


def policy_logits(sampler: REINFORCESampler, study: optuna.Study) -> list[np.ndarray]:
    return list(sampler.policy_logits(study).values())


def assert_same_policy(a: list[np.ndarray], b: list[np.ndarray]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", CONTROLLERS)
def test_policy_is_shared_through_storage(kind: str, sqlite_url: str) -> None:
    name = "shared"
    optuna.create_study(storage=sqlite_url, study_name=name, direction="maximize")
    first = REINFORCESampler(seed=1, controller=kind)
    second = REINFORCESampler(seed=2, controller=kind)
    study_1 = optuna.load_study(study_name=name, storage=sqlite_url, sampler=first)
    study_2 = optuna.load_study(study_name=name, storage=sqlite_url, sampler=second)
    study_1.optimize(conv3x3_count, n_trials=5)
    study_2.optimize(conv3x3_count, n_trials=5)
    study_1.optimize(conv3x3_count, n_trials=3)
    logits = policy_logits(first, study_1)
    assert len(logits) == 6
    assert np.ptp(np.concatenate(logits)) > 0  # the policy has moved
    assert_same_policy(logits, policy_logits(second, study_2))
    fresh = REINFORCESampler(seed=3, controller=kind)
    assert_same_policy(logits, policy_logits(fresh, study_1))


@pytest.mark.parametrize("kind", CONTROLLERS)
def test_out_of_order_finish_equals_replay_in_number_order(kind: str) -> None:
    sampler = REINFORCESampler(seed=0, controller=kind)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def run(n_trials: int) -> None:
        for _ in range(n_trials):
            trial = study.ask()
            study.tell(trial, conv3x3_count(trial))

    run(20)  # past the first checkpoint, so the replay rewinds to it
    late = [study.ask() for _ in range(3)]
    values = {t.number: conv3x3_count(t) for t in late}
    run(30)
    for trial in late[::-1]:  # the three finish last, highest number first
        study.tell(trial, values[trial.number])
        policy_logits(sampler, study)
    run(1)
    fresh = REINFORCESampler(seed=0, controller=kind)
    assert_same_policy(policy_logits(sampler, study), policy_logits(fresh, study))


def test_failed_trials_are_skipped_and_pruned_ones_count() -> None:
    dist = {"op": CategoricalDistribution(["a", "b", "c"])}

    def add(study: optuna.Study, op: str, state: TrialState, value: float | None) -> None:
        intermediate = {0: value} if state == TrialState.PRUNED else None
        study.add_trial(
            optuna.trial.create_trial(
                params={"op": op},
                distributions=dist,
                value=value if state == TrialState.COMPLETE else None,
                state=state,
                intermediate_values=intermediate,
            )
        )

    plain = optuna.create_study(direction="maximize")
    with_failures = optuna.create_study(direction="maximize")
    for op, value in [("a", 1.0), ("b", 3.0), ("c", 0.0), ("b", 2.0)]:
        add(plain, op, TrialState.COMPLETE, value)
        add(with_failures, op, TrialState.COMPLETE, value)
        add(with_failures, "a", TrialState.FAIL, None)
    add(plain, "b", TrialState.PRUNED, 5.0)
    add(with_failures, "b", TrialState.PRUNED, 5.0)
    logits = policy_logits(REINFORCESampler(), plain)
    assert_same_policy(logits, policy_logits(REINFORCESampler(), with_failures))
    assert int(np.argmax(logits[0])) == 1


@pytest.mark.parametrize("kind", CONTROLLERS)
def test_conditional_space_with_numeric_decisions(kind: str) -> None:
    def objective(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("block", ["conv", "mlp"]) == "conv":
            width = trial.suggest_int("conv/width", 8, 256, log=True)
            return width / 256 + trial.suggest_int("conv/kernel", 1, 7, step=2)
        return trial.suggest_float("mlp/dropout", 0.0, 0.5)

    sampler = REINFORCESampler(seed=0, controller=kind)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    logits = sampler.policy_logits(study)
    assert set(logits) == {"block", "conv/width", "conv/kernel", "mlp/dropout"}
    assert [len(logits[k]) for k in ("block", "conv/kernel", "mlp/dropout")] == [2, 4, 10]
    plan = study.trials[-1].system_attrs[sampler.plan_attr]
    assert set(plan) == set(logits)  # every known decision is planned, active or not
    assert pickle.loads(pickle.dumps(sampler)).policy_logits(study).keys() == logits.keys()


def test_multi_objective_study_is_rejected() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=REINFORCESampler())
    with pytest.raises(ValueError, match="single-objective"):
        study.ask()


def _repeats(canonical: bool, **kwargs) -> int:
    """Trials of an 80-trial NB201 study repeating an earlier one: exactly, or as an
    equivalent cell with ``canonical``."""
    space = spaces.create("nb201")
    sampler = REINFORCESampler(seed=4, learning_rate=0.3, **kwargs)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        ops = space.suggest(trial).genotype
        return float(sum(op == "nor_conv_3x3" for op in ops) + 2 * (ops[0] == "none"))

    study.optimize(objective, n_trials=80)
    key = samplers.nb201_canonical if canonical else lambda p: tuple(sorted(p.items()))
    seen: set = set()
    repeats = 0
    for t in study.trials:
        repeats += key(t.params) in seen
        seen.add(key(t.params))
    return repeats


def test_skip_evaluated_keeps_a_concentrated_policy_off_repeats() -> None:
    # A fast rate concentrates the policy within a few dozen trials.
    with_repeats = _repeats(False, skip_evaluated=False)
    assert with_repeats > 10
    assert _repeats(False) < with_repeats / 3


def test_canonicalizer_keeps_equivalent_samples_out() -> None:
    # Edge node1/in0 set to none cuts everything behind node 1: many equivalent cells.
    without = _repeats(True)
    assert without > 10
    space = spaces.create("nb201")
    assert _repeats(True, space=space, canonicalize=samplers.nb201_canonical) < without / 3


def test_canonicalizer_needs_the_space() -> None:
    with pytest.raises(ValueError, match="pass space"):
        REINFORCESampler(canonicalize=samplers.nb201_canonical)
    sampler = samplers.create("reinforce", seed=0, space=spaces.create("nb201"))
    assert isinstance(sampler, REINFORCESampler)
    assert sampler._space is not None


def test_conditional_repeats_are_recognised_without_the_space() -> None:
    # Six architectures: x picks which of y and z is active. A plan holds both, so it
    # repeats a trial when it agrees with it on that trial's own parameters.
    def objective(trial: optuna.Trial) -> float:
        if trial.suggest_categorical("x", ["a", "b"]) == "a":
            return float(trial.suggest_int("y", 0, 2))
        return float(trial.suggest_int("z", 0, 2)) + 0.5

    sampler = REINFORCESampler(seed=0, learning_rate=0.3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial({"x": "a", "y": 0})
    study.enqueue_trial({"x": "b", "z": 0})
    study.optimize(objective, n_trials=6)
    held = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(set(held)) == 6


@pytest.mark.parametrize("seed", range(5))
def test_failed_trials_count_as_held(seed: int, held_study) -> None:
    study = held_study(REINFORCESampler(seed=seed))
    trial = study.ask()
    assert trial.suggest_categorical("x", ["a", "b", "c"]) == "c"


def test_running_enqueued_trial_is_held_with_its_plan() -> None:
    sampler = REINFORCESampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(conv3x3_count, n_trials=3)
    study.enqueue_trial({"node1/in0": "none"})
    running = study.ask()  # starts the enqueued trial; the plan fills in the rest
    frozen = study._storage.get_trial(running._trial_id)
    expected = {**frozen.system_attrs[sampler.plan_attr], "node1/in0": "none"}
    other = study.ask()
    taken = sampler._taken(study, study._storage.get_trial(other._trial_id))
    assert expected in taken
    assert {**expected, "node1/in0": "skip_connect"} not in taken
