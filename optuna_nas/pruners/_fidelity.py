"""Asynchronous successive halving that trusts a rung only once it predicts the final rung."""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import optuna
from optuna.pruners import BasePruner
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_nas import _keys
from optuna_nas._compat import study_storage, trial_id
from optuna_nas.pruners._common import is_int, rank_key

RANK_CORRELATION_ATTR = _keys.STUDY_RANK_CORRELATION
"""Study user attribute where :class:`LowFidelityPruner` publishes each rung's correlation."""


@dataclass(frozen=True)
class RungCorrelation:
    """How well one rung ranks trials the way the final rung does.

    Attributes:
        step: The step whose intermediate values form the rung.
        correlation: Spearman rank correlation between the values at ``step`` and at the
            final rung, over the trials that reported both; ``None`` while fewer than 3
            pairs exist or when either side is constant.
        pairs: The number of such trials.
        trusted: Whether the pruner may prune at this rung: at least ``min_pairs`` pairs
            and a correlation of at least ``min_correlation``.
    """

    step: int
    correlation: float | None
    pairs: int
    trusted: bool


class LowFidelityPruner(BasePruner):
    """Asynchronous successive halving over rungs whose rank correlation has been measured.

    A trial climbs rungs of increasing fidelity: more epochs, more data, a higher image
    resolution or a wider network (see :class:`optuna_nas.training.Fidelity`). At each rung
    but the last it continues only if its value is among the top ``1 / eta`` of all values
    reported at that rung so far, by any trial, as in ASHA (Li et al., 2020); nobody waits
    for a rung to fill. Unlike ASHA, a rung prunes only once it has shown that it ranks
    trials like the final rung: the Spearman rank correlation between its values and the
    final rung's values, over the trials that reported both, must be at least
    ``min_correlation`` on at least ``min_pairs`` trials. Until then every trial goes on,
    which is what produces the pairs. Trials promoted from a pruning rung are its better
    part, so later pairs span a narrower range; should the correlation among them fall
    below the threshold the rung stops pruning until fresh pairs restore it.

    The rung of a report is its step. Two ways to lay out the rungs:

    * **Epochs** (``max_step``): with :func:`optuna_nas.training.fit`, which reports
      after every epoch at steps ``0`` to ``epochs - 1``, pass ``max_step=epochs - 1``.
      The rungs sit after ``r = min_resource * eta**k`` epochs for each ``k`` with
      ``r * eta <= max_step + 1``, as ASHA's rungs below its top one, and the final rung
      is ``max_step``: for 27 or 30 epochs, steps 0, 2 and 8, then 26 or 29.
    * **A ladder** (``rung_steps``): an objective that trains once per rung of a
      :meth:`~optuna_nas.training.Fidelity.ladder` reports at the rung index, so
      ``rung_steps=range(len(ladder))``. Any increasing steps work; the last is final.

    A trial's final value is its intermediate value at the final step; a completed trial
    that never reported that step counts with its objective value. Values that are not
    finite rank last. Minimised studies promote the lowest values. The pruner keeps no
    state: several processes sharing one storage make the same decisions.

    At every rung decision the pruner publishes :meth:`rank_correlations` as a list of
    dicts (``step``, ``correlation``, ``pairs``, ``trusted``) in the study user attribute
    ``fidelity:rank_correlation``, so you can see which fidelity can be trusted.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import data, spaces, training
            from optuna_nas.pruners import LowFidelityPruner

            dataset = data.load("digits")
            space = spaces.create("chain", max_layers=2, filters=[8, 16])
            epochs = 9

            def objective(trial):
                model = space.suggest(trial).build(dataset.input_shape, dataset.num_classes)
                return training.fit(model, dataset, trial=trial, epochs=epochs).valid_accuracy

            pruner = LowFidelityPruner(max_step=epochs - 1)  # rungs at epochs 1 and 3, then 9
            study = optuna.create_study(direction="maximize", pruner=pruner)
            study.optimize(objective, n_trials=15)  # seconds on a CPU
            print(study.user_attrs["optuna_nas:rank_correlation"])

    Args:
        max_step: The final rung's step: ``epochs - 1`` for
            :func:`~optuna_nas.training.fit`. With ``rung_steps`` it may be left out, and
            if given must equal their last step.
        rung_steps: Increasing steps of all rungs, the final rung last. ``None`` places
            them at ``min_resource * eta**k - 1`` as described above.
        eta: Reduction factor, at least 2: the top ``1 / eta`` of a rung is promoted.
        min_resource: Epochs before the first rung when rungs are placed from ``max_step``.
        min_correlation: Smallest Spearman rank correlation, in ``(-1, 1]``, at which a
            rung prunes.
        min_pairs: Fewest trials with values at both a rung and the final rung before
            that rung's correlation counts, at least 3.
        estimate_rung: Add a rung at step 0 for an estimate made before training (a
            zero-cost proxy or a one-shot score, see
            :class:`optuna_nas.oneshot.EstimateRung`), and move the rungs placed from
            ``max_step`` up by one step, as ``fit(..., first_step=1)`` reports. Give
            ``max_step`` as ``epochs - 1`` all the same. Not with ``rung_steps``, which
            then simply starts at 0.

    Raises:
        ValueError: For invalid arguments, naming the one to fix.

    References:
        Liam Li, Kevin Jamieson, Afshin Rostamizadeh, Ekaterina Gonina, Jonathan Ben-tzur,
        Moritz Hardt, Benjamin Recht, Ameet Talwalkar. "A System for Massively Parallel
        Hyperparameter Tuning". MLSys 2020.

        Charles Spearman. "The Proof and Measurement of Association between Two Things".
        American Journal of Psychology, 1904.
    """

    def __init__(
        self,
        max_step: int | None = None,
        *,
        rung_steps: Sequence[int] | None = None,
        eta: int = 3,
        min_resource: int = 1,
        min_correlation: float = 0.6,
        min_pairs: int = 6,
        estimate_rung: bool = False,
    ) -> None:
        if not is_int(eta) or eta < 2:
            raise ValueError(f"eta must be an integer >= 2, got {eta!r}")
        if not is_int(min_resource) or min_resource < 1:
            raise ValueError(f"min_resource must be an integer >= 1, got {min_resource!r}")
        if isinstance(min_correlation, bool) or not isinstance(min_correlation, numbers.Real):
            raise ValueError(f"min_correlation must be a number, got {min_correlation!r}")
        if not -1.0 < float(min_correlation) <= 1.0:
            raise ValueError(f"min_correlation must lie in (-1, 1], got {min_correlation!r}")
        if not is_int(min_pairs) or min_pairs < 3:
            raise ValueError(f"min_pairs must be an integer >= 3, got {min_pairs!r}")
        if max_step is not None and (not is_int(max_step) or max_step < 0):
            raise ValueError(f"max_step must be an integer >= 0, got {max_step!r}")

        if rung_steps is None:
            if max_step is None:
                raise ValueError(
                    "LowFidelityPruner needs max_step (epochs - 1 for optuna_nas.training.fit) "
                    "or rung_steps (range(len(ladder)) for a Fidelity ladder)"
                )
            steps: list[int] = []
            resource = int(min_resource)
            # A rung needs room for the next one, as in ASHA; the final rung stands for the
            # top rung, so 30 epochs get rungs after 1, 3 and 9 but not 27.
            while resource * eta <= max_step + 1:
                steps.append(resource - 1)
                resource *= int(eta)
            steps.append(int(max_step))
            if estimate_rung:
                steps = [0, *(s + 1 for s in steps)]
        else:
            if estimate_rung:
                raise ValueError(
                    "estimate_rung=True places the rungs from max_step; with rung_steps, "
                    "include step 0 for the estimate yourself and leave estimate_rung out"
                )
            steps = list(rung_steps)
            if not steps or any(not is_int(s) or s < 0 for s in steps):
                raise ValueError(
                    f"rung_steps must be a non-empty sequence of integers >= 0, got {rung_steps!r}"
                )
            if any(b <= a for a, b in itertools.pairwise(steps)):
                raise ValueError(f"rung_steps must increase strictly, got {steps!r}")
            if max_step is not None and steps[-1] != max_step:
                raise ValueError(
                    f"the last of rung_steps ({steps[-1]}) is the final rung and must equal "
                    f"max_step ({max_step}); drop max_step or make them agree"
                )
        self._rung_steps: tuple[int, ...] = tuple(int(s) for s in steps)
        self._eta: int = int(eta)
        self._min_correlation: float = float(min_correlation)
        self._min_pairs: int = int(min_pairs)

    @property
    def rung_steps(self) -> tuple[int, ...]:
        """The steps of the rungs, ending with the final rung."""
        return self._rung_steps

    def prune(self, study: optuna.study.Study, trial: optuna.trial.FrozenTrial) -> bool:
        """Whether ``trial`` stops at the rung it just reported; publishes the correlations.

        Raises:
            ValueError: For a multi-objective study; wrap the pruner in
                :class:`optuna_nas.pruners.ObjectivePruner` to prune on one objective.
        """
        if len(study.directions) > 1:
            raise ValueError(
                "LowFidelityPruner needs a single-objective study; for a multi-objective "
                "study wrap it in optuna_nas.pruners.ObjectivePruner(pruner, objective=...)"
            )
        step = trial.last_step
        if step is None or step not in self._rung_steps[:-1]:
            return False
        trials = study.get_trials(deepcopy=False)
        correlations = self._measure(trials)
        study.set_user_attr(RANK_CORRELATION_ATTR, [asdict(c) for c in correlations])
        if not correlations[self._rung_steps.index(step)].trusted:
            key = f"{_keys.FIDELITY_UNSELECTED_PREFIX}{step}"
            study_storage(study).set_trial_system_attr(trial_id(trial), key, True)
            return False

        maximize = study.direction == StudyDirection.MAXIMIZE
        value = rank_key(trial.intermediate_values[step], maximize)
        others = [
            rank_key(t.intermediate_values[step], maximize)
            for t in trials
            if t.number != trial.number and step in t.intermediate_values
        ]
        n_promoted = max(1, (len(others) + 1) // self._eta)
        better = sum(1 for other in others if other > value)
        return better >= n_promoted

    def rank_correlations(
        self, study: optuna.study.Study, *, publish: bool = True
    ) -> list[RungCorrelation]:
        """Measures each rung below the final one against the final rung.

        The pruner calls this at every rung decision; call it yourself after
        ``study.optimize`` for the figures over all finished trials.

        Args:
            study: A single-objective study.
            publish: Also store the result in the study user attribute
                ``fidelity:rank_correlation``.

        Returns:
            One :class:`RungCorrelation` per rung except the final one, lowest step first.
        """
        correlations = self._measure(study.get_trials(deepcopy=False))
        if publish:
            study.set_user_attr(RANK_CORRELATION_ATTR, [asdict(c) for c in correlations])
        return correlations

    def _measure(self, trials: Sequence[optuna.trial.FrozenTrial]) -> list[RungCorrelation]:
        from scipy.stats import spearmanr

        final_step = self._rung_steps[-1]
        finals: list[tuple[optuna.trial.FrozenTrial, float]] = []
        for t in trials:
            final = t.intermediate_values.get(final_step)
            if final is None and t.state == TrialState.COMPLETE:
                final = t.value
            if final is not None and math.isfinite(final):
                finals.append((t, final))

        correlations = []
        for step in self._rung_steps[:-1]:
            key = f"{_keys.FIDELITY_UNSELECTED_PREFIX}{step}"
            pairs = [
                (t.intermediate_values[step], final)
                for t, final in finals
                if step in t.intermediate_values
                and math.isfinite(t.intermediate_values[step])
                and t.system_attrs.get(key)
            ]
            rho: float | None = None
            if len(pairs) >= 3:
                low, high = zip(*pairs, strict=True)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # constant input: rho is NaN, handled below
                    result = float(spearmanr(low, high).statistic)
                rho = result if math.isfinite(result) else None
            trusted = (
                rho is not None and len(pairs) >= self._min_pairs and rho >= self._min_correlation
            )
            correlations.append(RungCorrelation(step, rho, len(pairs), trusted))
        return correlations


__all__ = ["RANK_CORRELATION_ATTR", "LowFidelityPruner", "RungCorrelation"]
