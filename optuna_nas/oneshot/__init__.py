"""Cheap estimates of an architecture's quality: zero-cost proxies.

:func:`zero_cost_score` scores an untrained network on one batch with a proxy from
:data:`PROXIES` (SynFlow, SNIP, grad_norm, NASWOT, Jacobian covariance) or a baseline
(parameters, FLOPs). Their rank correlation with stand-alone training is measured in
``benchmarks/zero_cost.py``.
"""

from __future__ import annotations

from optuna_nas.oneshot._proxies import (
    PROXIES,
    flops,
    grad_norm,
    jacob_cov,
    naswot,
    params,
    snip,
    synflow,
    zero_cost_score,
)

__all__ = [
    "PROXIES",
    "flops",
    "grad_norm",
    "jacob_cov",
    "naswot",
    "params",
    "snip",
    "synflow",
    "zero_cost_score",
]
