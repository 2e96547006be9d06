"""Network building blocks: operations, cells, stems and heads used by the spaces."""

from __future__ import annotations

from optuna_nas.nn._ops import count_params, estimate_flops

__all__ = ["count_params", "estimate_flops"]
