"""OptunaHub package for :class:`optuna_nas.samplers.RegularizedEvolutionSampler`.

The implementation lives in the ``optuna-nas`` library; this package re-exports it so the
sampler can be loaded with ``optunahub.load_module``.
"""

from optuna_nas.samplers import RegularizedEvolutionSampler

__all__ = ["RegularizedEvolutionSampler"]
