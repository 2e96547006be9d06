"""Custom plots of an architecture search, saved into the study for optuna-dashboard."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna
    import plotly.graph_objects as go
    from optuna.trial import FrozenTrial

_logger = logging.getLogger(__name__)

PLOT_IDS = {
    "n_params": "optuna-nas-accuracy-vs-params",
    "latency_ms": "optuna-nas-accuracy-vs-latency",
}
"""Graph object id of the plot :func:`save_plots` saves for each cost user attribute;
saving again replaces the plot of the same id."""

_COST_KEYS = {"n_params": _keys.N_PARAMS, "latency_ms": _keys.LATENCY_MS, "flops": _keys.FLOPS}
"""The trial user attribute of each cost a plot can show."""

_COST_LABELS = {
    "n_params": "trainable parameters",
    "latency_ms": "inference latency (ms per batch)",
    "flops": "FLOPs per example",
}


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and score (higher).

    Of several points with the same cost and score only the first is kept. Complexity
    ``O(n log n)``: a sweep over the points sorted by cost.

    Args:
        costs: One cost per point, e.g. parameter counts.
        scores: One score per point, e.g. validation accuracies.

    Returns:
        The front's indices, by increasing cost (hence increasing score).

    Raises:
        ValueError: If the sequences differ in length or hold a NaN.

    Example:
        >>> pareto_front([10, 20, 30, 15], [0.5, 0.7, 0.6, 0.5])
        [0, 1]
    """
    if len(costs) != len(scores):
        raise ValueError(f"got {len(costs)} costs but {len(scores)} scores; pass one per point")
    if any(math.isnan(v) for v in (*costs, *scores)):
        raise ValueError("costs and scores must not be NaN; leave such points out")
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front


def _points(study: optuna.Study, cost: str) -> list[tuple[float, float, str]]:
    """``(cost, valid accuracy, hover text)`` of every completed trial that has ``cost``."""
    import optuna

    from optuna_nas.spaces import Architecture

    points = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        value, spent = trial.value, _keys.read(trial.user_attrs, _COST_KEYS[cost])
        if value is None or not math.isfinite(value):
            continue
        if not isinstance(spent, (int, float)) or isinstance(spent, bool) or not spent > 0:
            continue
        try:
            arch = str(Architecture.from_trial(trial))
        except ValueError:
            arch = ""
        text = f"trial #{trial.number}<br>valid accuracy {value:.4f}<br>{cost} {spent:,g}"
        points.append((float(spent), value, text + (f"<br>{arch}" if arch else "")))
    return points


def accuracy_figure(study: optuna.Study, cost: str = "n_params") -> go.Figure:
    """Validation accuracy of the completed trials against a cost, Pareto front highlighted.

    Each completed trial with a positive numeric ``cost`` user attribute is a point (hover
    shows its number and architecture); the trials that no other trial beats on both
    accuracy and cost are joined by a step line. The cost axis is logarithmic.

    Args:
        study: A study whose trials set ``cost``, e.g. one run with
            :class:`optuna_nas.ArchitectureObjective`.
        cost: A user attribute to minimise: ``n_params``, ``latency_ms`` or ``flops``.

    Returns:
        A :class:`plotly.graph_objects.Figure`; without such trials, an empty one that
        says so.
    """
    import plotly.graph_objects as go

    points = _points(study, cost)
    label = _COST_LABELS.get(cost, cost)
    figure = go.Figure()
    if points:
        xs, ys, texts = zip(*points, strict=True)
        front = pareto_front(xs, ys)
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name="trials",
                text=texts,
                hoverinfo="text",
                marker={"color": "#7f8c9a", "size": 8, "opacity": 0.7},
            )
        )
        figure.add_trace(
            go.Scatter(
                x=[xs[i] for i in front],
                y=[ys[i] for i in front],
                mode="lines+markers",
                line={"shape": "hv", "color": "#d1495b", "width": 2},
                marker={"color": "#d1495b", "size": 11, "symbol": "diamond"},
                name="Pareto front",
                text=[texts[i] for i in front],
                hoverinfo="text",
            )
        )
    else:
        figure.add_annotation(
            text=f"no completed trial with a {cost!r} user attribute yet",
            showarrow=False,
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.5,
        )
    figure.update_layout(
        title=f"Validation accuracy vs {label} ({study.study_name})",
        xaxis={"title": {"text": label}, "type": "log"},
        yaxis={"title": {"text": "validation accuracy"}},
        template="none",  # the default template would add ~8 kB to every saved plot
        legend={"x": 0.99, "y": 0.01, "xanchor": "right", "yanchor": "bottom"},
    )
    return figure


def save_plots(study: optuna.Study) -> list[str]:
    """Saves the custom plots of :func:`accuracy_figure` into ``study`` for optuna-dashboard.

    One plot per cost in :data:`PLOT_IDS` that some completed trial recorded: accuracy
    against parameters and against inference latency. Each is saved under a fixed id with
    :func:`optuna_dashboard.save_plotly_graph_object`, so calling this again (at the end
    of every ``optuna-nas search``, or from a worker) replaces the plots instead of adding
    copies. Let one process at a time call it: the plot is stored in several study system
    attributes, and two writers at once could interleave them.

    Args:
        study: The study to plot and save into.

    Returns:
        The ids of the plots saved; empty while no trial has completed.

    Raises:
        ImportError: If optuna-dashboard or plotly is missing (``pip install
            "optuna-nas[dashboard]"``).
    """
    from optuna_nas.dashboard._server import import_optuna_dashboard

    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ImportError(
            "saving dashboard plots needs plotly; install it with "
            "pip install 'optuna-nas[dashboard]'"
        ) from None
    save_plotly_graph_object = import_optuna_dashboard(
        "saving dashboard plots"
    ).save_plotly_graph_object
    saved = []
    for cost, graph_id in PLOT_IDS.items():
        if _points(study, cost):
            save_plotly_graph_object(study, accuracy_figure(study, cost), graph_object_id=graph_id)
            saved.append(graph_id)
    return saved


def architecture_weights_figure(trial: FrozenTrial) -> go.Figure:
    """The architecture distribution over the epochs of the gradient search behind a trial.

    One panel per searched decision, one line per candidate operation: its probability
    (softmax of DARTS's or GDAS's ``alpha``, DrNAS's Dirichlet mean) after each epoch. A
    run that collapses shows ``skip_connect`` or ``none`` taking over.

    Args:
        trial: A trial that ``optuna-nas oneshot --strategy darts|gdas|drnas|beta-darts`` (or
            :func:`optuna_nas.study.oneshot_search`) derived; it holds the history in its
            ``optuna_nas:architecture_weights`` user attribute.

    Raises:
        ValueError: If the trial holds no such history.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    history = trial.user_attrs.get(_keys.ARCHITECTURE_WEIGHTS)
    if not isinstance(history, dict) or not history.get("epochs"):
        raise ValueError(
            f"trial #{trial.number} holds no architecture weights; only the trial a gradient "
            "search derived does"
        )
    names = list(history["decisions"])
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=names, shared_yaxes=True)
    palette = ("#7f8c9a", "#d1495b", "#edae49", "#00798c", "#30638e", "#66a182", "#8d5a97")
    colors: dict[str, str] = {}
    epochs = history["epoch_numbers"]
    for d, name in enumerate(names):
        for c, op in enumerate(history["decisions"][name]):
            first = op not in colors
            colors.setdefault(op, palette[len(colors) % len(palette)])
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=[snapshot[d][c] for snapshot in history["epochs"]],
                    mode="lines",
                    name=op,
                    legendgroup=op,
                    showlegend=first,
                    line={"color": colors[op]},
                ),
                row=d // columns + 1,
                col=d % columns + 1,
            )
    strategy = trial.user_attrs.get(_keys.ONESHOT_STRATEGY, "gradient search")
    figure.update_layout(
        title=f"Architecture weights of {strategy} by epoch (trial #{trial.number})",
        template="none",
        height=260 * rows,
    )
    figure.update_yaxes(range=[0, 1])
    return figure


def save_architecture_weights(study: optuna.Study, trial: FrozenTrial) -> str:
    """Saves :func:`architecture_weights_figure` of ``trial`` into ``study`` for
    optuna-dashboard, under id ``optuna-nas-architecture-weights-<number>``.

    Returns:
        The graph object id.

    Raises:
        ImportError: If optuna-dashboard or plotly is missing.
        ValueError: If the trial holds no architecture weights.
    """
    from optuna_nas.dashboard._server import import_optuna_dashboard

    save = import_optuna_dashboard("saving dashboard plots").save_plotly_graph_object
    graph_id = f"optuna-nas-architecture-weights-{trial.number}"
    save(study, architecture_weights_figure(trial), graph_object_id=graph_id)
    return graph_id


class PlotRefresher:
    """A study callback that keeps the dashboard's custom plots current.

    After a trial finishes it calls :func:`save_plots` when at least ``every_seconds``
    passed since its last refresh; :meth:`refresh` saves at once, for when a run stops.
    ``optuna-nas search`` and every ``optuna-nas worker`` process use one, so the plots
    are never older than ``every_seconds`` plus one trial, whichever process ran it. A
    refresh that fails is logged and never stops the study; a missing optuna-dashboard
    or plotly is said once per process.

    Args:
        every_seconds: The least time between two refreshes after trials; 0 refreshes
            after every trial.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas import ArchitectureObjective, data, spaces
            from optuna_nas.dashboard import PlotRefresher

            space = spaces.create("chain", max_layers=2)
            objective = ArchitectureObjective(space, data.load("digits"))
            study = optuna.create_study(direction="maximize")
            refresher = PlotRefresher(every_seconds=60)
            try:
                study.optimize(objective, n_trials=2, callbacks=[refresher])
            finally:
                refresher.refresh(study)
    """

    _unavailable_said = False

    def __init__(self, every_seconds: float = 60.0) -> None:
        if not every_seconds >= 0:
            raise ValueError(f"every_seconds must be >= 0, got {every_seconds!r}")
        self.every_seconds = every_seconds
        self._last = -math.inf

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if time.monotonic() - self._last >= self.every_seconds:
            self.refresh(study)

    def refresh(self, study: optuna.Study) -> None:
        """Saves the plots now."""
        self._last = time.monotonic()
        try:
            save_plots(study)
        except ImportError as err:
            if not PlotRefresher._unavailable_said:
                PlotRefresher._unavailable_said = True
                _logger.warning("dashboard plots not saved: %s", err)
        except Exception as err:  # a plot must never stop a search
            _logger.warning("dashboard plots not refreshed: %r", err)
