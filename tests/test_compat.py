"""Contract tests of every Optuna and BoTorch private name that optuna_nas._compat uses.

Each test fails with the name when a release changes what the adapter relies on.
"""

from __future__ import annotations

import json
import math
import warnings

import optuna
import pytest
import torch
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from optuna_nas import _compat


def _study(storage: str | None = None) -> optuna.Study:
    return optuna.create_study(storage=storage, direction="maximize")


def test_trial_and_study_ids_address_the_storage() -> None:
    study = _study()
    trial = study.ask()
    storage = _compat.study_storage(study)
    assert storage.get_trial(_compat.trial_id(trial)).number == trial.number
    frozen = storage.get_trial(_compat.trial_id(trial))
    assert _compat.trial_id(frozen) == _compat.trial_id(trial)
    assert storage.get_study_name_from_id(_compat.study_id(study)) == study.study_name


def test_fresh_trial_sees_attributes_set_through_the_storage() -> None:
    study = _study()
    trial = study.ask()
    _compat.study_storage(study).set_trial_system_attr(_compat.trial_id(trial), "k", 3)
    assert _compat.fresh_trial(trial).system_attrs["k"] == 3


def test_study_trials_filters_states_and_uses_the_cache() -> None:
    study = _study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    study.ask()
    assert len(_compat.study_trials(study)) == 4
    done = _compat.study_trials(study, states=(TrialState.COMPLETE,), use_cache=True)
    assert [t.number for t in done] == [0, 1, 2]


def test_enqueued_params_are_read_from_the_enqueue_attribute() -> None:
    study = _study()
    study.enqueue_trial({"x": 0.25})
    enqueued = study.ask()
    plain = study.ask()
    frozen = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert _compat.enqueued_params(frozen[enqueued.number]) == {"x": 0.25}
    assert _compat.enqueued_params(frozen[plain.number]) == {}


def test_constraints_are_stored_as_optuna_samplers_store_them() -> None:
    study = _study()
    trial = study.ask()
    frozen = _compat.fresh_trial(trial)
    _compat.process_constraints_after_trial(lambda t: [0.5], study, frozen, TrialState.COMPLETE)
    assert list(_compat.fresh_trial(trial).system_attrs["constraints"]) == [0.5]


def test_heartbeat_enabled_tells_storages_apart(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'hb.db'}"
    assert not _compat.heartbeat_enabled(RDBStorage(url))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        beating = RDBStorage(url, heartbeat_interval=5, grace_period=10)
    assert _compat.heartbeat_enabled(beating)
    assert not _compat.heartbeat_enabled(optuna.storages.InMemoryStorage())


def test_storage_url_sees_through_the_cache(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'u.db'}"
    study = _study(url)
    assert _compat.storage_url(_compat.study_storage(study)) == url
    assert _compat.storage_url(optuna.storages.InMemoryStorage()) is None


def test_recorded_artifact_is_listed_by_optuna(tmp_path) -> None:
    study = _study()
    trial = study.ask()
    with open(tmp_path / "abc", "wb") as f:
        f.write(b"<svg/>")
    _compat.record_artifact(trial, "abc", filename="a.svg", mimetype="image/svg+xml")
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=_compat.study_storage(study))
    assert [(m.artifact_id, m.filename, m.mimetype) for m in metas] == [
        ("abc", "a.svg", "image/svg+xml")
    ]
    stored = _compat.study_storage(study).get_trial(_compat.trial_id(trial)).system_attrs
    assert json.loads(stored[_compat.ARTIFACT_META_PREFIX + "abc"])["filename"] == "a.svg"


def test_retry_callback_public_api_names_the_failed_trial() -> None:
    study = _study()
    study.enqueue_trial({"x": 1.0})
    trial = study.ask()
    study.tell(trial, state=TrialState.FAIL)
    failed = study.trials[0]
    assert _compat.retried_trial_number(failed) is None
    assert _compat.retry_history(failed) == []
    callback = _compat.stale_trial_retry_callback(max_retry=1)
    assert callable(callback)


def test_log_ei_matches_the_closed_form() -> None:
    u = torch.tensor([-2.0, 0.0, 1.5], dtype=torch.float64)
    normal = torch.distributions.Normal(0.0, 1.0)
    expected = torch.log(normal.log_prob(u).exp() + u * normal.cdf(u))
    assert torch.allclose(_compat.log_ei_from_z(u), expected, atol=1e-10)
    very_negative = _compat.log_ei_from_z(torch.tensor([-40.0], dtype=torch.float64))
    assert math.isfinite(float(very_negative)) and float(very_negative) < -800


def test_fused_kernel_flag_is_set_only_inside_the_block() -> None:
    from botorch.acquisition.multi_objective import logei

    before = getattr(logei, "_load_attempted", None)
    with _compat.no_fused_hypervolume_kernel():
        inside = getattr(logei, "_load_attempted", None)
    after = getattr(logei, "_load_attempted", None)
    if before is None:  # a BoTorch without the fused kernel: nothing to switch off
        assert inside is None and after is None
    else:
        assert inside is True and after is before


def test_trial_note_is_the_one_optuna_dashboard_reads() -> None:
    pytest.importorskip("optuna_dashboard")
    from optuna_dashboard._note import get_note_from_system_attrs

    from optuna_nas._compat import save_trial_note

    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    frozen = study.trials[1]
    save_trial_note(study, frozen, "first")
    save_trial_note(study, frozen, "second " * 400)  # longer than one system attribute
    attrs = study._storage.get_study_system_attrs(study._study_id)
    note = get_note_from_system_attrs(attrs, frozen._trial_id)
    assert note == {"version": 2, "body": "second " * 400}
