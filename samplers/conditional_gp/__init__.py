"""OptunaHub package for :class:`optuna_nas.samplers.ConditionalGPSampler`.

The implementation lives in the ``optuna-nas`` library; this package re-exports it so the
sampler can be loaded with ``optunahub.load_module``.
"""

from optuna_nas.samplers import ConditionalGPSampler

__all__ = ["ConditionalGPSampler"]
