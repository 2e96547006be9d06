"""The latent posterior of a fitted GP at many candidates, for scoring them one at a time.

BoTorch evaluates an acquisition function on ``b x q x d`` inputs through GPyTorch's
generic prediction path. For ``qLogNoisyExpectedImprovement`` each of the ``b``
candidates is stacked with the ``k`` observed points it is compared against, so the
kernel between test and training points is computed ``k + 1`` times per candidate: an
``O(b k n d)`` cost that dominates a plan at a thousand trials (BoTorch's own source
marks it as a to-do). Scoring candidates one at a time (``q = 1``) needs only each
candidate's marginal and its covariance with the ``k`` baseline points, which one
Cholesky factor of the training covariance gives in ``O(b n d + b n k)``.

:class:`LatentPosterior` holds that factor for one ``SingleTaskGP`` (or
``MixedSingleTaskGP``) with a constant mean and a ``Standardize`` outcome transform, and
computes BoTorch's analytic ``LogExpectedImprovement`` and its Monte Carlo
``qLogNoisyExpectedImprovement`` (``q = 1``, no constraints) from it. Both are checked
against BoTorch in the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from optuna_nas._compat import log_ei_from_z

if TYPE_CHECKING:
    from botorch.models import SingleTaskGP


class LatentPosterior:
    """The noise-free posterior of a fitted GP, factored once for many candidate batches.

    Values are in the model's standardized units inside, and in the outcome's own units
    in what the methods return.

    Args:
        model: A fitted GP in eval mode with a constant mean, Gaussian noise and,
            optionally, a ``Standardize`` outcome transform.
    """

    def __init__(self, model: SingleTaskGP) -> None:
        from linear_operator.utils.cholesky import psd_safe_cholesky

        self.model = model
        with torch.no_grad():
            self.train_X = model.train_inputs[0]
            self.constant = model.mean_module(self.train_X[:1])[0]
            noise = model.likelihood.noise.expand(self.train_X.shape[0])
            K = model.covar_module(self.train_X).to_dense() + torch.diag(noise)
            self.L = psd_safe_cholesky(K)
            residual = (model.train_targets - self.constant).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(residual, self.L)
        transform = getattr(model, "outcome_transform", None)
        self.shift, self.scale = 0.0, 1.0
        if transform is not None:
            self.shift = float(transform.means.squeeze())
            self.scale = float(transform.stdvs.squeeze())

    def _prior_variance(self, X: torch.Tensor) -> torch.Tensor:
        # In chunks: some kernels (BoTorch's CategoricalKernel) form the whole matrix to
        # take its diagonal.
        return torch.cat([self.model.covar_module(c, diag=True) for c in X.split(256)])

    def _solve(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardized posterior means of ``X`` and ``L^-1 K(train, X)`` (``n x b``)."""
        Kx = self.model.covar_module(X, self.train_X).to_dense()
        mean = self.constant + (Kx @ self.alpha).squeeze(-1)
        return mean, torch.linalg.solve_triangular(self.L, Kx.T, upper=False)

    def mean_variance(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and variance of each of the ``b x d`` inputs, in outcome units."""
        with torch.no_grad():
            mean, V = self._solve(X)
            variance = (self._prior_variance(X) - (V * V).sum(0)).clamp_min(1e-12)
        return mean * self.scale + self.shift, variance * self.scale**2

    def contenders(self, X: torch.Tensor, n_sigma: float = 5.0) -> torch.Tensor:
        """Whether each of ``b`` inputs could be the best of them: its posterior mean plus
        ``n_sigma`` standard deviations reaches the largest mean minus as many."""
        mean, variance = self.mean_variance(X)
        spread = n_sigma * variance.sqrt()
        return mean + spread >= (mean - spread).max()

    def log_expected_improvement(
        self, X: torch.Tensor, best_f: float, batch_size: int = 1024
    ) -> torch.Tensor:
        """BoTorch's ``LogExpectedImprovement`` over ``best_f`` of each of ``b`` inputs."""
        chunks = []
        for x in X.split(batch_size):
            mean, variance = self.mean_variance(x)
            sigma = variance.sqrt()
            chunks.append(log_ei_from_z((mean - best_f) / sigma) + sigma.log())
        return torch.cat(chunks) if chunks else torch.empty(0, dtype=X.dtype)

    def noisy_log_expected_improvement(
        self,
        X: torch.Tensor,
        X_baseline: torch.Tensor,
        n_mc_samples: int = 64,
        seed: int = 0,
        batch_size: int = 1024,
    ) -> torch.Tensor:
        """BoTorch's ``qLogNoisyExpectedImprovement`` of each of ``b`` inputs on its own.

        For every quasi-Monte Carlo draw of the joint posterior of ``X_baseline`` and a
        candidate, the improvement is the candidate's value minus the best baseline value
        of that draw; the result is the log of the mean of its fat-tailed softplus, with
        BoTorch's temperature. The baseline draws are shared by all candidates (common
        random numbers), so candidates are compared on the same scenarios.

        Args:
            X: ``b x d`` candidates.
            X_baseline: ``k x d`` points to improve on: the observed points likely to be
                the best (see BoTorch's ``prune_inferior_points``), and pending ones.
            n_mc_samples: Quasi-Monte Carlo draws.
            seed: Seed of the scrambled Sobol sequence.
            batch_size: Candidates at a time; bounds the ``batch_size x n`` covariance.

        Returns:
            ``b`` log values; higher is better.

        References:
            Ament, Daulton, Eriksson, Balandat and Bakshy, "Unexpected Improvements to
            Expected Improvement for Bayesian Optimization", NeurIPS 2023.
        """
        from botorch.acquisition.logei import TAU_RELU
        from botorch.utils.safe_math import log_fatplus, logmeanexp
        from botorch.utils.sampling import draw_sobol_normal_samples
        from linear_operator.utils.cholesky import psd_safe_cholesky

        k = X_baseline.shape[0]
        with torch.no_grad():
            Z = draw_sobol_normal_samples(k + 1, n_mc_samples, dtype=X.dtype, seed=seed)
            Z_base, Z_new = Z[:, :k], Z[:, k]
            mean_b, W = self._solve(X_baseline)
            cov_b = self.model.covar_module(X_baseline).to_dense() - W.T @ W
            L_b = psd_safe_cholesky(cov_b)
            best = (mean_b + Z_base @ L_b.T).amax(-1)
            chunks = []
            for x in X.split(batch_size):
                mean, V = self._solve(x)
                variance = self._prior_variance(x) - (V * V).sum(0)
                cross = self.model.covar_module(x, X_baseline).to_dense() - V.T @ W
                A = torch.linalg.solve_triangular(L_b, cross.T, upper=False)
                rest = (variance - (A * A).sum(0)).clamp_min(1e-12).sqrt()
                f = mean + Z_base @ A + Z_new.unsqueeze(-1) * rest
                improvement = (f - best.unsqueeze(-1)) * self.scale
                chunks.append(logmeanexp(log_fatplus(improvement, tau=TAU_RELU), dim=0))
        return torch.cat(chunks) if chunks else torch.empty(0, dtype=X.dtype)
