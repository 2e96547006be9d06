from __future__ import annotations

import optuna
import pytest
import torch
from optuna.trial import TrialState
from scipy.stats import spearmanr

from optuna_nas import Fidelity, _keys, data, spaces
from optuna_nas.nn import count_params
from optuna_nas.pruners import RANK_CORRELATION_ATTR, LowFidelityPruner, ObjectivePruner
from optuna_nas.training import fit, seed_everything

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

CONV = {
    "n_layers": 1,
    "layer0/op": "conv",
    "layer0/filters": 16,
    "layer0/kernel_size": 3,
    "layer0/stride": 1,
    "layer0/dilation": 1,
}
FAST = {"batch_size": 32, "lr": 1e-2}


@pytest.fixture(scope="module")
def digits() -> data.Dataset:
    return data.load("digits", seed=0)


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Tiny networks on 8x8 digits only wait on extra threads."""


def _arch() -> spaces.Architecture:
    return spaces.create("chain").from_params(CONV)


def test_ladder_grows_geometrically_to_full_fidelity() -> None:
    assert [f.epochs for f in Fidelity.ladder(epochs=(1, 27))] == [1, 3, 9, 27]
    assert [f.epochs for f in Fidelity.ladder(epochs=(1, 20), eta=2)] == [1, 2, 4, 9, 20]
    ladder = Fidelity.ladder(epochs=(1, 9), data_fraction=(0.25, 1.0))
    assert [(f.epochs, f.data_fraction) for f in ladder] == [(1, 0.25), (3, 0.5), (9, 1.0)]
    assert all(f.resolution is None and f.width_multiplier is None for f in ladder)
    ladder = Fidelity.ladder(resolution=(4, 8), width_multiplier=(0.25, 1.0), n_rungs=3)
    assert [(f.resolution, f.width_multiplier) for f in ladder] == [(4, 0.25), (6, 0.5), (8, 1.0)]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "needs at least one"),
        ({"epochs": (9, 1)}, "0 < low < high"),
        ({"epochs": 9}, r"\(low, high\) pair"),
        ({"epochs": (1, 2, 3)}, r"\(low, high\) pair"),
        ({"epochs": (1, 27), "eta": 1.0}, "eta must be a number > 1"),
        ({"epochs": (1, 2)}, "at least 2 rungs"),
        ({"epochs": (1, 2), "n_rungs": 4}, "two equal rungs"),
    ],
)
def test_bad_ladders_name_the_fix(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Fidelity.ladder(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, "epochs must be an integer >= 1"),
        ({"epochs": 2.5}, "epochs must be an integer >= 1"),
        ({"data_fraction": 0.0}, r"data_fraction must lie in \(0, 1\]"),
        ({"data_fraction": 1.5}, r"data_fraction must lie in \(0, 1\]"),
        ({"resolution": 0}, "resolution must be an integer >= 1"),
        ({"width_multiplier": -0.5}, "width_multiplier must be a number > 0"),
    ],
)
def test_bad_fidelity_names_the_field(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Fidelity(**kwargs)


def test_fit_trains_at_the_fidelity(digits: data.Dataset, device: torch.device) -> None:
    seed_everything(0)
    full = fit(_arch(), digits, fidelity=Fidelity(epochs=2), **FAST, device=device)
    seed_everything(0)
    low = fit(
        _arch(),
        digits,
        fidelity=Fidelity(epochs=3, data_fraction=0.25, resolution=4, width_multiplier=0.5),
        **FAST,
    )
    assert len(full.history) == 2 and len(low.history) == 3
    # samples_per_second * seconds_per_epoch is the number of training examples.
    n_train = len(digits.train)
    assert full.samples_per_second * full.seconds_per_epoch == pytest.approx(n_train)
    assert low.samples_per_second * low.seconds_per_epoch == pytest.approx(round(n_train / 4))
    assert low.n_params == count_params(_arch().build((1, 4, 4), 10, width_multiplier=0.5))
    assert low.n_params < full.n_params
    assert low.flops < full.flops / 4  # half the channels on a quarter of the pixels


def test_an_architecture_is_built_from_the_seed(
    digits: data.Dataset, device: torch.device
) -> None:
    first = fit(_arch(), digits, fidelity=Fidelity(epochs=1), seed=3, **FAST, device=device)
    torch.manual_seed(12345)  # the global state before fit does not matter
    again = fit(_arch(), digits, fidelity=Fidelity(epochs=1), seed=3, **FAST, device=device)
    other = fit(_arch(), digits, fidelity=Fidelity(epochs=1), seed=4, **FAST, device=device)
    assert first.history[0]["train_loss"] == again.history[0]["train_loss"]
    assert first.history[0]["train_loss"] != other.history[0]["train_loss"]


def test_fidelity_epochs_replace_epochs_and_reports_follow(
    digits: data.Dataset, device: torch.device
) -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    seed_everything(0)
    model = _arch().build(digits.input_shape, digits.num_classes)
    result = fit(
        model, digits, trial=trial, epochs=10, fidelity=Fidelity(epochs=2), **FAST, device=device
    )
    assert len(result.history) == 2
    assert sorted(study._storage.get_trial(trial._trial_id).intermediate_values) == [0, 1]


def test_fit_refuses_a_width_multiplier_for_a_built_module(
    digits: data.Dataset, device: torch.device
) -> None:
    model = _arch().build(digits.input_shape, digits.num_classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"pass the Architecture instead"):
        fit(model, digits, fidelity=Fidelity(epochs=1, width_multiplier=0.5), device=device)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # A multiplier of 1 is full width, which any module has.
    assert len(
        fit(
            model, digits, fidelity=Fidelity(epochs=1, width_multiplier=1.0), device=device
        ).history
    )


def test_resolution_needs_images(digits: data.Dataset, device: torch.device) -> None:
    flat = data.load("digits", flat=True)
    with pytest.raises(ValueError, match=r"resolution needs image inputs"):
        fit(_arch(), flat, fidelity=Fidelity(epochs=1, resolution=4), device=device)


UNSELECTED = f"{_keys.FIDELITY_UNSELECTED_PREFIX}0"


def test_a_ladder_study_prunes_only_at_trusted_rungs(
    digits: data.Dataset, device: torch.device
) -> None:
    """Real training on digits; each rung restarts from scratch at its fidelity."""
    space = spaces.create("chain", max_layers=2, filters=(4, 16), kernel_sizes=(3,))
    ladder = Fidelity.ladder(epochs=(1, 3), data_fraction=(0.5, 1.0), n_rungs=2)
    pruner = LowFidelityPruner(rung_steps=range(len(ladder)), min_correlation=0.3)
    study = optuna.create_study(
        direction="maximize", pruner=pruner, sampler=optuna.samplers.RandomSampler(seed=0)
    )

    def objective(trial: optuna.trial.Trial) -> float:
        arch = space.suggest(trial)
        for rung, fidelity in enumerate(ladder):
            seed_everything(trial.number)
            accuracy = fit(arch, digits, fidelity=fidelity, **FAST, device=device).valid_accuracy
            trial.report(accuracy, rung)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return accuracy

    study.optimize(objective, n_trials=10)
    trials = study.trials
    for trial in trials:
        if trial.state != TrialState.PRUNED:
            continue
        # Trials ran one after another: the earlier ones are all the pruner knew of, and
        # it measures the rung on those that passed it while it was not pruning.
        earlier = trials[: trial.number]
        pairs = [
            (t.intermediate_values[0], t.value)
            for t in earlier
            if t.state == TrialState.COMPLETE and t.system_attrs.get(UNSELECTED)
        ]
        assert len(pairs) >= 6
        assert spearmanr(*zip(*pairs, strict=True)).statistic >= 0.3
        rung0 = sorted(
            (t.intermediate_values[0] for t in trials[: trial.number + 1]), reverse=True
        )
        assert trial.intermediate_values[0] < rung0[len(rung0) // 3 - 1]

    finished = [
        t for t in trials if t.state == TrialState.COMPLETE and t.system_attrs.get(UNSELECTED)
    ]
    assert len(finished) >= 6
    row = pruner.rank_correlations(study)[0]
    expected = spearmanr([t.intermediate_values[0] for t in finished], [t.value for t in finished])
    assert row.pairs == len(finished)
    assert row.correlation == pytest.approx(expected.statistic)
    assert study.user_attrs[RANK_CORRELATION_ATTR] == [
        {"step": 0, "correlation": row.correlation, "pairs": row.pairs, "trusted": row.trusted}
    ]


def test_fit_reports_a_multi_objective_trial_through_objective_pruner(
    device: torch.device, digits: data.Dataset, sqlite_url: str
) -> None:
    pruner = ObjectivePruner(LowFidelityPruner(max_step=2), objective="accuracy")
    study = optuna.create_study(
        directions=["maximize", "minimize"], storage=sqlite_url, pruner=pruner
    )
    study.set_metric_names(["accuracy", "params"])
    trial = study.ask()
    seed_everything(0)
    result = fit(_arch(), digits, trial=trial, epochs=3, **FAST, device=device)
    study.tell(trial, [result.valid_accuracy, result.n_params])
    stored = optuna.load_study(study_name=study.study_name, storage=sqlite_url).trials[0]
    curve = stored.user_attrs["optuna_nas:intermediate_values:accuracy"]
    assert curve == {str(e): a for e, a in enumerate(result.learning_curve)}

    # Without an ObjectivePruner fit trains and reports nothing, as Optuna cannot.
    plain = optuna.create_study(directions=["maximize", "minimize"])
    trial = plain.ask()
    assert len(fit(_arch(), digits, trial=trial, epochs=1, **FAST, device=device).history) == 1
    assert trial.user_attrs.get("optuna_nas:intermediate_values:accuracy") is None
