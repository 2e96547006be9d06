"""Policy-gradient architecture search: a REINFORCE-trained controller proposes each trial.

The policy math lives in :mod:`optuna_nas.samplers._policy`; this module only turns a
study's trials into (actions, reward) pairs and the policy's samples into plans.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nas._compat import storage_url, study_id, study_storage, study_trials
from optuna_nas.samplers._architecture import ArchitectureSampler, Canonicalizer
from optuna_nas.samplers._genome import mutate
from optuna_nas.samplers._planned import (
    trial_score,
)
from optuna_nas.samplers._policy import (
    Controller,
    Discretization,
    IndependentController,
    LSTMController,
    Reinforce,
    discretize,
)
from optuna_nas.spaces._base import SearchSpace

CONTROLLERS = ("independent", "lstm")
DEFAULT_LEARNING_RATES = {"independent": 0.15, "lstm": 0.001}

# Out-of-order finishes rewind to a checkpoint rather than to the start: one is taken every
# _CHECKPOINT_EVERY replayed trials and the latest _MAX_CHECKPOINTS are kept, so a trial that
# finishes up to about 250 trials late costs at most a few dozen replayed updates.
_CHECKPOINT_EVERY = 16
_MAX_CHECKPOINTS = 16
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Policy samples drawn when they repeat a trial the study holds, then mutations of the
# last one tried, before a repeat is accepted.
_DUPLICATE_DRAWS = 10
_DUPLICATE_MUTATIONS = 30


def _number(trial: FrozenTrial) -> int:
    return trial.number


def _natural_key(name: str) -> list[Any]:
    """Sorts ``layer2`` before ``layer10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _study_key(study: Study) -> tuple[Any, ...]:
    """Identifies a study across ``load_study`` calls, so reloading it keeps the replay."""
    storage = study_storage(study)
    url = storage_url(storage)
    return (url if url is not None else id(storage), study_id(study), study.study_name)


@dataclass
class _Decision:
    index: int
    distribution: BaseDistribution
    discretization: Discretization


class _Replay:
    """The policy after replaying some finished trials of a study, in trial-number order."""

    def __init__(
        self, controller: Controller, learning_rate: float, baseline_momentum: float, n_bins: int
    ) -> None:
        self.learner = Reinforce(controller, learning_rate, baseline_momentum)
        self.n_bins = n_bins
        self.decisions: dict[str, _Decision] = {}
        self.names: list[str] = []
        self.processed: set[int] = set()
        self.last_number = -1

    def apply(self, trial: FrozenTrial, reward: float | None) -> None:
        """Folds one finished trial in: its new decisions join the policy, then one update.

        A decision joins with the distribution it first had and keeps it; in a trial where
        the same name has another distribution, the decision counts as inactive. A trial
        without a reward (a pruned trial that reported nothing) only adds decisions.
        """
        self.processed.add(trial.number)
        self.last_number = max(self.last_number, trial.number)
        unseen = [name for name in trial.distributions if name not in self.decisions]
        for name in sorted(unseen, key=_natural_key):
            dist = trial.distributions[name]
            disc = discretize(dist, self.n_bins)
            index = self.learner.controller.add_decision(disc.n_actions)
            self.decisions[name] = _Decision(index, dist, disc)
            self.names.append(name)
        if reward is None:
            return
        actions = []
        for name, dist in trial.distributions.items():
            decision = self.decisions[name]
            if dist == decision.distribution:
                actions.append(
                    (decision.index, decision.discretization.action(trial.params[name]))
                )
        self.learner.observe(sorted(actions), reward)


class REINFORCESampler(ArchitectureSampler):
    """Architecture search with a policy trained by REINFORCE, as in Zoph & Le.

    Every parameter (decision) seen in the study's finished trials gets a categorical
    distribution over its actions. At the start of each trial, the sampler samples every known
    decision from the policy and answers the objective's ``suggest_*`` calls from that plan;
    the objective reads only the decisions that are active for it. Parameters never seen
    before are drawn at random and join the policy once a trial holding them finishes.

    After each trial, one Adam step follows the REINFORCE gradient
    ``(r - b) * grad log pi(a)``, where ``r`` is the trial's value (negated when minimizing;
    pruned trials count with their predicted or last reported value, failed trials are
    skipped), ``b`` is the moving average of earlier rewards, and ``log pi(a)`` sums over the
    trial's own parameters only, so decisions inactive in the trial are not updated.

    A sample that repeats what a running or enqueued trial will evaluate, or with
    ``skip_evaluated`` (the default) what a finished or failed trial evaluated (or that is
    equivalent to it, with ``canonicalize``), is drawn again, up to 10 draws; if all
    repeat, decisions of the last draw are changed at random (one, then more, up to 30
    tries), as evolution mutates a parent. So a policy that has concentrated on a few
    architectures does not spend queries on them again. The update uses each trial's
    actions under the policy as it is, as is usual in NAS practice.

    Numeric parameters become categorical: an int or stepped float with at most ``n_bins``
    values gets one action per value; a longer one, or a continuous float, gets ``n_bins``
    equal bins of its range (of its log-range for ``log=True``; a log-scaled int may get fewer
    where bins would hold no integer), and the plan draws the value uniformly (log-uniformly)
    within the chosen bin, so every value stays reachable.

    **State.** The policy is never stored: it is the deterministic result of replaying the
    study's finished trials in trial-number order from a fixed initial policy, so every
    worker that sees the same finished trials holds the same policy, whatever its seed. Each
    process caches its replay and folds in only newly finished trials. When a trial finishes
    out of order (a lower number after higher ones were folded in, as happens with several
    workers), the replay rewinds to the latest checkpoint before that trial and replays from
    there, so the result equals a replay from scratch; checkpoints are kept for about the
    last 250 trials, and a trial finishing even later triggers a full replay.

    Args:
        seed: Seed of the sampler's random generator; the same seed gives the same plans
            for the same study. The policy itself does not depend on it.
        controller: ``"independent"`` (default), a factorized categorical distribution: one
            vector of logits per decision, starting uniform, as in the NAS-Bench-201 REINFORCE
            baseline. ``"lstm"``: an LSTM that emits the decisions in a fixed order (the
            order in which they first appear in the study; names first seen in the same trial
            in natural order, ``layer2`` before ``layer10``), each conditioned on the earlier
            choices through an embedding of the previous action, as in Zoph & Le.
        learning_rate: Adam's step size; by default 0.15 for the independent controller and
            0.001 for the LSTM. Both were chosen on NAS-Bench-201 CIFAR-10 only (reward:
            the 12-epoch validation accuracy, and since 0.15 also the 200-epoch one; score:
            the test accuracy of the best-rewarded cell after 100 to 500 trials, over 24 to
            200 runs) among 0.002 to 0.5 and 0.0005 to 0.01: smaller rates barely move the
            policy within a few hundred trials, larger ones collapse it too early. The
            independent controller's rate was 0.05 until repeats were skipped; skipping
            them keeps a concentrated policy exploring, and 0.1 to 0.2 then did best at 100
            trials (both rewards) and at 300 (200-epoch reward), while 0.3 and 0.5
            collapsed at 100. The LSTM moves many shared weights with every step, so it
            needs a far smaller rate (Zoph & Le used 0.0006). Adam makes the step largely
            independent of the reward's scale.
        baseline_momentum: Momentum of the rewards' moving average, in ``[0, 1)``.
        n_bins: The most actions a numeric parameter gets; at least 2.
        hidden_size: Size of the LSTM's state and action embeddings (``controller="lstm"``).
        skip_evaluated: Draw again a sample that repeats a finished or failed trial (see
            above); ``False`` allows such repeats, as the published baselines do. Samples
            repeating a running or enqueued trial are drawn again either way.
        space: The search space the objective samples from; ``canonicalize`` needs it.
            Without a canonicalizer, a sample repeats a trial when it agrees with it on
            all of that trial's parameters, with or without the space.
        canonicalize: Optional function from an architecture's active parameters to a
            hashable key that equivalent architectures share, such as
            :func:`~optuna_nas.samplers.nb201_canonical`; samples equivalent to a trial
            the study holds are then drawn again like exact repeats.

    Raises:
        ValueError: For an invalid argument; the message names the fix.

    References:
        Williams, "Simple statistical gradient-following algorithms for connectionist
        reinforcement learning", Machine Learning 8, 1992.

        Zoph and Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017.

        Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
        Architecture Search", ICLR 2020 (the REINFORCE baseline: factorized policy,
        moving-average baseline with momentum 0.9).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import spaces
            from optuna_nas.samplers import REINFORCESampler

            space = spaces.create("nb201")

            def objective(trial):
                cell = space.suggest(trial).genotype
                return sum(op == "nor_conv_3x3" for op in cell)

            sampler = REINFORCESampler(seed=0)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=200)
            print(sampler.policy_logits(study)["node1/in0"])
    """

    def __init__(
        self,
        seed: int | None = None,
        *,
        controller: str = "independent",
        learning_rate: float | None = None,
        baseline_momentum: float = 0.9,
        n_bins: int = 10,
        hidden_size: int = 32,
        skip_evaluated: bool = True,
        space: SearchSpace | None = None,
        canonicalize: Canonicalizer | None = None,
    ) -> None:
        if controller not in CONTROLLERS:
            raise ValueError(
                f"unknown controller {controller!r}; choose one of: {', '.join(CONTROLLERS)}"
            )
        if learning_rate is None:
            learning_rate = DEFAULT_LEARNING_RATES[controller]
        if not (isinstance(learning_rate, (int, float)) and math.isfinite(learning_rate)) or (
            learning_rate <= 0
        ):
            raise ValueError(f"learning_rate={learning_rate!r} is invalid; pass a number > 0")
        if not 0.0 <= baseline_momentum < 1.0:
            raise ValueError(
                f"baseline_momentum={baseline_momentum!r} is invalid; pass a number in [0, 1)"
            )
        for key, value, least in (("n_bins", n_bins, 2), ("hidden_size", hidden_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{key}={value!r} is invalid; pass an integer >= {least}")
        super().__init__(seed, space=space, canonicalize=canonicalize)
        self._controller = controller
        self._learning_rate = float(learning_rate)
        self._baseline_momentum = float(baseline_momentum)
        self._n_bins = n_bins
        self._hidden_size = hidden_size
        self._skip_evaluated = skip_evaluated
        self._study_key: tuple[Any, ...] | None = None
        self._replay = self._initial_replay()
        self._checkpoints: list[tuple[int, _Replay]] = []

    def _initial_replay(self) -> _Replay:
        controller: Controller
        if self._controller == "lstm":
            controller = LSTMController(self._hidden_size)
        else:
            controller = IndependentController()
        return _Replay(controller, self._learning_rate, self._baseline_momentum, self._n_bins)

    def _rewind(self, number: int) -> None:
        """Goes back to the latest replay that did not yet include trial ``number``."""
        while self._checkpoints and self._checkpoints[-1][0] > number:
            self._checkpoints.pop()
        if self._checkpoints:
            self._replay = copy.deepcopy(self._checkpoints[-1][1])
        else:
            self._replay = self._initial_replay()

    def _unprocessed(self, trials: list[FrozenTrial]) -> list[FrozenTrial]:
        processed = self._replay.processed
        return sorted((t for t in trials if t.number not in processed), key=_number)

    def _sync(self, study: Study) -> _Replay:
        """Brings the cached replay up to date with the study's finished trials."""
        key = _study_key(study)
        if key != self._study_key:
            self._study_key = key
            self._replay = self._initial_replay()
            self._checkpoints = []
        # Like finished_trials(study), but only the trials not yet replayed are sorted: with
        # a thousand trials, sorting them all on every call costs more than an update.
        trials = study_trials(study, states=_FINISHED, use_cache=True)
        new = self._unprocessed(trials)
        if new and new[0].number < self._replay.last_number:
            self._rewind(new[0].number)
            new = self._unprocessed(trials)
        for trial in new:
            since = self._checkpoints[-1][1].processed if self._checkpoints else ()
            if len(self._replay.processed) - len(since) >= _CHECKPOINT_EVERY:
                self._checkpoints.append((trial.number, copy.deepcopy(self._replay)))
                del self._checkpoints[:-_MAX_CHECKPOINTS]
            self._replay.apply(trial, trial_score(study, trial))
        return self._replay

    def make_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        if len(study.directions) > 1:
            raise ValueError(
                "REINFORCESampler needs a single-objective study (its reward is one number); "
                f"this study has {len(study.directions)} objectives"
            )
        with self._lock:
            replay = self._sync(study)
            if not replay.names:
                return None
            taken = self._taken(study, trial, finished=self._skip_evaluated)
            for _ in range(_DUPLICATE_DRAWS):
                actions = replay.learner.controller.sample(self._rng)
                plan = {
                    name: replay.decisions[name].discretization.value(action, self._rng)
                    for name, action in zip(replay.names, actions, strict=True)
                }
                if plan not in taken:
                    return plan
            dists = {name: replay.decisions[name].distribution for name in replay.names}
            for attempt in range(_DUPLICATE_MUTATIONS):
                # One more changed decision every 10 attempts.
                child = mutate(plan, dists, self._rng, 1 + attempt // 10)
                if child not in taken:
                    return child
            return plan

    def policy_logits(self, study: Study) -> dict[str, np.ndarray]:
        """The policy's logits for each decision seen in ``study``'s finished trials.

        For the independent controller these are its parameters. For the LSTM, the logits
        along the most likely sequence (each decision fed the previous one's most likely
        action). Decisions are in policy order.
        """
        with self._lock:
            replay = self._sync(study)
            logits = replay.learner.controller.logits()
            return dict(zip(replay.names, logits, strict=True))
