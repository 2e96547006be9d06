"""Inspecting architecture searches with optuna-dashboard.

Every trial of an :class:`optuna_nas.ArchitectureObjective` already carries what the
dashboard shows: its architecture as JSON and as an SVG drawing (an artifact the dashboard
previews), its learning curve, its size, FLOPs and latency. This module adds study-level
plots and starts the dashboard with the study's artifact store:

* :func:`save_plots` saves custom plots (validation accuracy against parameters and
  against latency, Pareto fronts highlighted) into the study;
* :func:`save_architecture_weights` saves the architecture weights of a gradient search
  (DARTS, GDAS, DrNAS) by epoch as a plot;
* :func:`run_dashboard` serves a storage with optuna-dashboard, as ``optuna-nas dashboard``
  does, and :func:`find_artifact_dir` finds the artifact folder a study recorded.

optuna-dashboard and plotly come with the ``dashboard`` extra:
``pip install "optuna-nas[dashboard]"``.
"""

from __future__ import annotations

from optuna_nas.dashboard._plots import (
    PLOT_IDS,
    PlotRefresher,
    accuracy_figure,
    architecture_weights_figure,
    pareto_front,
    save_architecture_weights,
    save_plots,
)
from optuna_nas.dashboard._server import find_artifact_dir, run_dashboard

__all__ = [
    "PLOT_IDS",
    "PlotRefresher",
    "accuracy_figure",
    "architecture_weights_figure",
    "find_artifact_dir",
    "pareto_front",
    "run_dashboard",
    "save_architecture_weights",
    "save_plots",
]
