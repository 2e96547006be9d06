"""Policy-gradient math for architecture decisions: pure code on tensors, tested without a study.

A *decision* is one trial parameter seen as a categorical choice among ``n_actions``
actions; :func:`discretize` maps a parameter's values to actions and back. A *controller*
holds the learnable distribution over the actions of all decisions, indexed ``0 .. D-1`` in
a fixed order; :class:`Reinforce` updates it from (actions, reward) pairs. Nothing here
knows about Optuna's storage: the sampler translates trials into these calls.
"""

from __future__ import annotations

import abc
import bisect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

# Controller weights never depend on the sampler's seed: every worker of a study must start
# from the same policy, so that replaying the same trials gives the same policy everywhere.
_INIT_SEED = 20170424
_INIT_RANGE = 0.08  # Zoph & Le initialise the controller uniformly in [-0.08, 0.08].


class Discretization(abc.ABC):
    """Maps a parameter's values to the actions ``0 .. n_actions - 1`` of a decision, and back.

    For every action ``a`` and generator ``rng``, ``action(value(a, rng)) == a``.
    """

    n_actions: int
    """The number of actions; at least 1."""

    @abc.abstractmethod
    def action(self, value: Any) -> int:
        """The action a parameter value belongs to; out-of-range numbers go to the nearest."""

    @abc.abstractmethod
    def value(self, action: int, rng: np.random.RandomState) -> Any:
        """A parameter value of ``action`` (random within a bin), as ``trial.params`` holds it."""


class _Choices(Discretization):
    """A categorical parameter: one action per choice."""

    def __init__(self, dist: CategoricalDistribution) -> None:
        self._dist = dist
        self.n_actions = len(dist.choices)

    def action(self, value: Any) -> int:
        return int(self._dist.to_internal_repr(value))

    def value(self, action: int, rng: np.random.RandomState) -> Any:
        return self._dist.choices[action]


class _GridBins(Discretization):
    """An integer or stepped float parameter: its grid ``low + k * step``, ``k < n``, in bins.

    Action ``a`` covers the grid indices ``edges[a] <= k < edges[a + 1]``; a value is drawn
    uniformly among them, or log-uniformly for a log-scaled integer.
    """

    def __init__(
        self,
        low: float,
        high: float,
        step: float,
        edges: Sequence[int],
        *,
        is_int: bool,
        log: bool,
    ) -> None:
        self._low = low
        self._high = high
        self._step = step
        self._edges = tuple(edges)
        self._is_int = is_int
        self._log = log
        self.n_actions = len(self._edges) - 1

    def _grid_value(self, k: int) -> Any:
        if self._is_int:
            return int(self._low) + int(self._step) * k
        return float(min(self._low + self._step * k, self._high))  # no rounding past high

    def action(self, value: Any) -> int:
        k = round((float(value) - self._low) / self._step)
        k = min(max(k, 0), self._edges[-1] - 1)
        return bisect.bisect_right(self._edges, k) - 1

    def value(self, action: int, rng: np.random.RandomState) -> Any:
        lo, hi = self._edges[action], self._edges[action + 1]
        if hi - lo == 1:
            return self._grid_value(lo)
        if self._log:
            # Log-uniform over the values [low + lo, low + hi), as a log-scaled int is drawn.
            first = self._low + lo
            x = math.exp(rng.uniform(math.log(first), math.log(self._low + hi)))
            k = min(max(math.floor(x - self._low), lo), hi - 1)
        else:
            k = lo + int(rng.randint(hi - lo))
        return self._grid_value(k)


class _RangeBins(Discretization):
    """A continuous float parameter: ``n`` equal bins of its (log-)range, values uniform within."""

    def __init__(self, low: float, high: float, n: int, *, log: bool) -> None:
        self._log = log
        self._lo, self._hi = (math.log(low), math.log(high)) if log else (low, high)
        self._low, self._high = low, high
        self.n_actions = n if high > low else 1

    def _unit(self, value: float) -> float:
        if self._log:
            x = math.log(value) if value > 0 else -math.inf
        else:
            x = value
        return (x - self._lo) / (self._hi - self._lo)

    def action(self, value: Any) -> int:
        if self.n_actions == 1:
            return 0
        unit = min(max(self._unit(float(value)), 0.0), 1.0)
        return min(math.floor(unit * self.n_actions), self.n_actions - 1)

    def value(self, action: int, rng: np.random.RandomState) -> Any:
        if self.n_actions == 1:
            return float(self._low)
        for u in (rng.uniform(), 0.5):  # the bin centre if rounding leaves the bin
            x = self._lo + (action + u) / self.n_actions * (self._hi - self._lo)
            value = min(max(math.exp(x) if self._log else x, self._low), self._high)
            if self.action(value) == action:
                break
        return float(value)


def _bin_edges(n: int, n_bins: int) -> list[int]:
    """``n_bins`` contiguous, non-empty, near-equal runs of ``0 .. n - 1`` (for ``n > n_bins``)."""
    return [-(-b * n // n_bins) for b in range(n_bins + 1)]


def _log_bin_edges(low: int, high: int, n_bins: int) -> list[int]:
    """Grid-index edges of equal bins of ``[log(low), log(high + 1))``, empty bins merged."""
    span = math.log(high + 1) - math.log(low)
    cuts = {math.ceil(math.exp(math.log(low) + b / n_bins * span)) for b in range(1, n_bins)}
    return [0, *sorted(c - low for c in cuts if low < c <= high), high + 1 - low]


def discretize(dist: BaseDistribution, n_bins: int = 10) -> Discretization:
    """The actions of a parameter with distribution ``dist``.

    * Categorical: one action per choice.
    * Integer or stepped float with at most ``n_bins`` values: one action per value.
    * Integer or stepped float with more values: ``n_bins`` bins of consecutive grid values
      (bins of equal width in log space for a log-scaled integer; bins that would hold no
      integer are merged, so there may be fewer). A value is drawn uniformly among the bin's
      values (log-uniformly for a log-scaled integer).
    * Continuous float: ``n_bins`` bins of equal width over its range, or over its log-range
      when ``log=True``; a value is drawn uniformly (log-uniformly) within the bin, so every
      value stays reachable.

    Args:
        dist: An Optuna distribution.
        n_bins: The most actions a numeric parameter gets; at least 2.

    Raises:
        TypeError: For a distribution type other than Optuna's three.
    """
    if isinstance(dist, CategoricalDistribution):
        return _Choices(dist)
    if isinstance(dist, IntDistribution):
        n = (dist.high - dist.low) // dist.step + 1
        if n <= n_bins:
            edges = list(range(n + 1))
        elif dist.log:
            edges = _log_bin_edges(dist.low, dist.high, n_bins)
        else:
            edges = _bin_edges(n, n_bins)
        return _GridBins(
            dist.low, dist.high, dist.step, edges, is_int=True, log=dist.log and n > n_bins
        )
    if isinstance(dist, FloatDistribution):
        if dist.step is None:
            return _RangeBins(dist.low, dist.high, n_bins, log=dist.log)
        n = round((dist.high - dist.low) / dist.step) + 1
        edges = list(range(n + 1)) if n <= n_bins else _bin_edges(n, n_bins)
        return _GridBins(dist.low, dist.high, dist.step, edges, is_int=False, log=False)
    raise TypeError(f"unsupported distribution {dist!r}; use Optuna's int, float or categorical")


def update_baseline(baseline: float | None, reward: float, momentum: float) -> float:
    """The exponential moving average of rewards after one more reward.

    ``b_t = momentum * b_{t-1} + (1 - momentum) * r_t``; the first reward starts the average
    (``b_1 = r_1``), so the baseline is on the rewards' scale from the start.
    """
    if baseline is None:
        return float(reward)
    return momentum * baseline + (1.0 - momentum) * float(reward)


@dataclass
class AdamMoments:
    """Adam's running moments of one tensor, and how many steps it has taken."""

    first: torch.Tensor
    second: torch.Tensor
    steps: int = 0


def adam_step(
    param: torch.Tensor,
    grad: torch.Tensor,
    moments: AdamMoments,
    learning_rate: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """One Adam step on ``param`` in place, with bias-corrected moments.

    A hand-written step, rather than :class:`torch.optim.Adam`, so that the optimiser state is
    plain tensors that copy cheaply into checkpoints and grow as decisions are added.

    References:
        Kingma and Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """
    beta1, beta2 = betas
    moments.steps += 1
    # The bias corrections fold into scalars: fewer tensor ops on these tiny tensors.
    correction1 = 1.0 - beta1**moments.steps
    root_correction2 = math.sqrt(1.0 - beta2**moments.steps)
    with torch.no_grad():
        moments.first.lerp_(grad, 1.0 - beta1)
        moments.second.mul_(beta2).addcmul_(grad, grad, value=1.0 - beta2)
        denom = moments.second.sqrt().add_(eps * root_correction2)
        param.addcdiv_(moments.first, denom, value=-learning_rate * root_correction2 / correction1)


def draw(probs: np.ndarray, rng: np.random.RandomState) -> int:
    """An index drawn with probabilities ``probs`` (which need not sum exactly to 1)."""
    cumulative = np.cumsum(probs)
    index = int(np.searchsorted(cumulative, rng.random_sample() * cumulative[-1], side="right"))
    return min(index, len(probs) - 1)


def _probs(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.detach().double(), dim=0).numpy()


class Controller(abc.ABC):
    """A learnable distribution over the actions of decisions ``0 .. D-1``.

    Decisions are added one at a time and never removed; their order is fixed. A trial's
    *actions* are ``(decision, action)`` pairs of its active decisions, in decision order.
    """

    def __init__(self) -> None:
        self.sizes: list[int] = []
        """The number of actions of each decision."""
        self.parameters: list[torch.Tensor] = []
        """Every learnable tensor, in order of creation; :meth:`log_prob` names them by index."""

    def add_decision(self, n_actions: int) -> int:
        """Adds a decision with ``n_actions`` actions; returns its index."""
        if n_actions < 1:
            raise ValueError(f"a decision needs at least one action, got {n_actions}")
        self.sizes.append(n_actions)
        self._add(len(self.sizes) - 1, n_actions)
        return len(self.sizes) - 1

    def _new_parameter(self, value: torch.Tensor) -> int:
        self.parameters.append(value.requires_grad_(True))
        return len(self.parameters) - 1

    @abc.abstractmethod
    def _add(self, decision: int, n_actions: int) -> None:
        """Creates the new decision's parameters."""

    @abc.abstractmethod
    def log_prob(self, actions: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, list[int]]:
        """The log-probability of ``actions``, and the indices of the parameters it used.

        Args:
            actions: ``(decision, action)`` pairs, decisions in increasing order; decisions
                missing from it (inactive in the trial) are skipped.
        """

    @abc.abstractmethod
    def sample(self, rng: np.random.RandomState) -> list[int]:
        """One action for every decision, in decision order."""

    @abc.abstractmethod
    def logits(self) -> list[np.ndarray]:
        """Each decision's logits (along the most likely sequence, for sequential controllers)."""


class IndependentController(Controller):
    """A factorized categorical policy: one vector of logits per decision, starting uniform."""

    def __init__(self) -> None:
        super().__init__()
        self._logits: list[int] = []

    def _add(self, decision: int, n_actions: int) -> None:
        self._logits.append(self._new_parameter(torch.zeros(n_actions)))

    def log_prob(self, actions: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, list[int]]:
        used = [self._logits[d] for d, _ in actions]
        total = torch.zeros(())
        for index, (_, action) in zip(used, actions, strict=True):
            total = total + torch.log_softmax(self.parameters[index], dim=0)[action]
        return total, used

    def sample(self, rng: np.random.RandomState) -> list[int]:
        return [draw(_probs(self.parameters[i]), rng) for i in self._logits]

    def logits(self) -> list[np.ndarray]:
        return [self.parameters[i].detach().numpy().copy() for i in self._logits]


class LSTMController(Controller):
    """An LSTM that emits the decisions in order, each conditioned on the earlier choices.

    At each step the LSTM reads the embedding of the previous decision's action (a learned
    start vector before the first), and a per-decision linear head turns its hidden state
    into logits. Heads start at zero, so the initial policy is uniform like the independent
    one; the other weights start uniform in ``[-0.08, 0.08]`` from a fixed seed. Decisions
    inactive in a trial are skipped in that trial's sequence.

    Args:
        hidden_size: Size of the LSTM state and of the action embeddings.

    References:
        Zoph and Le, "Neural Architecture Search with Reinforcement Learning", ICLR 2017.
    """

    def __init__(self, hidden_size: int = 32) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        gen = torch.Generator().manual_seed(_INIT_SEED)
        self._weight = self._new_parameter(self._uniform((2 * hidden_size, 4 * hidden_size), gen))
        self._bias = self._new_parameter(torch.zeros(4 * hidden_size))
        self._start = self._new_parameter(self._uniform((hidden_size,), gen))
        # Per decision: indices of (embedding: n_actions x H, head weight: H x n_actions, bias).
        self._decision_params: list[tuple[int, int, int]] = []

    @staticmethod
    def _uniform(shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        return (torch.rand(shape, generator=gen) * 2.0 - 1.0) * _INIT_RANGE

    def _add(self, decision: int, n_actions: int) -> None:
        gen = torch.Generator().manual_seed(_INIT_SEED + 1 + decision)
        self._decision_params.append(
            (
                self._new_parameter(self._uniform((n_actions, self.hidden_size), gen)),
                self._new_parameter(torch.zeros(self.hidden_size, n_actions)),
                self._new_parameter(torch.zeros(n_actions)),
            )
        )

    def _step(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        gates = torch.cat([x, h]) @ self.parameters[self._weight] + self.parameters[self._bias]
        i, f, g, o = gates.chunk(4)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def _walk(
        self, choose: Callable[[int, torch.Tensor], int], decisions: Sequence[int]
    ) -> list[torch.Tensor]:
        """Runs the LSTM over ``decisions``; ``choose(step, logits)`` picks each action."""
        p = self.parameters
        x = p[self._start]
        h = c = torch.zeros(self.hidden_size)
        all_logits = []
        for step, d in enumerate(decisions):
            emb, head_w, head_b = self._decision_params[d]
            h, c = self._step(x, h, c)
            logits = h @ p[head_w] + p[head_b]
            all_logits.append(logits)
            x = p[emb][choose(step, logits)]
        return all_logits

    def log_prob(self, actions: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, list[int]]:
        decisions = [d for d, _ in actions]
        all_logits = self._walk(lambda step, _: actions[step][1], decisions)
        total = torch.zeros(())
        for logits, (_, action) in zip(all_logits, actions, strict=True):
            total = total + torch.log_softmax(logits, dim=0)[action]
        used = [self._weight, self._bias, self._start]
        used += [i for d in decisions for i in self._decision_params[d]]
        return total, used

    def sample(self, rng: np.random.RandomState) -> list[int]:
        chosen: list[int] = []

        def choose(step: int, logits: torch.Tensor) -> int:
            chosen.append(draw(_probs(logits), rng))
            return chosen[-1]

        with torch.no_grad():
            self._walk(choose, range(len(self.sizes)))
        return chosen

    def logits(self) -> list[np.ndarray]:
        with torch.no_grad():
            all_logits = self._walk(
                lambda step, logits: int(torch.argmax(logits)), range(len(self.sizes))
            )
        return [logits.numpy().copy() for logits in all_logits]


class Reinforce:
    """REINFORCE with a moving-average baseline, one Adam step per observed trial.

    For a trial with actions ``a`` and reward ``r``, the step follows the gradient of
    ``(r - b) * log pi(a)``, where ``b`` is the moving average of the rewards of the trials
    before it (:func:`update_baseline`). Only the parameters the trial's actions used move;
    the first trial only starts the baseline.

    Args:
        controller: The policy to train.
        learning_rate: Adam's step size.
        baseline_momentum: Momentum of the reward's moving average, in ``[0, 1)``.

    References:
        Williams, "Simple statistical gradient-following algorithms for connectionist
        reinforcement learning", Machine Learning 8, 1992.
    """

    def __init__(
        self, controller: Controller, learning_rate: float, baseline_momentum: float = 0.9
    ) -> None:
        self.controller = controller
        self.learning_rate = learning_rate
        self.baseline_momentum = baseline_momentum
        self.baseline: float | None = None
        self._moments: dict[int, AdamMoments] = {}

    def observe(self, actions: Sequence[tuple[int, int]], reward: float) -> float:
        """Updates the policy with one trial; returns the advantage ``r - b`` it used.

        Args:
            actions: The trial's ``(decision, action)`` pairs, decisions in increasing order.
            reward: The trial's reward, higher is better.
        """
        previous = self.baseline
        self.baseline = update_baseline(previous, reward, self.baseline_momentum)
        if previous is None:
            return 0.0
        advantage = float(reward) - previous
        if not actions:
            return advantage
        log_prob, used = self.controller.log_prob(actions)
        params = [self.controller.parameters[i] for i in used]
        grads = torch.autograd.grad(-advantage * log_prob, params, allow_unused=True)
        for index, param, grad in zip(used, params, grads, strict=True):
            if grad is None:  # e.g. the embedding of the sequence's last action
                continue
            moments = self._moments.get(index)
            if moments is None:
                moments = AdamMoments(torch.zeros_like(param), torch.zeros_like(param))
                self._moments[index] = moments
            adam_step(param, grad, moments, self.learning_rate)
        return advantage
