"""The plumbing every architecture sampler of ours shares: the space, the canonicalizer,
the lock, and the rule for what counts as a repeat of a trial.

A trial's parameters are exactly the decisions that were active for its architecture:
Optuna stores only what the objective asked for. A plan (a full assignment a sampler
decides before the trial runs) may hold more, decisions that its architecture leaves
inactive. :class:`TakenArchitectures` therefore calls a plan a repeat of a trial when the
plan agrees with the trial on all of the trial's parameters, since a define-by-run
objective then asks for exactly those again. That needs no search space. Given a space,
the plan's active decisions are known and compared directly, and a canonicalizer may map
equivalent architectures to one key.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nas._compat import study_id, study_trials
from optuna_nas.samplers._genome import genome_key, sample_value
from optuna_nas.samplers._planned import (
    HELD_STATES,
    PENDING_STATES,
    PlannedSampler,
    planned_genome,
)
from optuna_nas.spaces._base import SearchSpace

Canonicalizer = Callable[[Mapping[str, Any]], Hashable]
"""Maps the active parameters of an architecture to a key shared by equivalent ones."""


def architecture_key(
    genome: Mapping[str, Any],
    space: SearchSpace | None = None,
    canonicalize: Canonicalizer | None = None,
) -> Hashable:
    """What makes two assignments the same architecture, for deduplication.

    With ``space``, only the assignment's active parameters count: the canonicalizer's key
    of them when there is one, else the active parameters themselves. Without ``space``,
    or when the assignment is not (yet) an architecture of the space (a mutation's newly
    activated parameters are drawn later), the assignment itself, as
    :func:`~optuna_nas.samplers._genome.genome_key` keys it.
    """
    if space is None:
        return genome_key(genome)
    try:
        active = space.from_params(genome).param_dict
    except ValueError:
        return genome_key(genome)
    return genome_key(active) if canonicalize is None else canonicalize(active)


def check_canonicalizer(space: object, canonicalize: object) -> None:
    """Raises :class:`ValueError` unless ``space`` is ``None`` or a search space, and
    ``canonicalize`` is ``None`` or a function that comes with a space."""
    if space is not None and not isinstance(space, SearchSpace):
        raise ValueError(
            f"space must be an optuna_nas.spaces.SearchSpace, got {type(space).__name__}; "
            "create one with optuna_nas.spaces.create(name)"
        )
    if canonicalize is not None and space is None:
        raise ValueError(
            "canonicalize applies to architectures, which the sampler only knows "
            "before a trial runs when it has the space; pass space=... as well"
        )
    if canonicalize is not None and not callable(canonicalize):
        raise ValueError(
            "canonicalize must be a function from an architecture's active parameters "
            f"to a hashable key, got {type(canonicalize).__name__}"
        )


class TakenArchitectures:
    """The architectures other trials hold, and whether a plan would repeat one.

    Args:
        key: With a search space, the function from an assignment to its architecture's key
            (:func:`architecture_key`); then a plan repeats a trial when the keys are equal.
            ``None`` (no space) uses the subset rule of the module docstring.
    """

    def __init__(self, key: Callable[[Mapping[str, Any]], Hashable] | None = None) -> None:
        self._key = key
        self._keys: set[Hashable] = set()
        self._by_names: dict[frozenset[str], set[Hashable]] = {}

    def add(self, genome: Mapping[str, Any]) -> None:
        """Record what a trial holds: its parameters, or an unfinished trial's plan."""
        entry = self.entry(genome)
        if entry is not None:
            self.add_entry(entry)

    def entry(self, genome: Mapping[str, Any]) -> tuple[frozenset[str] | None, Hashable] | None:
        """What :meth:`add` records for ``genome``, to be cached and given to
        :meth:`add_entry` again: computing an architecture's key is the costly part."""
        if not genome:
            return None
        if self._key is not None:
            return None, self._key(genome)
        return frozenset(genome), genome_key(genome)

    def add_entry(self, entry: tuple[frozenset[str] | None, Hashable]) -> None:
        """Records an :meth:`entry`."""
        names, key = entry
        if names is None:
            self._keys.add(key)
        else:
            self._by_names.setdefault(names, set()).add(key)

    def __contains__(self, plan: object) -> bool:
        """Whether evaluating ``plan`` would repeat a recorded trial."""
        if not isinstance(plan, Mapping):
            return False
        if self._key is not None:
            return self._key(plan) in self._keys
        for names, keys in self._by_names.items():
            if names <= plan.keys() and genome_key({n: plan[n] for n in names}) in keys:
                return True
        return False

    def __len__(self) -> int:
        return len(self._keys) + sum(len(k) for k in self._by_names.values())


class ArchitectureSampler(PlannedSampler):
    """A :class:`PlannedSampler` that knows the space (optionally), deduplicates, and plans
    one trial at a time per process.

    Args:
        seed: Seed of the sampler's random generator.
        space: The search space the objective samples from, if known.
        canonicalize: Maps an architecture's active parameters to the key that counts as
            "the same"; needs ``space``.

    Raises:
        ValueError: If ``space`` is not a search space, or ``canonicalize`` is given
            without one or is not callable.
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        space: SearchSpace | None = None,
        canonicalize: Canonicalizer | None = None,
    ) -> None:
        check_canonicalizer(space, canonicalize)
        super().__init__(seed=seed)
        self._space = space
        self._canonicalize = canonicalize
        # Reentrant: a subclass may hold it in make_plan, which before_trial calls.
        self._lock = threading.RLock()
        # Per study, each finished trial's parameters and deduplication entry.
        self._finished_entries: dict[int, dict[int, tuple[dict[str, Any], Any]]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; a copy gets its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.setdefault("_finished_entries", {})
        self._lock = threading.RLock()

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        # One plan at a time, so threads of one process see each other's plans in storage.
        with self._lock:
            super().before_trial(study, trial)

    def _key(self, genome: Mapping[str, Any]) -> Hashable:
        return architecture_key(genome, self._space, self._canonicalize)

    def _complete(
        self,
        plan: dict[str, Any],
        distributions: Mapping[str, BaseDistribution],
        taken: TakenArchitectures | None = None,
        tries: int = 20,
    ) -> dict[str, Any]:
        """``plan`` with a random value for each decision of ``distributions`` it lacks,
        redrawn (up to ``tries`` times) while the result repeats a trial of ``taken``.

        Without a space, a sampler does not know which decisions a changed plan activates;
        giving it every decision the study has seen makes the plan a whole architecture, so
        :class:`TakenArchitectures` can tell for sure whether it repeats a trial. With a
        space, decisions are completed when the objective asks for them, as before.
        """
        missing = [n for n in distributions if n not in plan]
        if self._space is not None or not missing:
            return plan
        for _ in range(tries):
            complete = {**plan, **{n: sample_value(distributions[n], self._rng) for n in missing}}
            if taken is None or complete not in taken:
                break
        return complete

    def _random_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        """A random architecture no trial holds, over the decisions the study has seen,
        for the trials a sampler draws at random (before its model or population exists).

        ``None`` with a space (the objective's own draws are kept, as before) or before any
        trial has finished (nothing is known to draw from yet).
        """
        if self._space is not None:
            return None
        seen: dict[str, BaseDistribution] = {}
        for other in study_trials(study, use_cache=True):
            if other.state in HELD_STATES:
                seen.update(other.distributions)
        if not seen:
            return None
        return self._complete({}, seen, self._taken(study, trial))

    def _taken(
        self, study: Study, trial: FrozenTrial, *, finished: bool = True
    ) -> TakenArchitectures:
        """What the study's other trials hold: unfinished ones' plans and, with
        ``finished``, the parameters of finished and failed ones.

        A finished trial never changes, so its entry is computed once per sampler and
        study and kept (a study of 1,000 trials would otherwise key 1,000 architectures
        per trial)."""
        taken = TakenArchitectures(None if self._space is None else self._key)
        cache = self._finished_entries.setdefault(study_id(study), {})
        for other in study_trials(study, use_cache=True):
            if other.number == trial.number:
                continue
            if other.state in PENDING_STATES:
                taken.add(planned_genome(other, self.plan_attr))
            elif finished and other.state in HELD_STATES:
                cached = cache.get(other.number)
                if cached is None or cached[0] != other.params:  # another study of this id
                    cached = cache[other.number] = (dict(other.params), taken.entry(other.params))
                if cached[1] is not None:
                    taken.add_entry(cached[1])
        return taken
