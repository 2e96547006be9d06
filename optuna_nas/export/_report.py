"""A study report: Markdown with plots and architecture drawings, for people and papers."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from optuna_nas import _keys

if TYPE_CHECKING:
    import optuna
    from matplotlib.figure import Figure

REPORT_FORMATS = ("png", "svg")
"""Image formats :func:`write_report` can draw its plots in."""


@dataclass(frozen=True)
class _Point:
    number: int
    state: str
    value: float | None
    seconds: float | None
    n_params: float | None
    test: float | None
    steps: int


def write_report(
    study: optuna.Study,
    folder: str | os.PathLike[str],
    *,
    top: int = 5,
    image_format: str = "png",
) -> Path:
    """Writes ``report.md`` with its plots and drawings into ``folder``.

    The report holds:

    * the settings the study was created with, and its trials by state;
    * the best value found against trials and against wall time (``best_over_trials``,
      ``best_over_time``);
    * validation accuracy against parameters with the Pareto front (``accuracy_vs_params``);
    * the ``top`` architectures, drawn (``arch-trialN.svg``) and listed;
    * the pruner's savings: epochs trained per trial against the budget
      (``pruner_savings``);
    * the retrainings that ``optuna-nas train-best`` recorded.

    Needs matplotlib (``pip install 'optuna-nas[report]'``). A study with several
    objectives is reported on its first.

    Args:
        study: A study made by :func:`optuna_nas.create_study`, or any study of one
            objective (without drawings then).
        folder: Where to write; created if missing. Files of the same names are replaced.
        top: Architectures to draw and list.
        image_format: ``"png"`` or ``"svg"`` for the plots.

    Returns:
        The path of ``report.md``.

    Raises:
        ValueError: For an unknown format, a ``top`` below 1, or a study without a
            finished trial.

    Example:
        .. code-block:: python

            import optuna

            from optuna_nas import export

            # Any study of one objective; optuna_nas studies also get drawings.
            study = optuna.create_study(direction="maximize")
            study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=10)
            export.write_report(study, "report")  # report/report.md and its plots
    """
    if image_format not in REPORT_FORMATS:
        raise ValueError(
            f"image_format must be one of {', '.join(REPORT_FORMATS)}, got {image_format!r}"
        )
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    import matplotlib

    matplotlib.use("Agg")
    import optuna

    points = _points(study)
    finished = [p for p in points if p.value is not None]
    if not finished:
        raise ValueError(
            f"study {study.study_name!r} has no completed trial with a value yet; run a "
            "search first"
        )
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    images = {
        "best_over_trials": _best_figure(finished, maximize, over="trials"),
        "best_over_time": _best_figure(finished, maximize, over="time"),
        "accuracy_vs_params": _params_figure(finished, maximize),
        "pruner_savings": _savings_figure(points, _budget(study, points)),
    }
    written = {}
    for name, figure in images.items():
        if figure is None:
            continue
        path = out / f"{name}.{image_format}"
        figure.savefig(path, dpi=120, bbox_inches="tight")
        matplotlib.pyplot.close(figure)
        written[name] = path.name
    ranked = sorted(
        finished, key=lambda p: (-(p.value or 0) if maximize else (p.value or 0), p.number)
    )
    drawings = _draw(study, ranked[:top], out)
    text = _markdown(study, points, ranked[:top], drawings, written, maximize)
    report = out / "report.md"
    report.write_text(text)
    return report


def _points(study: optuna.Study) -> list[_Point]:
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    trials = study.get_trials(deepcopy=False, states=states)
    start = min((t.datetime_start for t in trials if t.datetime_start), default=None)
    points = []
    for t in trials:
        value = t.values[0] if t.state == optuna.trial.TrialState.COMPLETE and t.values else None
        if value is not None and not math.isfinite(value):
            value = None
        seconds = (
            (t.datetime_complete - start).total_seconds()
            if t.datetime_complete and start
            else None
        )
        n_params = _keys.read(t.user_attrs, _keys.N_PARAMS)
        test = _keys.read(t.user_attrs, _keys.TEST_ACCURACY)
        steps = max(t.intermediate_values) + 1 if t.intermediate_values else 0
        points.append(
            _Point(
                t.number,
                t.state.name,
                value,
                seconds,
                float(n_params) if n_params is not None else None,
                float(test) if test is not None else None,
                steps,
            )
        )
    return points


def _budget(study: optuna.Study, points: list[_Point]) -> int:
    training = study.user_attrs.get(_keys.STUDY_TRAINING) or {}
    return int(training.get("epochs") or max((p.steps for p in points), default=0))


def _running_best(values: list[float], maximize: bool) -> list[float]:
    best: list[float] = []
    for v in values:
        best.append(v if not best else (max(best[-1], v) if maximize else min(best[-1], v)))
    return best


def _best_figure(points: list[_Point], maximize: bool, *, over: str) -> Figure | None:
    import matplotlib.pyplot as plt

    if over == "time":
        points = sorted((p for p in points if p.seconds is not None), key=lambda p: p.seconds or 0)
        if not points:
            return None
        scale, unit = (3600.0, "hours") if (points[-1].seconds or 0) > 7200 else (60.0, "minutes")
        x = [(p.seconds or 0) / scale for p in points]
        label = f"wall time since the first trial started ({unit})"
    else:
        points = sorted(points, key=lambda p: p.number)
        x = [p.number for p in points]
        label = "trial number"
    values = [p.value or 0.0 for p in points]
    figure, axes = plt.subplots(figsize=(6, 3.6))
    axes.scatter(x, values, s=12, color="0.6", label="completed trial")
    axes.step(x, _running_best(values, maximize), where="post", color="C0", label="best so far")
    axes.set_xlabel(label)
    axes.set_ylabel("objective value")
    axes.set_title(f"Best value over {over}")
    axes.legend(loc="lower right" if maximize else "upper right")
    axes.grid(alpha=0.3)
    return figure


def _params_figure(points: list[_Point], maximize: bool) -> Figure | None:
    import matplotlib.pyplot as plt

    from optuna_nas.dashboard import pareto_front

    sized = [p for p in points if p.n_params is not None]
    if not sized:
        return None
    costs = [p.n_params or 0.0 for p in sized]
    scores = [(p.value or 0.0) * (1 if maximize else -1) for p in sized]
    front = pareto_front(costs, scores)
    figure, axes = plt.subplots(figsize=(6, 3.6))
    values = [p.value or 0.0 for p in sized]
    axes.scatter(costs, values, s=12, color="0.6", label="completed trial")
    axes.plot(
        [costs[i] for i in front],
        [values[i] for i in front],
        "o-",
        color="C3",
        markersize=4,
        label="Pareto front",
    )
    axes.set_xscale("log")
    axes.set_xlabel("trainable parameters")
    axes.set_ylabel("objective value")
    axes.set_title("Objective against model size")
    axes.legend(loc="lower right" if maximize else "upper right")
    axes.grid(alpha=0.3, which="both")
    return figure


def _savings_figure(points: list[_Point], budget: int) -> Figure | None:
    import matplotlib.pyplot as plt

    if not points or budget < 1:
        return None
    points = sorted(points, key=lambda p: p.number)
    figure, axes = plt.subplots(figsize=(6, 3.6))
    colors = ["C2" if p.state == "COMPLETE" else "C1" for p in points]
    axes.bar([p.number for p in points], [p.steps for p in points], color=colors, width=0.9)
    axes.axhline(
        budget, color="0.3", linestyle="--", linewidth=1, label=f"budget ({budget} epochs)"
    )
    axes.bar([], [], color="C2", label="completed")
    axes.bar([], [], color="C1", label="pruned")
    axes.set_xlabel("trial number")
    axes.set_ylabel("epochs trained")
    axes.set_title(f"Pruner savings: {100 * _saved(points, budget):.0f}% of the epoch budget")
    axes.legend(loc="lower right")
    return figure


def _saved(points: list[_Point], budget: int) -> float:
    if not points or budget < 1:
        return 0.0
    return 1.0 - sum(min(p.steps, budget) for p in points) / (len(points) * budget)


def _draw(study: optuna.Study, ranked: list[_Point], out: Path) -> dict[int, tuple[str, str]]:
    """The ranked trials' architectures, drawn as SVG files: the file's name and the
    architecture's text, by trial number (none for a study of another origin)."""
    from optuna_nas.spaces import Architecture, create

    spec = study.user_attrs.get(_keys.STUDY_SPACE)
    if not spec:
        return {}
    space = create(spec["space"], **spec.get("config", {}))
    trials = study.get_trials(deepcopy=False)
    drawings = {}
    for point in ranked:
        try:
            arch = Architecture.from_trial(trials[point.number], space)
        except (KeyError, ValueError):
            continue
        name = f"arch-trial{point.number}.svg"
        (out / name).write_text(arch.to_svg())
        drawings[point.number] = (name, str(arch))
    return drawings


def _markdown(
    study: optuna.Study,
    points: list[_Point],
    ranked: list[_Point],
    drawings: dict[int, tuple[str, str]],
    images: dict[str, str],
    maximize: bool,
) -> str:

    attrs = study.user_attrs
    spec = attrs.get(_keys.STUDY_SPACE) or {}
    dataset = (attrs.get(_keys.STUDY_DATASET) or {}).get("name", "?")
    sampler = (attrs.get(_keys.STUDY_SAMPLER) or {}).get("name", type(study.sampler).__name__)
    pruner = (attrs.get(_keys.STUDY_PRUNER) or {}).get("name", type(study.pruner).__name__)
    budget = _budget(study, points)
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    best = ranked[0]
    lines = [
        f"# Study report: {study.study_name}",
        "",
        f"- Space: `{spec.get('space', '?')}` {spec.get('config', {})}",
        f"- Dataset: {dataset}",
        f"- Sampler: {sampler}; pruner: {pruner}; {budget} epochs per trial",
        "- Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())),
        f"- Best: trial {best.number}, value {best.value:.4f}"
        + (f", test accuracy {best.test:.4f}" if best.test is not None else ""),
        f"- Direction: {'maximize' if maximize else 'minimize'}"
        + (" (first of several objectives)" if len(study.directions) > 1 else ""),
        "",
        "## Best found",
        "",
    ]
    for name, caption in (
        ("best_over_trials", "Best value over trials"),
        ("best_over_time", "Best value over wall time"),
    ):
        if name in images:
            lines += [f"![{caption}]({images[name]})", ""]
    if "accuracy_vs_params" in images:
        lines += [
            "## Accuracy against parameters",
            "",
            "![Objective against parameters, with the Pareto front]"
            f"({images['accuracy_vs_params']})",
            "",
        ]
    lines += [
        f"## Top {len(ranked)} architectures",
        "",
        "| rank | trial | value | test accuracy | params | architecture |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for rank, point in enumerate(ranked, 1):
        text = drawings[point.number][1] if point.number in drawings else "?"
        test = f"{point.test:.4f}" if point.test is not None else "-"
        params = f"{point.n_params:,.0f}" if point.n_params is not None else "-"
        lines.append(
            f"| {rank} | {point.number} | {point.value:.4f} | {test} | {params} | "
            f"`{_cell(text)}` |"
        )
    lines.append("")
    for point in ranked:
        if point.number in drawings:
            lines += [
                f"Trial {point.number}:",
                "",
                f"![Trial {point.number}]({drawings[point.number][0]})",
                "",
            ]
    finished = [p for p in points if p.state in ("COMPLETE", "PRUNED")]
    lines += [
        "## Pruner savings",
        "",
        f"{len(finished)} finished trials trained {sum(min(p.steps, budget) for p in finished)} "
        f"of the {len(finished) * budget} epochs a full run of each would take: "
        f"{100 * _saved(finished, budget):.1f}% saved by pruning "
        f"({sum(p.state == 'PRUNED' for p in finished)} trials pruned).",
        "",
    ]
    if "pruner_savings" in images:
        lines += [f"![Epochs trained per trial]({images['pruner_savings']})", ""]
    from optuna_nas.study import retrained

    records = retrained(study)
    if records:
        lines += [
            "## Retrained",
            "",
            "| trial | dataset | size | width | epochs | test accuracy | params | FLOPs |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in records:
            config = r["architecture"].get("config", {})
            size = ", ".join(f"{k}={v}" for k, v in sorted(config.items()) if isinstance(v, int))
            lines.append(
                f"| {r['trial']} | {_cell(r['dataset'])} | {size} | {r['width_multiplier']:g} | "
                f"{r['epochs']} | {r['test_accuracy']:.4f} | {r['n_params']:,} | {r['flops']:,} |"
            )
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a ``|`` would end the cell, even in code."""
    return text.replace("|", "\\|")
