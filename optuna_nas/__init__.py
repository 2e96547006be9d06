"""optuna-nas: neural architecture search as a drop-in Optuna plugin."""

from __future__ import annotations

from optuna_nas import spaces
from optuna_nas.spaces import Architecture

__version__ = "0.1.0"

__all__ = ["Architecture", "__version__", "spaces"]
