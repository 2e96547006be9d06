"""create_study: URLs through open_storage, settings stored, resuming checked."""

from __future__ import annotations

import pytest

from optuna_nas import (
    DatasetConfig,
    StorageError,
    TrainingConfig,
    _keys,
    create_study,
    spaces,
    study_settings,
)


def _create(storage: object, name: str = "s") -> object:
    return create_study(
        storage=storage,
        study_name=name,
        space=spaces.create("chain", max_layers=2),
        dataset=DatasetConfig("digits"),
        training=TrainingConfig(epochs=2),
        sampler="random",
        pruner="median",
        seed=3,
    )


def test_a_url_string_goes_through_open_storage(tmp_path) -> None:
    study = _create(f"sqlite:///{tmp_path / 'a.db'}")
    assert study.user_attrs[_keys.STUDY_SAMPLER] == {"name": "random", "seed": 3}
    space, dataset, training = study_settings(study)
    assert space.spec == spaces.create("chain", max_layers=2).spec
    assert dataset.name == "digits" and training.epochs == 2


def test_a_bad_url_is_refused_with_the_masked_reason(tmp_path) -> None:
    missing = tmp_path / "no" / "such" / "folder" / "j.log"
    with pytest.raises(StorageError) as err:
        _create(f"journal://{missing}")
    assert "folder" in str(err.value) or "exist" in str(err.value)
    assert not missing.parent.exists()
