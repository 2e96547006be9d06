from __future__ import annotations

from collections.abc import Callable

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState


@pytest.fixture(autouse=True)
def _one_thread(single_thread: None) -> None:
    """Every test here works on tiny tensors; see ``single_thread`` in tests/conftest.py."""


@pytest.fixture
def held_study() -> Callable[[optuna.samplers.BaseSampler], optuna.Study]:
    """Makes a study over ``x`` in ``{a, b, c}`` that holds ``a`` (completed, value 1) and
    ``b`` (failed), so a sampler that counts failed trials as held must propose ``c``."""

    def make(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
        dist = CategoricalDistribution(["a", "b", "c"])
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for value, state in (("a", TrialState.COMPLETE), ("b", TrialState.FAIL)):
            study.add_trial(
                optuna.create_trial(
                    state=state,
                    value=1.0 if state == TrialState.COMPLETE else None,
                    params={"x": value},
                    distributions={"x": dist},
                )
            )
        return study

    return make
