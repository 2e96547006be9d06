"""Gaussian-process Bayesian optimisation over conditional spaces: the Optuna glue.

The numerical work lives in :mod:`optuna_nas.samplers._gp_model`; this module reads the
study's trials into assignments, scores and constraint values, and writes the chosen
assignment as the trial's plan.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from optuna.distributions import BaseDistribution
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from optuna_nas._compat import (
    enqueued_params,
    process_constraints_after_trial,
    study_trials,
    trial_id,
)
from optuna_nas.samplers import _gp_model
from optuna_nas.samplers._architecture import ArchitectureSampler, Canonicalizer
from optuna_nas.samplers._genome import genome_key
from optuna_nas.samplers._gp_context import DecisionCodes, check_count, model_context
from optuna_nas.samplers._planned import planned_genome, trial_score
from optuna_nas.spaces._base import SearchSpace

if TYPE_CHECKING:
    from botorch.models import SingleTaskGP


_logger = logging.getLogger(__name__)

_SCORED = (TrialState.COMPLETE, TrialState.PRUNED)
_MAX_PENDING = 16


class ConditionalGPSampler(ArchitectureSampler):
    """Bayesian optimisation with Gaussian processes over the union of all parameters.

    Optuna's :class:`~optuna.samplers.GPSampler` and BoTorch sampler model only the
    parameters present in every trial and draw the rest at random, which in an
    architecture space leaves little or nothing to model. This sampler models every
    parameter any trial has used: each assignment is embedded with categorical
    parameters one-hot, numeric ones scaled to ``[0, 1]`` (log-scaled where ``log=True``),
    and an activity indicator per parameter, an inactive parameter being all zeros (see
    :class:`~optuna_nas.samplers._gp_model.ConditionalEncoding`).

    At the start of each trial, after ``n_startup_trials`` random ones:

    1. a BoTorch ``SingleTaskGP`` (RBF kernel with one lengthscale per column under
       dimension-scaled priors, standardized outcomes) is fitted per objective, and per
       constraint when there are any. Objective values are first warped through their
       ranks onto normal quantiles (a Gaussian copula, see
       :func:`~optuna_nas.samplers._gp_model.warp_outcomes`): architecture scores are
       heavily skewed, with a few broken architectures far below the rest, and on the
       raw scale the GP cannot tell the good ones apart. The objective models' noise
       variance is kept at or above 0.1 of the warped scores' variance, so that they
       smooth rather than interpolate (see :func:`~optuna_nas.samplers._gp_model.fit_gp`).
       Constraint values are not warped, their sign matters. Hyperparameters are
       re-optimized, starting from the last ones, whenever the data has grown by 10% or
       a new parameter appeared; in between, the GP keeps them and only conditions on
       the new trials;
    2. with one objective, no constraint and no other worker's trial running, the
       acquisition is analytic ``LogExpectedImprovement`` over the best observed
       (warped) score (Ament et al. 2023), computed from one Cholesky factor of the GP.
       Otherwise it is ``qLogNoisyExpectedImprovement`` for one objective and
       ``qLogNoisyExpectedHypervolumeImprovement`` for several, with the observed
       points as baseline, constraint models weighting by the probability of
       feasibility, and other workers' running trials as pending points; with one
       objective and no constraint that too is computed from one Cholesky factor for
       each candidate on its own (``optuna_nas.samplers._gp_posterior``), which keeps a
       plan under a second at a thousand trials;
    3. with one objective, the acquisition is climbed inside a Hamming trust region
       centered on the best trial since the region's last restart, as in CASMOPOLITAN
       (:func:`~optuna_nas.samplers._gp_model.replay_trust_region`: the radius starts
       at half the decisions, doubles after three improvements in a row, halves after
       ``max(4, decisions)`` failures in a row, and restarts below one; replayed from
       the study at every trial). The center's whole neighbourhood and random points of
       the region are scored, then the best climb through their neighbourhoods. With
       several objectives, right after a restart, when the region holds nothing new,
       or with ``adaptive_trust_region=False``, the candidates are mutations of the
       best assignments (the Pareto front) refined by hill climbing, plus observed
       structures redrawn and, with ``space``, fresh architectures. No candidate
       repeats an assignment a trial holds (or, with ``canonicalize``, an equivalent).
       When ``space`` has at most ``max_exhaustive_candidates`` architectures, all that
       no trial holds are scored instead, with analytic ``LogExpectedImprovement`` when
       there is one objective, no constraint and no pending point.
       Only those within ``trust_region_radius`` changed decisions of the best observed
       architecture (of any point of the Pareto front with several objectives) compete,
       a trust region as in CASMOPOLITAN; the whole space does once none is left there;
    4. the best assignment becomes the trial's plan; parameters the plan does not hold
       are sampled at random (see :class:`~optuna_nas.samplers._planned.PlannedSampler`).

    Completed trials count with their values, pruned ones as in
    :func:`~optuna_nas.samplers._planned.trial_score`; failed trials are left out of the
    model. Constraints are read from :attr:`optuna.trial.FrozenTrial.constraints`, so
    both ``constraints_func`` and Optuna's ``Trial.set_constraint`` work.

    The sampler keeps no state beyond the last fitted hyperparameters, a starting point
    that a fresh worker replaces by fitting from scratch; the model is rebuilt from the
    study's trials every time. Each plan is stored in the trial's system attributes.

    Args:
        seed: Seed of the sampler's random generator; it also seeds PyTorch (within the
            sampler only) and the quasi-Monte Carlo samples, so the same seed gives the
            same sequence.
        n_startup_trials: Number of scored trials sampled at random before the model is
            used (at least 2 are always needed).
        constraints_func: Optional function from a finished trial to a sequence of
            constraint values, feasible when all are ``<= 0``, as in Optuna's samplers. It
            is called for completed and pruned trials and its values stored under the
            ``constraints`` system attribute.
        space: Optional search space the objective samples from. With it, candidates
            hold exactly the parameters they activate and fresh random architectures join
            the candidate set; without it, a mutation that switches a structural decision
            keeps the parent's other parameters, and the objective draws whatever it newly
            asks for at random.
        max_exhaustive_candidates: With ``space``, score all of its architectures instead
            of searching locally when it has at most this many (NAS-Bench-201 has
            15,625); ``0`` always searches locally. Deciding costs one enumeration of up
            to this many architectures, once per sampler.
        canonicalize: Optional function from an architecture's active parameters to a
            hashable key that equivalent architectures share, such as
            :func:`~optuna_nas.samplers.nb201_canonical` for NAS-Bench-201's
            isomorphism classes. The sampler then never proposes an architecture
            equivalent to one a trial already holds, where it otherwise only avoids exact
            repeats. Needs ``space``.
        trust_region_radius: In an enumerated space, score only the architectures that
            differ from the best observed one in at most this many parameters (a
            parameter active in only one of the two counts as differing); ``None``
            scores the whole space. Global expected improvement over a space of
            thousands of architectures spends many trials on distant, uncertain
            regions once the search stalls; kept within the region around the
            incumbent, it refines that region first. The default, 3, was tuned on
            NAS-Bench-201's six decisions (CIFAR-10, protocol A, seeds 100-199, with
            the noise floor above): 100 of 100 runs found the optimum, against 94 of
            100 without the region and 71 with a radius of 2. Applies to the enumerated
            path only; local search uses the adaptive region.
        kernel: ``"rbf"`` (default), or ``"overlap"``: BoTorch's ``CategoricalKernel``
            on one code per decision, inactive being one more category
            (:class:`~optuna_nas.samplers._gp_model.CodedEncoding`). The overlap kernel
            found worse cells on the tuning problems
            (``benchmarks/results/gp_suite_tuning.md``).
        adaptive_trust_region: Search inside the adaptive Hamming trust region of step 3
            when the space is not enumerated; ``False`` searches around the incumbents
            without a region.

    References:
        Jones, Schonlau and Welch, "Efficient Global Optimization of Expensive Black-Box
        Functions", Journal of Global Optimization 13, 1998.

        Ament, Daulton, Eriksson, Balandat and Bakshy, "Unexpected Improvements to
        Expected Improvement for Bayesian Optimization", NeurIPS 2023.

        Daulton, Balandat and Bakshy, "Parallel Bayesian Optimization of Multiple Noisy
        Objectives with Expected Hypervolume Improvement", NeurIPS 2021.

        Swersky, Duvenaud, Snoek, Hutter and Osborne, "Raiders of the Lost Architecture:
        Kernels for Bayesian Optimization in Conditional Parameter Spaces",
        arXiv:1409.4011, 2014.

        Wan, Nguyen, Ha, Ru, Lu and Osborne, "Think Global and Act Local: Bayesian
        Optimisation over High-Dimensional Categorical and Mixed Search Spaces", ICML
        2021 (CASMOPOLITAN's Hamming-distance trust regions).

        Eriksson, Pearce, Gardner, Turner and Poloczek, "Scalable Global Optimization via
        Local Bayesian Optimization", NeurIPS 2019 (TuRBO's success and failure counts).

        Salinas, Shen and Perrone, "A Quantile-based Approach for Hyperparameter Transfer
        Learning", ICML 2020 (the Gaussian copula transform of objectives).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import spaces
            from optuna_nas.samplers import ConditionalGPSampler

            space = spaces.create("chain", max_layers=3)

            def objective(trial):
                layers = space.suggest(trial).genotype
                return sum(layer.op == "conv" for layer in layers) - 0.1 * len(layers)

            sampler = ConditionalGPSampler(seed=0, space=space)
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(objective, n_trials=30)
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        n_startup_trials: int = 10,
        constraints_func: Callable[[FrozenTrial], Sequence[float]] | None = None,
        space: SearchSpace | None = None,
        max_exhaustive_candidates: int = 20_000,
        canonicalize: Canonicalizer | None = None,
        trust_region_radius: int | None = 3,
        kernel: str = "rbf",
        adaptive_trust_region: bool = True,
    ) -> None:
        check_count("n_startup_trials", n_startup_trials, 0)
        check_count("max_exhaustive_candidates", max_exhaustive_candidates, 0)
        if trust_region_radius is not None:
            check_count("trust_region_radius", trust_region_radius, 1, "or None")
        if kernel not in ("overlap", "rbf"):
            raise ValueError(f"kernel must be 'overlap' or 'rbf', got {kernel!r}")
        super().__init__(seed, space=space, canonicalize=canonicalize)
        self._trust_region_radius = trust_region_radius
        self._kernel = kernel
        self._adaptive = bool(adaptive_trust_region)
        self._max_exhaustive = max_exhaustive_candidates
        # The space's architectures, enumerated once when there are at most
        # max_exhaustive_candidates of them (None: not tried yet; empty: too many), with
        # their keys and their encoding per encoding columns.
        self._enumerated: list[dict[str, Any]] | None = None
        self._enumerated_keys: list[Hashable] = []
        self._enumerated_codes = DecisionCodes([])
        self._enumerated_X: dict[tuple[str, ...], torch.Tensor] = {}
        self._n_startup_trials = n_startup_trials
        self._constraints_func = constraints_func
        # Per outcome, the last fitted hyperparameters (a starting point only).
        self._warm_start: dict[str, tuple[int, _gp_model.Hyperparameters]] = {}
        # Sizes of the candidate search and the model; see _gp_model.search_candidates.
        self._n_incumbents = 5
        self._n_random = 64
        self._n_neighbors = 16
        self._n_rounds = 3
        self._n_mc_samples = 64
        self._max_iter = 100
        self._max_iter_warm = 25
        # Re-optimize hyperparameters once the data grew by this factor (or the encoding
        # changed); in between, the GP reuses them and only conditions on the new data.
        # Hyperparameters move little with one more point, and each optimization costs
        # O(n^3) per step, the largest part of a plan at a few hundred trials.
        self._refit_growth = 1.1
        # With one objective, no constraints and no pending points, score candidates with
        # analytic LogEI over the best observed (warped) score rather than Monte Carlo
        # qLogNEI. Chosen on NB201 CIFAR-10 without space= (tuning seeds 100 and up,
        # benchmarks/results/gp_suite_tuning.md): protocol A 84.68 -> 84.85 mean best
        # validation, 75 -> 91 of 100 runs on the optimum; protocol B 91.54 -> 91.60.
        self._analytic_ei = True
        self._exhaustive_batch_size = 4096
        # Warp objective values by a Gaussian copula before fitting (see warp_outcomes).
        self._warp = True
        # Lower bound of the objective models' noise variance, in standardized units (see
        # fit_gp). Without it the GP interpolates NAS-Bench-201's deterministic scores and
        # rules out good neighbours of the incumbent; tuned on CIFAR-10 protocol A (seeds
        # 100-199, without the trust region: 1e-2 86, 3e-2 94, 0.1 95 of 100 runs on the
        # optimum, BoTorch's 1e-4 90). With the trust region and BoTorch's floor, 93 of
        # 100; with both, 100 (benchmarks/results/nb201_gp_trust_region_tuning.md).
        self._min_noise: float | None = 0.1

    def after_trial(
        self,
        study: Study,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        if self._constraints_func is not None:
            process_constraints_after_trial(self._constraints_func, study, trial, state)
        super().after_trial(study, trial, state, values)

    def make_plan(self, study: Study, trial: FrozenTrial) -> dict[str, Any] | None:
        if enqueued_params(trial):
            return None
        trials = study_trials(study, use_cache=False)
        n_objectives = len(study.directions)
        observed: list[FrozenTrial] = []
        scores: list[list[float]] = []
        for t in trials:
            if t.state not in _SCORED:
                continue
            row = [trial_score(study, t, i) for i in range(n_objectives)]
            if all(s is not None for s in row):
                observed.append(t)
                scores.append([float(s) for s in row if s is not None])
        if len(observed) < max(2, self._n_startup_trials):
            return None

        seed = int(self._rng.randint(2**31 - 1))
        with model_context(seed):
            return self._plan(study, trial, trials, observed, scores, seed)

    def _plan(
        self,
        study: Study,
        trial: FrozenTrial,
        trials: Sequence[FrozenTrial],
        observed: Sequence[FrozenTrial],
        scores: Sequence[Sequence[float]],
        seed: int,
    ) -> dict[str, Any] | None:
        from botorch.exceptions.errors import ModelFittingError
        from linear_operator.utils.errors import NotPSDError

        distributions: dict[str, BaseDistribution] = {}
        for t in sorted(trials, key=lambda t: t.number):
            distributions.update(t.distributions)
        encoding: _gp_model.ConditionalEncoding | _gp_model.CodedEncoding
        if self._kernel == "overlap":
            encoding = _gp_model.CodedEncoding(distributions)
        else:
            encoding = _gp_model.ConditionalEncoding(distributions)

        X = encoding.encode([t.params for t in observed])
        Y = torch.tensor(scores, dtype=_gp_model.DTYPE)
        if self._warp:
            Y = _gp_model.warp_outcomes(Y)
        constraint_names = sorted({name for t in observed for name in t.constraints})
        violation = np.array(
            [
                sum(max(0.0, t.constraints.get(c, np.inf)) for c in constraint_names)
                for t in observed
            ]
        )
        feasible = violation == 0

        pending = [
            planned_genome(t, self.plan_attr)
            for t in trials
            if t.state == TrialState.RUNNING and trial_id(t) != trial_id(trial)
        ][-_MAX_PENDING:]
        pending = [g for g in pending if g]

        try:
            models = self._fit_models(study, encoding, X, Y, observed, constraint_names)
            if models is None:
                return None
            candidates = self._enumerate()
            score_X = _gp_model.acquisition_scorer(
                models,
                X,
                Y,
                feasible=torch.from_numpy(feasible) if constraint_names else None,
                X_pending=encoding.encode(pending) if pending else None,
                analytic=self._analytic_ei,
                n_mc_samples=self._n_mc_samples,
                seed=seed,
                batch_size=self._exhaustive_batch_size,
            )
        except (ModelFittingError, NotPSDError) as err:
            _logger.warning(f"Trial {trial.number} is sampled at random: the GP failed ({err}).")
            return None

        def score(genomes: list[dict[str, Any]]) -> np.ndarray:
            return score_X(encoding.encode(genomes)).numpy()

        excluded = [self._key(g) for t in trials if (g := planned_genome(t, self.plan_attr))]
        incumbents = _gp_model.incumbent_indices(Y, violation, self._n_incumbents, self._rng)
        if candidates:
            centers = [observed[i].params for i in incumbents[: 1 if Y.shape[1] == 1 else None]]
            return self._best_enumerated(score_X, encoding, set(excluded), centers)

        center: Mapping[str, Any] | None = None
        radius: int | None = None
        if self._adaptive and Y.shape[1] == 1:
            region, best, inside = _gp_model.locate_region(
                [float(row[0]) for row in scores],
                [len(t.params) for t in observed],
                incumbents,
                n_startup=self._n_startup_trials,
            )
            if best is not None:
                center, radius = observed[best].params, region.radius
            incumbents = inside
        space = self._space

        def search(center: Mapping[str, Any] | None, radius: int | None) -> dict[str, Any] | None:
            return _gp_model.search_candidates(
                score,
                incumbents=[observed[i].params for i in incumbents],
                templates=[t.params for t in observed],
                center=center,
                radius=radius,
                distributions=encoding.distributions,
                excluded=excluded,
                rng=self._rng,
                sample_fresh=None if space is None else space.sample_params,
                complete=None if space is None else space.sample_params,
                n_random=self._n_random,
                n_neighbors=self._n_neighbors,
                n_rounds=self._n_rounds,
                key=None if self._canonicalize is None else self._canonicalize,
            )

        plan = search(center, radius)
        if plan is None and center is not None:
            # Every candidate of the region has been evaluated: search the whole space.
            plan = search(None, None)
        return plan

    def _enumerate(self) -> list[dict[str, Any]]:
        """Every architecture of ``space`` when it has at most ``max_exhaustive_candidates``,
        else (or without a space) an empty list; enumerated once per sampler."""
        if self._enumerated is None:
            enumerated: list[dict[str, Any]] = []
            if self._space is not None and self._max_exhaustive > 0:
                for params in self._space.iter_params():
                    if len(enumerated) == self._max_exhaustive:
                        enumerated = []
                        break
                    enumerated.append(params)
            self._enumerated = enumerated
            self._enumerated_keys = [
                genome_key(g) if self._canonicalize is None else self._canonicalize(g)
                for g in enumerated
            ]
            self._enumerated_codes = DecisionCodes(enumerated)
        return self._enumerated

    def _best_enumerated(
        self,
        score_X: Callable[[torch.Tensor], torch.Tensor],
        encoding: _gp_model.ConditionalEncoding | _gp_model.CodedEncoding,
        excluded: set[Hashable],
        centers: Sequence[Mapping[str, Any]],
    ) -> dict[str, Any] | None:
        """The enumerated architecture of highest acquisition that no trial holds, among
        those within the trust region around ``centers`` while any is left there."""
        candidates = self._enumerate()
        X = self._enumerated_X.get(encoding.columns)
        if X is None:
            X = encoding.encode(candidates)
            self._enumerated_X = {encoding.columns: X}
        free = [key not in excluded for key in self._enumerated_keys]
        rows: list[int] = []
        if self._trust_region_radius is not None and centers:
            near = self._enumerated_codes.within(centers, self._trust_region_radius)
            rows = [i for i in np.flatnonzero(near).tolist() if free[i]]
        if not rows:
            rows = [i for i, is_free in enumerate(free) if is_free]
        if not rows:
            return None
        index = torch.tensor(rows, dtype=torch.long)
        values = score_X(X[index])
        values = torch.nan_to_num(values, nan=-math.inf)
        return dict(candidates[rows[int(torch.argmax(values))]])

    def _fit_models(
        self,
        study: Study,
        encoding: _gp_model.ConditionalEncoding | _gp_model.CodedEncoding,
        X: torch.Tensor,
        Y: torch.Tensor,
        observed: Sequence[FrozenTrial],
        constraint_names: Sequence[str],
    ) -> list[SingleTaskGP] | None:
        """One GP per objective, then one per constraint on the trials that report it;
        ``None`` when a constraint has fewer than two values."""
        outcomes = [
            (f"{study.study_name}:objective{i}", X, Y[:, i : i + 1], self._min_noise)
            for i in range(Y.shape[1])
        ]
        for name in constraint_names:
            rows = [i for i, t in enumerate(observed) if name in t.constraints]
            if len(rows) < 2:
                return None
            values = torch.tensor([[float(observed[i].constraints[name])] for i in rows])
            # Constraint values are not warped and their sign matters: the default noise.
            outcomes.append((f"{study.study_name}:constraint:{name}", X[rows], values.to(X), None))
        growth = self._refit_growth
        models = []
        for key, x, y, min_noise in outcomes:
            n_fitted, warm = self._warm_start.get(key, (0, None))
            if warm is None:
                max_iter = self._max_iter
            elif warm.columns == encoding.columns and (n_fitted <= len(y) < n_fitted * growth):
                max_iter = 0
            else:
                max_iter = self._max_iter_warm
            model, fitted = _gp_model.fit_gp(
                x,
                y,
                encoding.columns,
                categorical_dims=getattr(encoding, "categorical_dims", ()),
                warm_start=warm,
                max_iter=max_iter,
                min_noise=min_noise,
            )
            if max_iter > 0:
                self._warm_start[key] = (len(y), fitted)
            models.append(model)
        return models
