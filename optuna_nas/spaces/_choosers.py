"""The choosers a search space's walk asks its decisions of: a trial, stored parameters,
a random generator, or an enumeration."""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import optuna

ParamValue = Any  # str | int | float | bool | None, as Optuna stores them


class Chooser(abc.ABC):
    """Answers the decisions a search space asks while it is walked."""

    @abc.abstractmethod
    def categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        """Returns one of ``choices`` for the decision ``name``."""

    @abc.abstractmethod
    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        """Returns an integer in ``[low, high]`` for the decision ``name``."""


class TrialChooser(Chooser):
    """Asks an Optuna trial, so every decision becomes a ``suggest_*`` call."""

    def __init__(self, trial: optuna.trial.BaseTrial) -> None:
        self._trial = trial

    def categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        return self._trial.suggest_categorical(name, list(choices))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._trial.suggest_int(name, low, high, step=step, log=log)


class ParamsChooser(Chooser):
    """Reads decisions from stored parameters and checks each one is legal.

    It records which names the walk used, so the caller can keep exactly the active ones.
    """

    def __init__(self, params: Mapping[str, ParamValue], space_name: str) -> None:
        self._params = params
        self._space_name = space_name
        self.used: dict[str, ParamValue] = {}

    def _get(self, name: str) -> ParamValue:
        if name not in self._params:
            raise ValueError(
                f"parameter {name!r} is active in this {self._space_name!r} architecture but "
                "missing from the given params; pass every active parameter the space "
                "suggested (for example frozen_trial.params)"
            )
        return self._params[name]

    def categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        value = self._get(name)
        if value not in list(choices):
            raise ValueError(
                f"parameter {name!r} = {value!r} is not a legal choice; choose one of "
                f"{list(choices)!r}"
            )
        self.used[name] = value
        return value

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = self._get(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(
                f"parameter {name!r} = {value!r} must be an integer in [{low}, {high}]"
            )
        if (value - low) % step:
            raise ValueError(
                f"parameter {name!r} = {value} must be {low} plus a multiple of {step}"
            )
        self.used[name] = value
        return value


class _RandomChooser(Chooser):
    """Draws each decision at random: choices and integer steps uniformly, integers with
    ``log=True`` log-uniformly. A decision named in ``fixed`` keeps that value if legal."""

    def __init__(self, rng: np.random.RandomState, fixed: Mapping[str, ParamValue]) -> None:
        self._rng = rng
        self._fixed = fixed
        self.used: dict[str, ParamValue] = {}

    def categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        choices = list(choices)
        value = self._fixed.get(name)
        if name not in self._fixed or value not in choices:
            value = choices[self._rng.randint(len(choices))]
        self.used[name] = value
        return value

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        value = self._fixed.get(name)
        if not (isinstance(value, int) and low <= value <= high and (value - low) % step == 0):
            if log:
                drawn = math.exp(self._rng.uniform(math.log(low), math.log(high + 1)))
                value = min(high, max(low, math.floor(drawn)))
            else:
                value = low + step * int(self._rng.randint((high - low) // step + 1))
        self.used[name] = value
        return value


class _IndexChooser(Chooser):
    """Takes option ``path[d]`` at the ``d``-th decision, and past the path the option that
    ``start`` names (or the first); records each decision's option index and count."""

    def __init__(self, path: Sequence[int], start: Mapping[str, ParamValue] | None = None):
        self._path = path
        self._start = start or {}
        self.indices: list[int] = []
        self.sizes: list[int] = []
        self.used: dict[str, ParamValue] = {}

    def _pick(self, name: str, options: Sequence[ParamValue]) -> Any:
        depth = len(self.indices)
        if depth < len(self._path):
            index = self._path[depth]
        elif name in self._start and self._start[name] in options:
            index = options.index(self._start[name])
        else:
            index = 0
        self.indices.append(index)
        self.sizes.append(len(options))
        self.used[name] = options[index]
        return options[index]

    def categorical(self, name: str, choices: Sequence[ParamValue]) -> ParamValue:
        return self._pick(name, list(choices))

    def integer(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return int(self._pick(name, range(low, high + 1, step)))
