"""Cheap estimates of an architecture's quality: weight sharing and zero-cost proxies.

:func:`build_supernet` makes one network that holds every architecture of a cell space;
:func:`train_supernet` trains its shared weights by sampled paths (SPOS, or FairNAS's fair
sampling), and :func:`score_architecture` scores any architecture with them in seconds,
after recalibrating its batch norms. :meth:`Supernet.subnet` takes an architecture out as
an ordinary module with its inherited weights.

:func:`zero_cost_score` scores an untrained network on one batch with a proxy from
:data:`PROXIES` (SynFlow, SNIP, grad_norm, NASWOT, Jacobian covariance, ZiCo) or a
baseline (parameters, FLOPs); their rank correlation with stand-alone training is measured
in ``benchmarks/zero_cost.py``. :class:`CombinedScore` averages the one-shot score with a
proxy, each on a robust scale, which ranks better than either alone
(``benchmarks/oneshot_rank.py --proxy``).
"""

from __future__ import annotations

from optuna_nas.oneshot._combined import CombinedScore
from optuna_nas.oneshot._gradient import (
    GRADIENT_METHODS,
    GradientSearchResult,
    gradient_search,
)
from optuna_nas.oneshot._proxies import (
    PROXIES,
    enqueue_best_by_proxy,
    flops,
    grad_norm,
    jacob_cov,
    naswot,
    params,
    proxy_score,
    snip,
    synflow,
    zero_cost_score,
    zico,
)
from optuna_nas.oneshot._rung import EstimateRung
from optuna_nas.oneshot._search import (
    WeightSharingObjective,
    derive_architecture,
    load_supernet,
    save_supernet,
)
from optuna_nas.oneshot._supernet import SUPERNET_SPACES, MixedOp, Supernet, build_supernet
from optuna_nas.oneshot._train import (
    SCORE_METRICS,
    STRATEGIES,
    recalibrate_batch_norm,
    score_architecture,
    train_supernet,
)

__all__ = [
    "CombinedScore",
    "EstimateRung",
    "GRADIENT_METHODS",
    "GradientSearchResult",
    "gradient_search",
    "PROXIES",
    "SCORE_METRICS",
    "STRATEGIES",
    "SUPERNET_SPACES",
    "MixedOp",
    "WeightSharingObjective",
    "derive_architecture",
    "enqueue_best_by_proxy",
    "load_supernet",
    "save_supernet",
    "Supernet",
    "build_supernet",
    "recalibrate_batch_norm",
    "score_architecture",
    "train_supernet",
    "flops",
    "grad_norm",
    "jacob_cov",
    "naswot",
    "params",
    "snip",
    "proxy_score",
    "synflow",
    "zero_cost_score",
    "zico",
]
