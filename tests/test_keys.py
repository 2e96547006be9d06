"""The attribute keys: one namespace, defined once, earlier names still read."""

from __future__ import annotations

import re
from pathlib import Path

import optuna

from optuna_nas import _keys

PACKAGE = Path(__file__).resolve().parents[1] / "optuna_nas"


def _key_constants() -> dict[str, str]:
    return {
        name: value
        for name, value in vars(_keys).items()
        if name.isupper() and isinstance(value, str) and name != "NAMESPACE"
    }


def test_every_key_is_namespaced() -> None:
    for name, value in _key_constants().items():
        assert value.startswith(_keys.NAMESPACE), name


def test_no_other_module_spells_a_key() -> None:
    values = set(_key_constants().values()) | set(_keys.LEGACY.values())
    pattern = re.compile(r'^\s*[A-Z_]+\s*=\s*"([^"]+)"', re.M)
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_keys.py":
            continue
        defined = set(pattern.findall(path.read_text()))
        assert not defined & values, f"{path} defines {defined & values}"


def test_read_finds_the_earlier_name() -> None:
    attrs = {"test_accuracy": 0.9, "intermediate_values:loss": {"0": 1.0}}
    assert _keys.read(attrs, _keys.TEST_ACCURACY) == 0.9
    assert _keys.read(attrs, _keys.CURVE_PREFIX + "loss") == {"0": 1.0}
    assert _keys.read(attrs, _keys.N_PARAMS, "absent") == "absent"
    assert _keys.has(attrs, _keys.TEST_ACCURACY)
    assert not _keys.has(attrs, _keys.FLOPS)


def test_the_new_name_wins_over_the_earlier_one() -> None:
    attrs = {"batch_size": 128, _keys.BATCH_SIZE: 64}
    assert _keys.read(attrs, _keys.BATCH_SIZE) == 64


def test_a_study_written_with_plain_names_still_retries_its_oom_trial() -> None:
    from optuna_nas import OOMRetryCallback

    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("fail_reason", "oom")
    trial.set_user_attr("batch_size", 256)
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    OOMRetryCallback()(study, study.trials[0])
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1
    assert waiting[0].user_attrs[_keys.BATCH_SIZE] == 128
    assert waiting[0].user_attrs[_keys.RETRY_OF] == 0
