"""Random search that does not repeat an assignment the study already holds.

The pure parts, :func:`nb201_canonical`, :class:`AssignmentIndex` and
:func:`iter_assignments`, are tested without a study; :class:`DeduplicatingRandomSampler`
reads the study's trials into them and writes a plan for each trial.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.study import Study
from optuna.trial import FrozenTrial

from optuna_nas._compat import enqueued_params, study_id, study_storage, study_trials
from optuna_nas.samplers._architecture import ArchitectureSampler, Canonicalizer
from optuna_nas.samplers._genome import genome_key, sample_value
from optuna_nas.samplers._planned import PENDING_STATES
from optuna_nas.spaces._base import SearchSpace

_logger = logging.getLogger(__name__)

Feasibility = Callable[[Mapping[str, Any]], bool]
"""Tells whether the active parameters of an architecture may be evaluated."""

_NB201_EDGE = re.compile(r"node([1-9])/in([0-9])")
_NB201_ZERO = "#"


def nb201_canonical(params: Mapping[str, Any]) -> str:
    """The computational-isomorphism class of a NAS-Bench-201 cell, as a string.

    Each node is written as the sorted ``+``-join of one term per incoming edge: ``#`` for
    an edge that is ``none`` or leaves a node that is exactly ``#``, the source node's
    string for ``skip_connect``, and ``(source)@op`` for any other op; node 0 is ``x``
    and the string of node 3 is the class. So edges that cannot reach the output drop
    out, and so does the order of the terms at each node; as in the benchmark's own
    definition, a node's sum enters the next one as written, not flattened. This
    reproduces the benchmark's partition of its 15,625 cells into 6,466 classes exactly.

    Args:
        params: The cell's edges as :class:`~optuna_nas.spaces.NB201Space` names them,
            ``node{i}/in{j}`` for ``0 <= j < i <= 3``; other keys are ignored.

    Raises:
        ValueError: If an edge is missing.

    References:
        Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
        Architecture Search", ICLR 2020 (6,466 unique cells).

    Example:
        .. code-block:: python

            from optuna_nas.samplers import nb201_canonical
            from optuna_nas.spaces import NB201Space

            space = NB201Space()
            a = space.from_nb201_string(
                "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
            )
            b = space.from_nb201_string(
                "|nor_conv_3x3~0|+|avg_pool_3x3~0|none~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
            )
            assert nb201_canonical(a.param_dict) == nb201_canonical(b.param_dict)
    """
    edges: dict[tuple[int, int], Any] = {}
    for name, op in params.items():
        match = _NB201_EDGE.fullmatch(name)
        if match:
            edges[int(match[1]), int(match[2])] = op
    nodes = ["x"]
    for target in (1, 2, 3):
        terms = []
        for source in range(target):
            if (target, source) not in edges:
                raise ValueError(
                    f"NAS-Bench-201 cell lacks the edge 'node{target}/in{source}'; pass all "
                    "six edges node{i}/in{j} (0 <= j < i <= 3), e.g. a trial's params"
                )
            op = edges[target, source]
            if op == "none" or nodes[source] == _NB201_ZERO:
                terms.append(_NB201_ZERO)
            elif op == "skip_connect":
                terms.append(nodes[source])
            else:
                terms.append(f"({nodes[source]})@{op}")
        nodes.append("+".join(sorted(terms)))
    return nodes[3]


class AssignmentIndex:
    """Earlier assignments of a define-by-run objective, for telling whether a new one repeats.

    A full *candidate* assigns every parameter name seen so far. If the objective's
    control flow depends only on parameter values, a trial that follows the candidate
    repeats an earlier assignment exactly when the candidate agrees with it on all of that
    assignment's names: the trial then asks the same decisions in turn and gets the same
    answers. Assignments are grouped by their set of names, so a check costs one lookup
    per distinct set.
    """

    def __init__(self) -> None:
        self._groups: dict[tuple[str, ...], set[tuple[Any, ...]]] = {}

    @property
    def name_sets(self) -> list[tuple[str, ...]]:
        """The distinct sets of names added, each sorted."""
        return list(self._groups)

    def add(self, assignment: Mapping[str, Any]) -> None:
        """Records an assignment (parameter names to values)."""
        names = tuple(sorted(assignment))
        self._groups.setdefault(names, set()).add(tuple(assignment[n] for n in names))

    def repeats(self, candidate: Mapping[str, Any]) -> bool:
        """Whether ``candidate`` agrees with a recorded assignment on all of its names."""
        for names, values in self._groups.items():
            if all(n in candidate for n in names):
                if tuple(candidate[n] for n in names) in values:
                    return True
        return False


def finite_values(dist: BaseDistribution) -> list[Any] | None:
    """All values of a distribution, or ``None`` for a continuous one."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1, dist.step))
    if isinstance(dist, FloatDistribution) and dist.step is not None:
        n = round((dist.high - dist.low) / dist.step)
        return [float(min(dist.high, dist.low + dist.step * k)) for k in range(n + 1)]
    return None


def iter_assignments(values: Mapping[str, list[Any]], start: int = 0) -> Iterator[dict[str, Any]]:
    """Every combination of ``values`` once, in mixed-radix order from index ``start``.

    Args:
        values: The values of each name.
        start: Index of the first combination; the order wraps around after the last, so a
            random start gives a complete enumeration in a random rotation.
    """
    names = sorted(values)
    sizes = [len(values[n]) for n in names]
    total = math.prod(sizes)
    for offset in range(total):
        index = (start + offset) % total
        assignment = {}
        for name, size in zip(reversed(names), reversed(sizes), strict=True):
            index, digit = divmod(index, size)
            assignment[name] = values[name][digit]
        yield assignment


@dataclass
class _StudyIndex:
    """What a sampler has read from one study's finished trials, extended as trials finish."""

    owner: tuple[object, int]
    folded: set[int] = field(default_factory=set)
    watermark: int = 0
    keys: set[Hashable] = field(default_factory=set)
    history: AssignmentIndex = field(default_factory=AssignmentIndex)
    distributions: dict[str, tuple[int, BaseDistribution]] = field(default_factory=dict)
    exhausted: bool = False
    too_large: bool = False


class DeduplicatingRandomSampler(ArchitectureSampler):
    """Random search that never proposes an assignment the study already holds.

    Every trial of the study counts, in any state: finished, failed, running and waiting
    (enqueued). When the space is used up, the sampler warns once and samples plain
    random trials from then on. What is guaranteed depends on what the sampler knows:

    * With ``space`` (an objective that calls ``space.suggest(trial)``), each trial's
      architecture is drawn by walking the space at random, and redrawn while its key,
      ``canonicalize(params)``, belongs to an earlier trial or ``feasible(params)`` is
      false. After ``max_tries`` rejected draws the whole space is enumerated from a random
      point, if it has at most ``max_enumeration`` architectures. So no two trials share a
      key until every feasible key is taken. Parameters the objective suggests besides
      the space's (a learning rate, say) are random and do not count.
    * Without ``space``, the sampler draws a value for every parameter name seen so far
      and redraws while the draw agrees with an earlier trial on all of that trial's
      parameters (see :class:`AssignmentIndex`). If the objective's control flow depends
      only on parameter values and each name keeps its distribution, no trial then
      repeats a finished one, and exhaustion is declared only after enumerating every
      combination of the known finite parameters. The first trial is plain random.
      Trials still running are blocked in each set of names seen so far, as their final
      set is not known yet; a best effort.

    Between processes sharing a storage a small race remains: two workers planning at the
    same instant may pick the same architecture. Threads of one process do not race.

    Args:
        space: The search space the objective suggests from, for the full guarantee.
        canonicalize: Maps an architecture's active parameters to the key that counts as
            "the same", e.g. :func:`nb201_canonical` for NAS-Bench-201's isomorphism
            classes. Defaults to the parameters themselves. Needs ``space``.
        feasible: Returns whether an architecture's active parameters may be evaluated,
            e.g. a parameter budget; it should be cheap, and each architecture's answer is
            memoized. Needs ``space``.
        max_tries: Random draws before falling back to enumeration.
        max_enumeration: Largest number of architectures (or combinations of known
            parameter values) enumerated to find an unseen one; beyond it, the sampler
            warns once and gives up on deduplication when random draws fail.
        seed: Seed of the sampler's random generator.

    Raises:
        ValueError: If ``canonicalize`` or ``feasible`` is given without ``space``, or a
            count is not positive.

    References:
        Bergstra and Bengio, "Random Search for Hyper-Parameter Optimization", JMLR 2012.

        Li and Talwalkar, "Random Search and Reproducibility for Neural Architecture
        Search", UAI 2019 (random search as the baseline for architecture search).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import spaces
            from optuna_nas.samplers import DeduplicatingRandomSampler, nb201_canonical

            space = spaces.create("nb201")
            sampler = DeduplicatingRandomSampler(space, canonicalize=nb201_canonical, seed=0)

            def objective(trial):
                ops = space.decode(space.suggest(trial).param_dict)
                return ops.count("nor_conv_3x3")

            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=20)
            classes = {nb201_canonical(t.params) for t in study.trials}
            assert len(classes) == 20
    """

    def __init__(
        self,
        space: SearchSpace | None = None,
        *,
        canonicalize: Canonicalizer | None = None,
        feasible: Feasibility | None = None,
        max_tries: int = 100,
        max_enumeration: int = 100_000,
        seed: int | None = None,
    ) -> None:
        if space is None and (canonicalize is not None or feasible is not None):
            raise ValueError(
                "canonicalize and feasible apply to architectures, which the sampler only "
                "knows before a trial runs when it has the space; pass space=... as well"
            )
        for name, value in (("max_tries", max_tries), ("max_enumeration", max_enumeration)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        super().__init__(seed, space=space, canonicalize=canonicalize)
        # Without a canonicalizer, an architecture is its active parameters.
        self._canonicalize: Canonicalizer = canonicalize or genome_key
        self._feasible = feasible
        self._feasible_memo: dict[Hashable, bool] = {}
        self._max_tries = max_tries
        self._max_enumeration = max_enumeration
        self._index: _StudyIndex | None = None

    def make_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        index, pending = self._read(study, trial)
        fixed = enqueued_params(trial)
        if not index.exhausted:
            if self._space is not None:
                plan = self._plan_from_space(self._space, index, pending, fixed)
            else:
                plan = self._plan_from_history(index, pending, fixed)
            if plan is not None or not index.exhausted:
                return plan
            _logger.warning(
                "%s: every assignment of the search space has been tried (%d finished "
                "trials); sampling at random from now on, so trials will repeat",
                type(self).__name__,
                len(index.folded),
            )
        return self._draw_feasible(fixed) if self._space is not None else None

    def _read(self, study: Study, trial: FrozenTrial) -> tuple[_StudyIndex, list[dict[str, Any]]]:
        """Folds newly finished trials into the index; returns it and the assignments of the
        other trials not yet finished (their plans, fixed parameters and parameters)."""
        owner = (study_storage(study), study_id(study))
        if self._index is None or self._index.owner != owner:
            self._index = _StudyIndex(owner)
        index = self._index
        trials = study_trials(study, use_cache=True)
        pending: list[dict[str, Any]] = []
        for other in trials[index.watermark :]:
            if other.number == trial.number or other.number in index.folded:
                continue
            genome = {
                **(other.system_attrs.get(self.plan_attr) or {}),
                **(enqueued_params(other)),
                **other.params,
            }
            if other.state in PENDING_STATES:
                pending.append(genome)
                continue
            index.folded.add(other.number)
            if self._space is not None:
                key = self._active_key(genome)
                if key is not None:
                    index.keys.add(key)
            elif other.params:
                index.history.add(other.params)
                for name, dist in other.distributions.items():
                    if other.number >= index.distributions.get(name, (-1, dist))[0]:
                        index.distributions[name] = (other.number, dist)
        # Trials come in number order and never leave, so the folded prefix is skipped.
        while index.watermark < len(trials) and trials[index.watermark].number in index.folded:
            index.watermark += 1
        return index, pending

    def _active_key(self, genome: Mapping[str, Any]) -> Hashable | None:
        assert self._space is not None
        try:
            active = self._space.from_params(genome).param_dict
        except ValueError:
            return None  # not an architecture of the space (yet)
        return self._canonicalize(active)

    def _is_feasible(self, params: Mapping[str, Any]) -> bool:
        if self._feasible is None:
            return True
        memo_key = genome_key(params)
        if memo_key not in self._feasible_memo:
            self._feasible_memo[memo_key] = bool(self._feasible(params))
        return self._feasible_memo[memo_key]

    def _draw_feasible(self, fixed: Mapping[str, Any]) -> dict[str, Any] | None:
        assert self._space is not None
        for _ in range(self._max_tries):
            params = self._space.sample_params(self._rng, fixed)
            if self._is_feasible(params):
                return params
        return None

    def _plan_from_space(
        self,
        space: SearchSpace,
        index: _StudyIndex,
        pending: list[dict[str, Any]],
        fixed: Mapping[str, Any],
    ) -> dict[str, Any] | None:
        running = {key for key in map(self._key, pending) if key is not None}

        def acceptable(params: dict[str, Any]) -> bool:
            if any(params.get(name, value) != value for name, value in fixed.items()):
                return False
            key = self._canonicalize(params)
            return key not in index.keys and key not in running and self._is_feasible(params)

        return self._search(
            index,
            lambda: space.sample_params(self._rng, fixed),
            lambda: space.iter_params(space.sample_params(self._rng, fixed)),
            acceptable,
            exhaustible=not fixed and not pending,
        )

    def _plan_from_history(
        self, index: _StudyIndex, pending: list[dict[str, Any]], fixed: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        if not index.distributions:
            return None
        distributions = {name: dist for name, (_, dist) in sorted(index.distributions.items())}
        # A pending trial may end with any known set of names, so each projection counts.
        running = AssignmentIndex()
        for genome in pending:
            for names in index.history.name_sets:
                if all(n in genome for n in names):
                    running.add({n: genome[n] for n in names})

        def draw() -> dict[str, Any]:
            drawn = {n: sample_value(d, self._rng) for n, d in distributions.items()}
            return {**drawn, **fixed}

        def enumeration() -> Iterator[dict[str, Any]] | None:
            values = {n: finite_values(d) for n, d in distributions.items()}
            finite = {n: v for n, v in values.items() if v is not None}
            total = math.prod(len(v) for v in finite.values())
            if len(finite) < len(values) or total > self._max_enumeration:
                return None
            start = int(self._rng.randint(total))
            return ({**c, **fixed} for c in iter_assignments(finite, start))

        def acceptable(candidate: dict[str, Any]) -> bool:
            return not index.history.repeats(candidate) and not running.repeats(candidate)

        return self._search(
            index, draw, enumeration, acceptable, exhaustible=not fixed and not pending
        )

    def _search(
        self,
        index: _StudyIndex,
        draw: Callable[[], dict[str, Any]],
        enumeration: Callable[[], Iterable[dict[str, Any]] | None],
        acceptable: Callable[[dict[str, Any]], bool],
        exhaustible: bool,
    ) -> dict[str, Any] | None:
        """The first acceptable candidate of ``max_tries`` random draws, else of an
        enumeration; marks the index exhausted if ``exhaustible`` and none is found."""
        for _ in range(self._max_tries):
            candidate = draw()
            if acceptable(candidate):
                return candidate
        candidates = None if index.too_large else enumeration()
        if candidates is not None:
            for count, candidate in enumerate(candidates):
                if count == self._max_enumeration:
                    break
                if acceptable(candidate):
                    return candidate
            else:
                index.exhausted = exhaustible
                return None
        if not index.too_large:
            index.too_large = True
            _logger.warning(
                "%s: no unseen assignment found in %d random draws, and the space is too "
                "large to enumerate (max_enumeration=%d); sampling at random when draws "
                "fail, so trials may repeat",
                type(self).__name__,
                self._max_tries,
                self._max_enumeration,
            )
        return None
