"""Pure numerical core of :class:`~optuna_nas.samplers.ConditionalGPSampler`.

Nothing here touches a study. The sampler turns trials into assignments ("genomes", see
:mod:`optuna_nas.samplers._genome`) and scores; this module turns those into tensors, fits
Gaussian processes, builds log-EI-family acquisition functions and searches a finite set
of candidate assignments for the best one:

* :class:`ConditionalEncoding` embeds assignments over the *union* of the parameters seen
  into the unit cube, with an activity indicator per parameter;
* :func:`fit_gp` fits a BoTorch ``SingleTaskGP`` per outcome, warm-started from the last fit;
* :func:`make_acquisition` builds ``qLogNoisyExpectedImprovement`` (one objective) or
  ``qLogNoisyExpectedHypervolumeImprovement`` (several), with outcome constraints;
* :func:`search_candidates` climbs the acquisition over mutations of the incumbents and
  random assignments, never returning an excluded (already evaluated) one.

It is longer than the package's 500-line rule for a module: encoding, fitting,
acquisition and candidate search are one model and are kept in one place.

All tensors are double precision on the CPU. ``n`` is a number of observed assignments,
``d`` the encoding dimension, ``m`` a number of outcomes and ``b`` a number of candidates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from optuna_nas._compat import no_fused_hypervolume_kernel
from optuna_nas.samplers._genome import Genome, genome_key, mutate, mutate_value, sample_value

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models import SingleTaskGP

    from optuna_nas.samplers._gp_posterior import LatentPosterior

DTYPE = torch.float64
GenomeKey = tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class _Block:
    """Where one parameter lives in the encoding: value columns, then its indicator."""

    name: str
    distribution: BaseDistribution
    start: int
    n_values: int
    choice_index: Mapping[Any, int] | None


class ConditionalEncoding:
    """Embeds assignments of a conditional space into ``[0, 1]^d``.

    Every parameter seen in any trial gets a block of columns, so trials with different
    active parameters share one input space (Optuna's ``GPSampler`` and
    ``BoTorchSampler`` instead model only the parameters present in every trial):

    * a categorical parameter with ``k >= 2`` choices takes ``k`` one-hot columns;
    * a numeric parameter takes one column, its value mapped linearly onto ``[0, 1]``
      between the distribution's bounds, after a logarithm for ``log=True``; values
      outside the bounds (a range that changed between trials) are clipped;
    * every parameter then takes an activity indicator column, ``1`` when the parameter
      is active in the assignment and ``0`` when it is not.

    An inactive parameter is encoded as zeros in its value columns plus a zero
    indicator. All assignments in which a parameter is inactive thus share one point of
    that parameter's block, at a learned distance (through the indicator's lengthscale)
    from every active value: the collapse of inactive dimensions onto a single point
    that Swersky et al. build into their arc kernel, and the constant imputation of
    inactive values that Lévesque et al. study, expressed here as features, so that a
    standard stationary kernel with one lengthscale per column applies unchanged.
    A parameter with a single possible value keeps only its indicator.

    Inputs already lie in the unit cube, so the models need no input transform.

    Args:
        distributions: The distribution of every parameter seen, by name. Where trials
            disagree, pass the latest one; values are encoded against it.

    References:
        Swersky, Duvenaud, Snoek, Hutter and Osborne, "Raiders of the Lost Architecture:
        Kernels for Bayesian Optimization in Conditional Parameter Spaces", NIPS 2013
        workshop on Bayesian Optimization in Theory and Practice (arXiv:1409.4011, 2014).

        Lévesque, Durand, Gagné and Sabourin, "Bayesian Optimization for Conditional
        Hyperparameter Spaces", IJCNN 2017.
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        blocks: list[_Block] = []
        columns: list[str] = []
        for name in sorted(distributions):
            dist = distributions[name]
            choice_index: dict[Any, int] | None = None
            if isinstance(dist, CategoricalDistribution):
                n_values = len(dist.choices) if len(dist.choices) > 1 else 0
                choice_index = {}
                for i, choice in enumerate(dist.choices):
                    # ``1 == True`` in Python; key on the type too so they stay apart.
                    choice_index.setdefault((type(choice), choice), i)
                columns.extend(f"{name}={c!r}" for c in dist.choices[:n_values])
            else:
                n_values = 0 if dist.single() else 1
                columns.extend([name] * n_values)
            blocks.append(_Block(name, dist, len(columns) - n_values, n_values, choice_index))
            columns.append(f"{name}:active")
        self._blocks = tuple(blocks)
        self.columns: tuple[str, ...] = tuple(columns)
        self.distributions: dict[str, BaseDistribution] = {b.name: b.distribution for b in blocks}

    @property
    def dim(self) -> int:
        """The number of columns ``d``."""
        return len(self.columns)

    def encode(self, genomes: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Embeds assignments.

        Args:
            genomes: ``n`` assignments of external parameter values. Names the encoding
                does not know are ignored.

        Returns:
            An ``n x d`` double tensor with entries in ``[0, 1]``.
        """
        out = np.zeros((len(genomes), self.dim))
        for row, genome in enumerate(genomes):
            for block in self._blocks:
                if block.name not in genome:
                    continue
                value = genome[block.name]
                out[row, block.start + block.n_values] = 1.0
                if block.n_values == 0:
                    continue
                if block.choice_index is not None:
                    index = block.choice_index.get((type(value), value))
                    if index is not None:
                        out[row, block.start + index] = 1.0
                else:
                    out[row, block.start] = _unit_value(value, block.distribution)
        return torch.from_numpy(out).to(DTYPE)


def _unit_value(value: Any, dist: BaseDistribution) -> float:
    assert isinstance(dist, (FloatDistribution, IntDistribution))
    low, high, x = float(dist.low), float(dist.high), float(value)
    if dist.log:
        low, high, x = math.log(low), math.log(high), math.log(max(x, dist.low))
    return min(1.0, max(0.0, (x - low) / (high - low)))


class CodedEncoding:
    """Embeds assignments of a conditional space with one column per decision, for
    overlap (Hamming) kernels.

    Every parameter seen in any trial gets one column:

    * a categorical parameter holds its choice's index, ``0`` to ``k - 1``, and ``k`` when
      it is inactive, so an inactive decision is one more category;
    * a numeric parameter holds its value mapped onto ``[0, 1]`` as in
      :class:`ConditionalEncoding` (``0`` when inactive), and takes a second, categorical
      column that is ``1`` when the parameter is active and ``0`` when it is not.

    :attr:`categorical_dims` lists the categorical columns, which an overlap kernel
    compares for equality only: choices have no order and no geometry, and two
    architectures are as similar as the decisions they share (Hamming distance), whatever
    the number of choices per decision. Numeric columns keep a stationary kernel.

    Args:
        distributions: The distribution of every parameter seen, by name.

    References:
        Ru, Alvi, Nguyen, Osborne and Roberts, "Bayesian Optimisation over Multiple
        Continuous and Categorical Inputs", ICML 2020 (CoCaBO's overlap kernel).

        Wan, Nguyen, Ha, Ru, Lu and Osborne, "Think Global and Act Local: Bayesian
        Optimisation over High-Dimensional Categorical and Mixed Search Spaces", ICML
        2021 (CASMOPOLITAN's transformed overlap kernel).
    """

    def __init__(self, distributions: Mapping[str, BaseDistribution]) -> None:
        self._plan: list[tuple[str, BaseDistribution, dict[Any, int] | None]] = []
        columns: list[str] = []
        categorical: list[int] = []
        for name in sorted(distributions):
            dist = distributions[name]
            if isinstance(dist, CategoricalDistribution):
                index: dict[Any, int] = {}
                for i, choice in enumerate(dist.choices):
                    index.setdefault((type(choice), choice), i)
                categorical.append(len(columns))
                columns.append(name)
                self._plan.append((name, dist, index))
            else:
                columns.append(name)
                categorical.append(len(columns))
                columns.append(f"{name}:active")
                self._plan.append((name, dist, None))
        self.columns: tuple[str, ...] = tuple(columns)
        self.categorical_dims: tuple[int, ...] = tuple(categorical)
        self.distributions: dict[str, BaseDistribution] = dict(
            (name, distributions[name]) for name in sorted(distributions)
        )

    @property
    def dim(self) -> int:
        """The number of columns ``d``."""
        return len(self.columns)

    def encode(self, genomes: Sequence[Mapping[str, Any]]) -> torch.Tensor:
        """Embeds ``n`` assignments as an ``n x d`` double tensor (see the class)."""
        out = np.zeros((len(genomes), self.dim))
        for row, genome in enumerate(genomes):
            column = 0
            for name, dist, index in self._plan:
                present = name in genome
                if index is not None:
                    assert isinstance(dist, CategoricalDistribution)
                    code = len(dist.choices)
                    if present:
                        code = index.get((type(genome[name]), genome[name]), code)
                    out[row, column] = code
                    column += 1
                else:
                    if present:
                        if not dist.single():
                            out[row, column] = _unit_value(genome[name], dist)
                        out[row, column + 1] = 1.0
                    column += 2
        return torch.from_numpy(out).to(DTYPE)


def warp_outcomes(Y: torch.Tensor) -> torch.Tensor:
    """Maps each column of observations through its ranks onto standard normal quantiles.

    The ``i``-th smallest of ``n`` values becomes ``Phi^-1((i - 0.5) / n)``; tied values
    share their mean rank, and values that are not finite stay as they are. The map keeps
    the order of every column (so the best point and the Pareto front stay the same) but
    not the distances: architecture scores are heavily skewed (on NAS-Bench-201 most cells
    lie within a few points of the best, a few broken ones 70 points below), and a GP fitted
    to the raw scores spends its flexibility on the broken cells, so that it cannot tell
    the good cells apart, where the search has to decide. After the warp the observations
    are evenly spread, so the model resolves the top as finely as the bottom.

    Args:
        Y: ``n x m`` observations.

    Returns:
        The ``n x m`` warped observations.

    References:
        Salinas, Shen and Perrone, "A Quantile-based Approach for Hyperparameter Transfer
        Learning", ICML 2020 (the Gaussian copula transform of objectives).
    """
    from scipy.stats import norm, rankdata

    out = Y.clone()
    for j in range(Y.shape[1]):
        finite = torch.isfinite(Y[:, j])
        n = int(finite.sum())
        if n == 0:
            continue
        ranks = rankdata(Y[finite, j].numpy(), method="average")
        out[finite, j] = torch.from_numpy(norm.ppf((ranks - 0.5) / n)).to(Y)
    return out


@dataclass(frozen=True)
class Hyperparameters:
    """Fitted raw hyperparameters of one GP, with the encoding columns they refer to.

    Passed back to :func:`fit_gp` as a starting point, so the next fit needs few
    iterations. Lengthscales are matched by column name, so the warm start survives a
    change of the encoding when a new parameter appears.

    Attributes:
        columns: The ``d`` column names of the encoding the GP was fitted on.
        values: Raw parameter tensors by their name in the model.
    """

    columns: tuple[str, ...]
    values: dict[str, torch.Tensor]


def fit_gp(
    train_X: torch.Tensor,
    train_Y: torch.Tensor,
    columns: Sequence[str],
    warm_start: Hyperparameters | None = None,
    max_iter: int = 100,
    min_noise: float | None = None,
    categorical_dims: Sequence[int] = (),
) -> tuple[SingleTaskGP, Hyperparameters]:
    """Fits an exact GP to one outcome by maximizing the marginal likelihood.

    The model is BoTorch's ``SingleTaskGP`` with an RBF kernel with one lengthscale per
    column (automatic relevance determination) under the dimension-scaled log-normal
    priors of Hvarfner et al., which keep a GP well-behaved with the hundred-odd columns
    a one-hot encoded architecture space produces; a constant mean; Gaussian noise with
    a log-normal prior, since architecture scores are noisy; and standardized outcomes.
    L-BFGS-B runs for at most ``max_iter`` iterations, starting from ``warm_start``;
    with ``max_iter=0`` the model keeps ``warm_start`` and only conditions on the data.

    ``min_noise`` bounds the noise variance from below, in standardized units. Left
    free, the noise of a deterministic score (a tabular benchmark, a fixed training
    seed) fits to almost nothing, the GP interpolates every observation, and a single
    changed decision can then carry the model's prediction far from a good neighbour.
    A floor makes the model treat each score as one draw of a noisy process, which an
    architecture's accuracy is (another seed or another member of its isomorphism class
    scores differently).

    Args:
        train_X: ``n x d`` inputs in the unit cube.
        train_Y: ``n x 1`` observations, higher is better.
        columns: The ``d`` column names, to match ``warm_start`` against.
        warm_start: Hyperparameters of an earlier fit to start from, or ``None`` to start
            from the priors' modes.
        max_iter: Most L-BFGS-B iterations; ``0`` skips the optimization.
        min_noise: Lower bound of the noise variance of the standardized outcome, or
            ``None`` for BoTorch's (``1e-4``).
        categorical_dims: Columns holding category codes (see :class:`CodedEncoding`).
            When there are any, the model is BoTorch's ``MixedSingleTaskGP``: BoTorch's
            ``CategoricalKernel``, an overlap kernel with one lengthscale per column, on
            those columns, the RBF kernel above on the rest, and their sum plus product.

    Returns:
        The fitted model in eval mode and its hyperparameters.

    Raises:
        botorch.exceptions.ModelFittingError: If every fitting attempt failed.

    References:
        Hvarfner, Hellsten and Nardi, "Vanilla Bayesian Optimization Performs Great in
        High Dimensions", ICML 2024.
    """
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import (
        get_covar_module_with_dim_scaled_prior,
        get_gaussian_likelihood_with_lognormal_prior,
    )
    from gpytorch.constraints import GreaterThan
    from gpytorch.mlls import ExactMarginalLogLikelihood

    d = train_X.shape[-1]
    likelihood = None
    if min_noise is not None:
        if not min_noise > 0:
            raise ValueError(f"min_noise must be positive or None, got {min_noise!r}")
        # Same log-normal prior as BoTorch's default likelihood, with a higher floor.
        likelihood = get_gaussian_likelihood_with_lognormal_prior()
        likelihood.noise_covar.register_constraint(
            "raw_noise", GreaterThan(min_noise, transform=None, initial_value=2 * min_noise)
        )
        likelihood.noise = 2 * min_noise
    model: SingleTaskGP
    if categorical_dims:
        from botorch.models import MixedSingleTaskGP

        model = MixedSingleTaskGP(
            train_X,
            train_Y,
            cat_dims=list(categorical_dims),
            likelihood=likelihood,
            outcome_transform=Standardize(m=1),
        )
    else:
        model = SingleTaskGP(
            train_X,
            train_Y,
            covar_module=get_covar_module_with_dim_scaled_prior(ard_num_dims=d),
            likelihood=likelihood,
            outcome_transform=Standardize(m=1),
        )
    if warm_start is not None:
        _load_warm_start(model, warm_start, tuple(columns))
        if min_noise is not None and float(model.likelihood.noise.detach().min()) < min_noise:
            model.likelihood.noise = 2 * min_noise
    if max_iter > 0:
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": max_iter}}, max_attempts=2)
    model.eval()
    values = {name: p.detach().clone() for name, p in model.named_parameters()}
    return model, Hyperparameters(tuple(columns), values)


def _load_warm_start(model: SingleTaskGP, warm: Hyperparameters, columns: tuple[str, ...]) -> None:
    old_index = {c: i for i, c in enumerate(warm.columns)}
    pairs = [(j, old_index[c]) for j, c in enumerate(columns) if c in old_index]
    new_cols = torch.tensor([j for j, _ in pairs], dtype=torch.long)
    old_cols = torch.tensor([i for _, i in pairs], dtype=torch.long)
    with torch.no_grad():
        for name, param in model.named_parameters():
            old = warm.values.get(name)
            if old is None:
                continue
            if name.endswith("lengthscale") and param.shape[-1] == len(columns):
                if old.shape[-1] == len(warm.columns) and pairs:
                    param[..., new_cols] = old[..., old_cols].to(param)
            elif old.shape == param.shape:
                param.copy_(old)


def _outcome(index: int) -> Callable[..., torch.Tensor]:
    def select(samples: torch.Tensor, X: torch.Tensor | None = None) -> torch.Tensor:
        return samples[..., index]

    return select


def make_acquisition(
    models: Sequence[SingleTaskGP],
    n_objectives: int,
    X_baseline: torch.Tensor,
    Y_baseline: torch.Tensor,
    feasible: torch.Tensor | None = None,
    X_pending: torch.Tensor | None = None,
    n_mc_samples: int = 64,
    seed: int = 0,
) -> AcquisitionFunction:
    """Builds the acquisition function, from the log-EI family.

    One objective gets ``qLogNoisyExpectedImprovement``, several get
    ``qLogNoisyExpectedHypervolumeImprovement``. Both integrate over the noisy values of
    the observed points ``X_baseline`` instead of trusting the best observed score, which
    suits noisy architecture scores, and both work on a smoothed, logarithmic scale that
    keeps the acquisition informative where plain EI vanishes numerically. Models past
    the objectives are constraints (feasible where their value is at most ``0``) and
    weight the improvement by the probability of feasibility. Pending points, proposed
    to other workers but not yet evaluated, are integrated over as well.

    The reference point of the hypervolume is BoTorch's ``infer_reference_point`` on the
    observed Pareto front of feasible points: the nadir minus a tenth of the range.

    Args:
        models: One fitted GP per outcome: ``n_objectives`` objectives (higher is better)
            followed by the constraints.
        n_objectives: The number of objectives.
        X_baseline: ``n x d`` observed inputs.
        Y_baseline: ``n x n_objectives`` observed objective values, for the reference
            point.
        feasible: ``n`` booleans, whether each observed point met every constraint;
            ``None`` when all did.
        X_pending: ``p x d`` inputs being evaluated, or ``None``.
        n_mc_samples: Quasi-Monte Carlo samples of the posterior.
        seed: Seed of the quasi-Monte Carlo sampler.

    Returns:
        An acquisition function taking ``b x 1 x d`` inputs to ``b`` log values.

    References:
        Jones, Schonlau and Welch, "Efficient Global Optimization of Expensive Black-Box
        Functions", Journal of Global Optimization 13, 1998 (expected improvement).

        Ament, Daulton, Eriksson, Balandat and Bakshy, "Unexpected Improvements to
        Expected Improvement for Bayesian Optimization", NeurIPS 2023 (LogEI).

        Daulton, Balandat and Bakshy, "Parallel Bayesian Optimization of Multiple Noisy
        Objectives with Expected Hypervolume Improvement", NeurIPS 2021 (NEHVI).
    """
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement,
    )
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.acquisition.objective import GenericMCObjective
    from botorch.models import ModelListGP
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.multi_objective.hypervolume import infer_reference_point

    model = models[0] if len(models) == 1 else ModelListGP(*models)
    constraints = [_outcome(i) for i in range(n_objectives, len(models))] or None
    sampler = SobolQMCNormalSampler(sample_shape=torch.Size([n_mc_samples]), seed=seed)
    if n_objectives == 1:
        return qLogNoisyExpectedImprovement(
            model,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=GenericMCObjective(_outcome(0)) if constraints else None,
            constraints=constraints,
            X_pending=X_pending,
            prune_baseline=True,
        )
    Y = Y_baseline if feasible is None or not bool(feasible.any()) else Y_baseline[feasible]
    ref_point = infer_reference_point(Y[pareto_front(Y)])
    # BoTorch would compile a C++ kernel for this on first use: minutes, inside a trial.
    with no_fused_hypervolume_kernel():
        return qLogNoisyExpectedHypervolumeImprovement(
            model,
            ref_point=ref_point,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=(
                IdentityMCMultiOutputObjective(outcomes=list(range(n_objectives)))
                if constraints
                else None
            ),
            constraints=constraints,
            X_pending=X_pending,
            prune_baseline=True,
        )


def acquisition_scorer(
    models: Sequence[SingleTaskGP],
    X: torch.Tensor,
    Y: torch.Tensor,
    *,
    feasible: torch.Tensor | None = None,
    X_pending: torch.Tensor | None = None,
    analytic: bool = False,
    n_mc_samples: int = 64,
    seed: int = 0,
    batch_size: int = 4096,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from ``b x d`` candidates to their ``b`` acquisition values.

    One objective without constraints is scored from one factor of its GP
    (:class:`~optuna_nas.samplers._gp_posterior.LatentPosterior`): analytic log EI over
    the best observed value when ``analytic`` is set and nothing is pending, else the
    noisy log EI of :func:`make_acquisition`, with the same values as BoTorch's but in
    time linear in the number of observations per candidate. Several objectives or
    constraints go through BoTorch's acquisition functions (:func:`make_acquisition`).

    Args:
        models: The fitted GPs, objectives first (see :func:`make_acquisition`).
        X: ``n x d`` observed inputs.
        Y: ``n x m`` observed objective values (higher is better).
        feasible: ``n`` booleans, whether each observation met the constraints.
        X_pending: ``p x d`` inputs being evaluated, or ``None``.
        analytic: Prefer analytic log EI (used to score a whole enumerated space).
        n_mc_samples: Quasi-Monte Carlo draws of the Monte Carlo acquisitions.
        seed: Their seed.
        batch_size: Candidates per analytic batch.
    """
    if len(models) == 1:
        model = models[0]
        if analytic and X_pending is None:
            best_f = float(Y.max())
            return lambda C: log_expected_improvement(model, C, best_f, batch_size=batch_size)
        from optuna_nas.samplers._gp_posterior import LatentPosterior

        posterior = LatentPosterior(model)
        baseline = noisy_baseline(posterior, X, X_pending)
        return lambda C: posterior.noisy_log_expected_improvement(
            C, baseline, n_mc_samples=n_mc_samples, seed=seed
        )
    acquisition = make_acquisition(
        models,
        n_objectives=Y.shape[1],
        X_baseline=X,
        Y_baseline=Y,
        feasible=feasible,
        X_pending=X_pending,
        n_mc_samples=n_mc_samples,
        seed=seed,
    )
    return lambda C: evaluate_acquisition(acquisition, C)


def log_expected_improvement(
    model: SingleTaskGP, X: torch.Tensor, best_f: float, batch_size: int = 1024
) -> torch.Tensor:
    """Analytic log expected improvement over ``best_f`` of each of ``b`` candidates.

    The values of BoTorch's ``LogExpectedImprovement``, computed from the posterior mean
    and variance alone (one Cholesky factor, then a triangular solve per batch):
    calling the acquisition on ``b x 1 x d`` inputs instead expands the training data
    for every candidate, and a joint posterior forms a ``b x b`` covariance, both many
    times slower when a whole space of ten thousand architectures is scored. Cheaper than
    :func:`make_acquisition`'s Monte Carlo ``qLogNoisyExpectedImprovement``, it trusts
    the best observed score as the incumbent value and handles neither constraints nor
    pending points.

    Args:
        model: A fitted GP of the objective (higher is better).
        X: ``b x d`` candidate inputs.
        best_f: The value to improve on, usually the best observed score.
        batch_size: Candidates at a time; bounds the ``batch_size x n`` cross covariance.

    Returns:
        ``b`` log values; higher is better.
    """
    from optuna_nas.samplers._gp_posterior import LatentPosterior

    return LatentPosterior(model).log_expected_improvement(X, best_f, batch_size=batch_size)


def noisy_baseline(
    posterior: LatentPosterior,
    X_observed: torch.Tensor,
    X_pending: torch.Tensor | None = None,
    n_sigma: float = 5.0,
) -> torch.Tensor:
    """The points a candidate's noisy improvement is measured against.

    As ``qLogNoisyExpectedImprovement`` chooses them: the observed points with a
    positive probability of being the best under the posterior (BoTorch's
    ``prune_inferior_points``), then the pending points, whose unknown outcomes are drawn
    jointly with the observed ones (BoTorch's incremental NEI). BoTorch's pruning draws
    the joint posterior of every observed point, an ``n x n`` covariance; a point whose
    posterior mean plus ``n_sigma`` standard deviations is below another point's mean
    minus as many is left out beforehand, which changes the result only when one of the
    pruning's 2,048 draws lies ``n_sigma`` deviations out.

    Args:
        posterior: The factored GP of the objective (higher is better).
        X_observed: ``n x d`` observed inputs.
        X_pending: ``p x d`` inputs being evaluated, or ``None``.
        n_sigma: Width of the pre-filter, in posterior standard deviations.

    Returns:
        ``k x d`` baseline inputs.
    """
    from botorch.acquisition.utils import prune_inferior_points

    contenders = X_observed[posterior.contenders(X_observed, n_sigma)]
    baseline = prune_inferior_points(posterior.model, contenders)
    return baseline if X_pending is None else torch.cat([baseline, X_pending])


def evaluate_acquisition(
    acquisition: AcquisitionFunction, X: torch.Tensor, batch_size: int = 128
) -> torch.Tensor:
    """Acquisition values of candidates, each proposed on its own (``q = 1``).

    Args:
        acquisition: From :func:`make_acquisition`.
        X: ``b x d`` candidate inputs.
        batch_size: Candidates per call; bounds memory, since GPyTorch expands the
            training inputs for every candidate.

    Returns:
        ``b`` values; higher is better.
    """
    with torch.no_grad():
        chunks = [acquisition(x.unsqueeze(-2)) for x in X.split(batch_size)]
    return torch.cat(chunks) if chunks else torch.empty(0, dtype=X.dtype)


def pareto_front(Y: torch.Tensor) -> torch.Tensor:
    """Whether each of ``n`` points is non-dominated, all of the ``n x m`` values maximized."""
    from botorch.utils.multi_objective.pareto import is_non_dominated

    return is_non_dominated(Y, deduplicate=False)


@dataclass(frozen=True)
class TrustRegion:
    """The state of a Hamming-distance trust region after a sequence of evaluations.

    Attributes:
        radius: Decisions a candidate may change relative to the center.
        start: Index of the first evaluation since the last restart; the center is the
            best of the evaluations from there on (none yet when ``start`` is their count).
        n_restarts: Restarts so far.
    """

    radius: int
    start: int
    n_restarts: int


def replay_trust_region(
    scores: Sequence[float],
    n_dims: int,
    n_startup: int,
    *,
    initial_radius: int | None = None,
    success_tolerance: int = 3,
    failure_tolerance: int | None = None,
    additive: bool = False,
) -> TrustRegion:
    """Replays CASMOPOLITAN's trust-region rule over the scores in the order they came.

    The region starts with ``initial_radius`` changed decisions (half the decisions,
    rounded up, by default). Every evaluation after the first ``n_startup`` succeeds when
    it beats the best score since the last restart, and fails otherwise.
    ``success_tolerance`` successes in a row double the radius (at most ``n_dims``);
    ``failure_tolerance`` failures in a row (``max(4, n_dims)`` by default, TuRBO's rule
    for one point at a time) halve it, rounding down. A radius that falls below one
    restarts the region: back to the initial radius, centered on the evaluations that
    come next. The state is a function of the scores alone, so any worker that reads
    the study rebuilds it; nothing is kept between trials.

    Args:
        scores: One score per evaluation, higher is better, in the order they were made;
            not finite scores count as failures.
        n_dims: Number of decisions (parameters) of the space.
        n_startup: Evaluations made before the region applies (random ones).
        initial_radius: The radius after a (re)start.
        success_tolerance: Successes in a row that double the radius.
        failure_tolerance: Failures in a row that halve it.
        additive: Grow and shrink by one decision instead of doubling and halving.

    Returns:
        The region after the last score.

    References:
        Wan, Nguyen, Ha, Ru, Lu and Osborne, "Think Global and Act Local: Bayesian
        Optimisation over High-Dimensional Categorical and Mixed Search Spaces", ICML
        2021 (Algorithm 1: Hamming trust regions, their growth, shrinkage and restarts).

        Eriksson, Pearce, Gardner, Turner and Poloczek, "Scalable Global Optimization via
        Local Bayesian Optimization", NeurIPS 2019 (TuRBO's tolerances).
    """
    n_dims = max(1, n_dims)
    first = initial_radius if initial_radius is not None else (n_dims + 1) // 2
    first = max(1, min(first, n_dims))
    fail_tol = failure_tolerance if failure_tolerance is not None else max(4, n_dims)
    radius, start, restarts = first, 0, 0
    successes = failures = 0
    best = -math.inf
    for i, value in enumerate(scores):
        improved = math.isfinite(value) and value > best
        if improved:
            best = value
        if i < max(n_startup, start + 1):
            # The startup points, and the first point after a restart, set the bar.
            continue
        if improved:
            successes, failures = successes + 1, 0
            if successes == success_tolerance:
                radius, successes = min(radius + 1 if additive else 2 * radius, n_dims), 0
        else:
            successes, failures = 0, failures + 1
            if failures == fail_tol:
                radius, failures = (radius - 1 if additive else radius // 2), 0
                if radius < 1:
                    radius, start, restarts = first, i + 1, restarts + 1
                    best = -math.inf
    return TrustRegion(radius=radius, start=start, n_restarts=restarts)


def locate_region(
    scores: Sequence[float],
    n_params: Sequence[int],
    incumbents: Sequence[int],
    n_startup: int,
    additive: bool = False,
) -> tuple[TrustRegion, int | None, list[int]]:
    """The trust region after ``scores``, its center and the incumbents inside it.

    The region's size follows the decisions a trial holds (the mean of ``n_params``), not
    the union of all seen: in a conditional space most of the union is inactive in any
    one trial.

    Args:
        scores: The observed scores in order, higher is better.
        n_params: The number of parameters each observed trial holds.
        incumbents: Indices of the best observations, best first.
        n_startup: Random evaluations before the region applies.
        additive: See :func:`replay_trust_region`.

    Returns:
        The region, the index of its center (the best observation since its last restart;
        ``None`` right after a restart), and the incumbents since that restart, the
        center first.
    """
    region = replay_trust_region(
        scores,
        n_dims=round(float(np.mean(n_params))) if len(n_params) else 1,
        n_startup=n_startup,
        additive=additive,
    )
    inside = [i for i in incumbents if i >= region.start]
    if region.start >= len(scores):
        return region, None, inside
    best = inside[0] if inside else max(range(region.start, len(scores)), key=scores.__getitem__)
    return region, best, [best] + [i for i in inside if i != best]


def incumbent_indices(
    Y: torch.Tensor, violation: np.ndarray, n: int, rng: np.random.RandomState
) -> list[int]:
    """Indices of up to ``n`` observed points to search around, best first.

    Only the feasible points (the least violating ones when none is) are searched around:
    the best scores with one objective, a random part of the Pareto front with several.
    """
    least = violation.min()
    candidates = np.flatnonzero(violation == least)
    if Y.shape[1] == 1:
        order = np.argsort(-Y[candidates, 0].numpy(), kind="stable")
        return [int(i) for i in candidates[order[:n]]]
    front = candidates[pareto_front(Y[candidates]).numpy()]
    return [int(i) for i in rng.choice(front, size=min(n, len(front)), replace=False)]


def hamming(a: Mapping[str, Any], b: Mapping[str, Any], names: Sequence[str]) -> int:
    """Decisions among ``names`` on which two assignments differ; a decision active in
    only one of them differs."""
    return sum(a.get(n, _MISSING) != b.get(n, _MISSING) for n in names)


def neighbourhood(
    genome: Mapping[str, Any],
    distributions: Mapping[str, BaseDistribution],
    rng: np.random.RandomState,
    n_numeric: int = 4,
) -> list[Genome]:
    """Every assignment that changes one decision of ``genome``: each other choice of each
    categorical decision, and ``n_numeric`` random moves of each numeric one."""
    out: list[Genome] = []
    for name, value in genome.items():
        dist = distributions.get(name)
        if dist is None:
            continue
        if isinstance(dist, CategoricalDistribution):
            moves = [c for c in dist.choices if c != value or type(c) is not type(value)]
        else:
            moves = [mutate_value(value, dist, rng) for _ in range(n_numeric)]
        for move in moves:
            child = dict(genome)
            child[name] = move
            out.append(child)
    return out


class _Dedup:
    """Tells whether evaluating an assignment would repeat an earlier trial.

    A define-by-run objective asks its parameters in an order fixed by the values asked
    so far. If every parameter of an evaluated trial has the same value in a candidate,
    running the candidate retraces that trial exactly, whatever else the candidate holds
    (such as decisions a mutation made inactive). So a candidate repeats a trial when
    the trial's assignment is a subset of it. Candidates known to hold exactly their
    active parameters (``exact=True``) only need the cheaper test for equality.
    """

    def __init__(
        self,
        excluded: Sequence[Hashable],
        exact: bool,
        key: Callable[[Mapping[str, Any]], Hashable] | None = None,
    ) -> None:
        self._exact = exact
        self._key = key or genome_key
        self._keys = set(excluded)
        # Keys grouped by their (sorted) parameter names.
        # (Without exact, the keys are genome keys.)
        self._by_names: dict[tuple[str, ...], set[Hashable]] = {}
        for item in excluded if not exact else ():
            assert isinstance(item, tuple)
            self._by_names.setdefault(tuple(name for name, _ in item), set()).add(item)
        # Candidates share few parameter sets; remember which groups each one contains.
        self._subsets: dict[frozenset[str], list[tuple[str, ...]]] = {}

    def __contains__(self, genome: Mapping[str, Any]) -> bool:
        if self._exact:
            return self._key(genome) in self._keys
        names = frozenset(genome)
        groups = self._subsets.get(names)
        if groups is None:
            groups = [group for group in self._by_names if names.issuperset(group)]
            self._subsets[names] = groups
        return any(
            tuple((n, genome[n]) for n in group) in self._by_names[group] for group in groups
        )


_MISSING = object()


class _History:
    """The observed assignments, indexed to find the first one that extends a candidate.

    A template extends a candidate when it has more parameters and agrees with the
    candidate on all of the candidate's. Templates are grouped by their parameter names;
    within a group, the templates' values on the candidate's names are hashed once per
    set of names, so a lookup costs a dictionary access per group rather than a scan of
    every template.
    """

    def __init__(self, templates: Sequence[Mapping[str, Any]]) -> None:
        self._templates = templates
        self._groups: dict[frozenset[str], list[int]] = {}
        for i, template in enumerate(templates):
            self._groups.setdefault(frozenset(template), []).append(i)
        # (group, candidate's names) -> the candidate's values -> first template index.
        self._projections: dict[tuple[frozenset[str], tuple[str, ...]], dict[tuple, int]] = {}

    def first_extension(self, genome: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The first template (in order) that extends ``genome``, or ``None``."""
        names = tuple(sorted(genome))
        values = tuple(genome[n] for n in names)
        first: int | None = None
        for group, members in self._groups.items():
            if len(group) <= len(names) or not group.issuperset(names):
                continue
            projection = self._projections.get((group, names))
            if projection is None:
                projection = {}
                for i in members:
                    projection.setdefault(tuple(self._templates[i][n] for n in names), i)
                self._projections[(group, names)] = projection
            found = projection.get(values)
            if found is not None and (first is None or found < first):
                first = found
        return None if first is None else self._templates[first]


def _extend_from_history(
    genome: Genome,
    history: _History,
    distributions: Mapping[str, BaseDistribution],
    rng: np.random.RandomState,
) -> Genome:
    """Adds the parameters an assignment will activate, as far as the trials tell.

    Without the space, a candidate may lack a parameter its objective asks for: a
    structural decision changed, and the objective draws the newly active parameter at
    random, possibly into an assignment already evaluated. When an observed assignment
    holds every value of the candidate and more, the objective run on the candidate
    asks for at least one of those further parameters (it retraces that trial up to the
    first of them), so they are drawn here, where duplicates can still be weeded out.
    """
    genome = dict(genome)
    for _ in range(len(distributions)):
        extension = history.first_extension(genome)
        if extension is None:
            break
        for name in extension:
            if name not in genome and name in distributions:
                genome[name] = sample_value(distributions[name], rng)
    return genome


def search_candidates(
    score: Callable[[list[Genome]], np.ndarray],
    incumbents: Sequence[Mapping[str, Any]],
    templates: Sequence[Mapping[str, Any]],
    distributions: Mapping[str, BaseDistribution],
    excluded: Sequence[Hashable],
    rng: np.random.RandomState,
    *,
    sample_fresh: Callable[[np.random.RandomState], Genome] | None = None,
    complete: Callable[[np.random.RandomState, Genome], Genome] | None = None,
    n_random: int = 128,
    n_neighbors: int = 16,
    n_parents: int = 4,
    n_rounds: int = 3,
    key: Callable[[Mapping[str, Any]], Hashable] | None = None,
    center: Mapping[str, Any] | None = None,
    radius: int | None = None,
    avoid: Mapping[str, Any] | None = None,
    avoid_radius: int = 0,
) -> Genome | None:
    """The best-scoring new assignment found by local search plus random sampling.

    With ``center`` and ``radius`` the search stays inside a trust region: only
    assignments within ``radius`` changed decisions of ``center`` (see :func:`hamming`)
    are scored. It starts from the whole one-decision neighbourhood of the center
    (:func:`neighbourhood`), ``n_random`` random points of the region and the incumbents'
    mutations that fall in it, and climbs from the ``n_parents`` best candidates through
    their whole neighbourhoods in the region, for up to ``n_rounds`` rounds. Without them:

    1. Random candidates: ``n_random`` assignments keep the active parameters of a random
       template (an observed assignment) and draw every value afresh; ``n_random`` more
       come from ``sample_fresh`` when it is given.
    2. Neighbours: ``n_neighbors`` mutations of each incumbent, changing one or two
       decisions.
    3. Hill climbing: up to ``n_rounds`` times, the ``n_parents`` best candidates so far
       spawn ``n_neighbors`` mutations each; the search stops early when a round finds
       nothing better.

    Every candidate passes through ``complete`` (when given) and is dropped when it would
    repeat an assignment of ``excluded`` (see :class:`_Dedup`) or was scored already.

    Args:
        score: Maps a list of assignments to their acquisition values (higher is better).
        incumbents: Observed assignments to search around, best first.
        templates: Observed assignments whose active parameters random candidates reuse.
        distributions: The distribution of every parameter, by name.
        excluded: Keys (:func:`~optuna_nas.samplers._genome.genome_key`) of the
            assignments of all trials, finished or running.
        rng: Random generator.
        sample_fresh: Draws a random assignment of the whole space, or ``None``.
        complete: Maps ``(rng, candidate)`` to exactly the parameters the candidate makes
            active, drawing newly activated ones at random; ``None`` keeps candidates as
            they are.
        n_random: Random candidates from templates, and again from ``sample_fresh``.
        n_neighbors: Mutations per incumbent or parent.
        n_parents: Parents per hill-climbing round.
        n_rounds: Most hill-climbing rounds.
        key: Maps a completed candidate to the key ``excluded`` holds, such as a
            canonicalizer that equivalent assignments share; by default
            :func:`~optuna_nas.samplers._genome.genome_key`. Needs ``complete``.
        center: The trust region's center, an observed assignment, or ``None``.
        radius: The trust region's radius in changed decisions; needs ``center``.
        avoid: An assignment whose surroundings are left out, or ``None``: a restarted
            trust region looks for a new center away from the old best.
        avoid_radius: Candidates within this many changed decisions of ``avoid`` are
            left out.

    Returns:
        The best new assignment, or ``None`` when every candidate was excluded.
    """
    if (center is None) != (radius is None):
        raise ValueError("search_candidates: center and radius go together")
    names = list(distributions)
    if key is not None and complete is None:
        raise ValueError("search_candidates: key needs complete, which makes candidates exact")
    dedup = _Dedup(excluded, exact=complete is not None, key=key)
    history = _History(templates)
    seen: set[GenomeKey] = set()
    pool: list[Genome] = []
    plans: list[Genome] = []  # pool[i] with every other known decision drawn too
    values: list[float] = []

    def add(candidates: list[Genome]) -> None:
        fresh, fresh_plans = [], []
        for genome in candidates:
            if center is not None and hamming(genome, center, names) > (radius or 0):
                continue
            if avoid is not None and hamming(genome, avoid, names) <= avoid_radius:
                continue
            if complete is not None:
                genome = complete(rng, genome)
                plan = genome
            else:
                genome = _extend_from_history(genome, history, distributions, rng)
                # What the trials do not tell is drawn here rather than by the objective,
                # so the repeat test sees the whole architecture; the model scores the
                # candidate as the trials' activity patterns describe it.
                plan = dict(genome)
                for name, dist in distributions.items():
                    if name not in plan:
                        plan[name] = sample_value(dist, rng)
            key = genome_key(plan)
            if key in seen or plan in dedup:
                continue
            seen.add(key)
            fresh.append(genome)
            fresh_plans.append(plan)
        if fresh:
            pool.extend(fresh)
            plans.extend(fresh_plans)
            values.extend(-math.inf if math.isnan(v) else float(v) for v in score(fresh))

    def neighbours(parent: Mapping[str, Any]) -> list[Genome]:
        known = {k: v for k, v in parent.items() if k in distributions}
        return [
            mutate(known, distributions, rng, n_mutations=1 + int(rng.rand() < 0.5))
            for _ in range(n_neighbors)
        ]

    initial: list[Genome] = []
    if center is not None:
        known = {k: v for k, v in center.items() if k in distributions}
        initial.extend(neighbourhood(known, distributions, rng))
        for _ in range(n_random):
            changes = 1 + rng.randint(max(1, radius or 1))
            initial.append(mutate(known, distributions, rng, n_mutations=changes))
    else:
        for _ in range(n_random if templates else 0):
            template = templates[rng.randint(len(templates))]
            initial.append(
                {k: sample_value(distributions[k], rng) for k in template if k in distributions}
            )
        if sample_fresh is not None:
            initial.extend(sample_fresh(rng) for _ in range(n_random))
    for incumbent in incumbents:
        initial.extend(neighbours(incumbent))
    add(initial)

    for _ in range(n_rounds):
        if not pool:
            break
        best = max(values)
        parents = np.argsort(values)[::-1][:n_parents]
        if center is not None:
            children = [
                child
                for i in parents
                for child in neighbourhood(
                    {k: v for k, v in pool[int(i)].items() if k in distributions},
                    distributions,
                    rng,
                )
            ]
        else:
            children = [child for i in parents for child in neighbours(pool[int(i)])]
        add(children)
        if max(values) <= best:
            break
    if not pool:
        return None
    return plans[int(np.argmax(values))]
