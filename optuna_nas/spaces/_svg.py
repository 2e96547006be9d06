"""Drawings of architectures as self-contained SVG documents.

Chains and multi-branch networks are drawn as a vertical stack of layer boxes, with skip
connections as arcs beside the stack; cell-based spaces (NAS-Bench-201, DARTS,
hierarchical) as directed graphs whose nodes are feature maps and whose edges carry the
operation's name. The output is plain SVG 1.1 with no scripts or external references, so
optuna-dashboard can preview it as an ``image/svg+xml`` artifact and a browser can open it
as a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape, quoteattr

if TYPE_CHECKING:
    from optuna_nas.spaces._base import Architecture
    from optuna_nas.spaces._cell import DARTSGenotype
    from optuna_nas.spaces._hierarchical import HierarchicalGenotype
    from optuna_nas.spaces._layers import LayerSpec
    from optuna_nas.spaces._multibranch import BranchLayer

_FONT_SIZE = 12
_CHAR_WIDTH = 7.2  # average advance of a 12 px sans-serif glyph, for layout only
_PAD = 16
_BOX_HEIGHT = 30
_NODE_HEIGHT = 28
_ARC_STEP = 24  # apex height of a graph edge per node it skips

# Fill and stroke per family of operation: convolutions blue, pooling green, identities
# grey, dense layers purple, motifs orange.
_STYLES = {
    "conv": ("#dbe8f6", "#3b6ea5"),
    "pool": ("#dcf0dc", "#3d8b3d"),
    "skip": ("#eeeeee", "#777777"),
    "dense": ("#e9def4", "#7453a3"),
    "motif": ("#fde6cf", "#c06a15"),
    "plain": ("#ffffff", "#444444"),
}


def draw_architecture(arch: Architecture) -> str:
    """Draws ``arch`` as an SVG document.

    * ``chain``: a stack of layer boxes from the input to the classifier.
    * ``multibranch``: the same stack, with an arc for every skip connection and the merge
      (``sum`` or ``concat``) written in the box of the layer that reads several inputs.
    * ``nb201``: the cell as a graph of four nodes whose edges are labelled with their
      operations; ``none`` edges are left out.
    * ``darts``: the normal and the reduction cell, each with its two inputs, four
      intermediate nodes and the output that concatenates them (dashed edges).
    * ``hierarchical``: the cell, whose edges name motifs, and below it every motif it uses,
      whose edges name primitives.

    Architectures of other registered spaces get a single box with their description.

    Args:
        arch: The architecture, e.g. from :meth:`optuna_nas.spaces.SearchSpace.suggest` or
            :meth:`optuna_nas.Architecture.from_trial`.

    Returns:
        A standalone SVG document (UTF-8 text) with a ``<title>`` holding ``str(arch)``.

    Example:
        .. code-block:: python

            from pathlib import Path
            from optuna_nas import spaces

            space = spaces.create("nb201")
            arch = space.from_nb201_string(
                "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
                "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
            )
            Path("cell.svg").write_text(spaces.draw_architecture(arch))
    """
    space = arch.get_space()
    drawing = space.drawing(space.decode(arch.param_dict))
    return _document(str(arch), drawing.title, drawing.settings, drawing.panels)


@dataclass(frozen=True)
class Drawing:
    """What :func:`draw_architecture` draws for one architecture; each space makes its own
    in :meth:`~optuna_nas.spaces.SearchSpace.drawing`.

    Attributes:
        title: The heading, e.g. ``"nb201 cell"``.
        settings: The skeleton the cell is repeated in, or ``""``.
        panels: The pictures, side by side.
    """

    title: str
    panels: list[Panel]
    settings: str = ""


@dataclass
class Panel:
    """A drawing in local coordinates, ``(0, 0)`` to ``(width, height)``."""

    width: float
    height: float
    items: list[str] = field(default_factory=list)


def _text_width(text: str, size: float = _FONT_SIZE) -> float:
    return len(text) * _CHAR_WIDTH * size / _FONT_SIZE


def _text(x: float, y: float, text: str, *, size: float = _FONT_SIZE, **attrs: str) -> str:
    extra = "".join(f" {k.replace('_', '-')}={quoteattr(v)}" for k, v in attrs.items())
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" '
        f'dominant-baseline="central"{extra}>{escape(text)}</text>'
    )


def _style(label: str) -> tuple[str, str]:
    if label.startswith("motif"):
        return _STYLES["motif"]
    for family in ("conv", "pool", "dense"):
        if family in label:
            return _STYLES[family]
    if label.startswith(("skip", "identity")):
        return _STYLES["skip"]
    return _STYLES["plain"]


def _box(x: float, y: float, w: float, h: float, label: str, style_of: str) -> str:
    fill, stroke = _style(style_of)
    return (
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" '
        f'fill="{fill}" stroke="{stroke}"/>'
    ) + _text(x + w / 2, y + h / 2, label, text_anchor="middle")


def _arrow(path: str, *, dashed: bool = False, color: str = "#555555") -> str:
    dash = ' stroke-dasharray="5,4"' if dashed else ""
    return (
        f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.3"{dash} '
        'marker-end="url(#arrow)"/>'
    )


def _layer_label(spec: LayerSpec) -> str:
    if spec.op in ("conv", "sepconv"):
        name = "conv" if spec.op == "conv" else "sep conv"
        return (
            f"{name} {spec.kernel_size}, {spec.filters} filters, stride {spec.stride}, "
            f"dilation {spec.dilation}"
        )
    if spec.op == "pool":
        return f"{spec.pool_type} pool {spec.kernel_size}, stride {spec.stride}"
    if spec.op == "dense":
        return f"dense {spec.units} + ReLU"
    return spec.op


def _stack_panel(
    labels: Sequence[tuple[str, str]],
    skips: Sequence[tuple[int, int]] = (),
    merges: dict[int, str] | None = None,
) -> Panel:
    """Boxes top to bottom, each feeding the next; ``skips`` are extra ``(from, to)`` box
    index pairs drawn as arcs on the right, ``merges`` a second text line per box."""
    merges = merges or {}
    width = max(
        [220.0]
        + [_text_width(text) + 24 for text, _ in labels]
        + [_text_width(text, 11) + 24 for text in merges.values()]
    )
    gap = 22.0
    tops, y = [], 0.0
    for i in range(len(labels)):
        tops.append(y)
        y += _BOX_HEIGHT + (14 if i in merges else 0) + gap
    heights = [_BOX_HEIGHT + (14 if i in merges else 0) for i in range(len(labels))]
    items: list[str] = []
    for i, (label, op) in enumerate(labels):
        fill, stroke = _style(op)
        items.append(
            f'<rect x="0" y="{tops[i]:.1f}" width="{width:.1f}" height="{heights[i]:.1f}" '
            f'rx="5" fill="{fill}" stroke="{stroke}"/>'
        )
        if i in merges:
            items.append(_text(width / 2, tops[i] + 14, label, text_anchor="middle"))
            items.append(
                _text(
                    width / 2,
                    tops[i] + 30,
                    merges[i],
                    size=11,
                    text_anchor="middle",
                    fill="#8a3b12",
                )
            )
        else:
            items.append(_text(width / 2, tops[i] + heights[i] / 2, label, text_anchor="middle"))
        if i:
            items.append(_arrow(f"M{width / 2:.1f},{tops[i] - gap:.1f} V{tops[i] - 2:.1f}"))
    # Longer skips go further out so that arcs nest instead of crossing.
    reach = 0.0
    for source, target in sorted(skips, key=lambda s: s[1] - s[0]):
        out = 16 + 14 * (target - source)
        reach = max(reach, out)
        # Leave below a box's middle and arrive above it, so arcs in and out stay apart.
        y0 = tops[source] + heights[source] / 2 + 6
        y1 = tops[target] + heights[target] / 2 - 6
        items.append(
            _arrow(
                f"M{width:.1f},{y0:.1f} C{width + out:.1f},{y0:.1f} "
                f"{width + out:.1f},{y1:.1f} {width + 3:.1f},{y1:.1f}",
                color="#8a3b12",
            )
        )
    return Panel(width + reach + 4, y - gap, items)


def chain_panel(layers: Sequence[LayerSpec], head: str) -> Panel:
    labels = [("input", "plain")]
    labels += [(f"L{i}: {_layer_label(s)}", s.op) for i, s in enumerate(layers)]
    labels.append((head, "plain"))
    return _stack_panel(labels)


def multibranch_panel(layers: Sequence[BranchLayer], head: str) -> Panel:
    labels = [("input", "plain")]
    labels += [
        (f"L{i}: {_layer_label(layer.spec)}", layer.spec.op) for i, layer in enumerate(layers)
    ]
    labels.append((head, "plain"))
    # Box 0 is the input, box i + 1 is layer i; the previous output is the straight arrow.
    skips = [(j + 1, i + 1) for i, layer in enumerate(layers) for j in layer.inputs[:-1]]
    merges = {
        i + 1: f"{layer.merge} of " + ", ".join("in" if j < 0 else f"L{j}" for j in layer.inputs)
        for i, layer in enumerate(layers)
        if layer.merge is not None
    }
    return _stack_panel(labels, skips, merges)


def box_panel(text: str) -> Panel:
    width = _text_width(text) + 24
    return Panel(width, _BOX_HEIGHT, [_box(0, 0, width, _BOX_HEIGHT, text, "plain")])


def _graph_panel(
    title: str,
    nodes: Sequence[str],
    edges: Sequence[tuple[int, int, str]],
    dashed: Sequence[tuple[int, int]] = (),
) -> Panel:
    """Nodes left to right; an edge ``(from, to, op)`` is a straight labelled arrow between
    neighbours, and an arc (above for even spans, below for odd) otherwise."""
    edges = [e for e in edges if e[2] != "none"]
    node_w = [max(28.0, _text_width(n) + 14) for n in nodes]
    longest = max((_text_width(op) for _, _, op in edges), default=40.0)
    spacing = max(node_w) + longest + 28
    spans = [abs(b - a) for a, b, _ in edges] + [abs(b - a) for a, b in dashed]
    up = max((s for s in spans if s > 1 and s % 2 == 0), default=0) * _ARC_STEP
    down = max((s for s in spans if s > 1 and s % 2 == 1), default=0) * _ARC_STEP
    top = 20 + up + (10 if up else 0)
    cy = top + _NODE_HEIGHT / 2
    xs = [_PAD + max(node_w) / 2 + k * spacing for k in range(len(nodes))]
    items = [_text(0, 8, title, size=13, font_weight="bold")]

    def curve(a: int, b: int, is_dashed: bool, color: str) -> tuple[float, float]:
        span = abs(b - a)
        sign = -1.0 if span % 2 == 0 else 1.0
        apex = 0.0 if span == 1 else sign * span * _ARC_STEP
        mx = (xs[a] + xs[b]) / 2
        ctrl_y = cy + 2 * apex
        x0, y0 = _leave(xs[a], cy, node_w[a] / 2, mx, ctrl_y)
        x1, y1 = _leave(xs[b], cy, node_w[b] / 2, mx, ctrl_y, gap=3)
        items.append(
            _arrow(
                f"M{x0:.1f},{y0:.1f} Q{mx:.1f},{ctrl_y:.1f} {x1:.1f},{y1:.1f}",
                dashed=is_dashed,
                color=color,
            )
        )
        return mx, cy + apex

    for a, b in dashed:
        curve(a, b, True, "#999999")
    labels = []
    for a, b, op in edges:
        mx, my = curve(a, b, False, _style(op)[1])
        labels.append((mx, my, op))
    for mx, my, op in labels:
        w = _text_width(op) + 8
        fill, stroke = _style(op)
        items.append(
            f'<rect x="{mx - w / 2:.1f}" y="{my - 9:.1f}" width="{w:.1f}" height="18" rx="3" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="0.8"/>'
        )
        items.append(_text(mx, my, op, size=11, text_anchor="middle"))
    for x, w, name in zip(xs, node_w, nodes, strict=True):
        items.append(
            f'<rect x="{x - w / 2:.1f}" y="{top:.1f}" width="{w:.1f}" height="{_NODE_HEIGHT}" '
            'rx="14" fill="#ffffff" stroke="#222222" stroke-width="1.4"/>'
        )
        items.append(_text(x, cy, name, text_anchor="middle", font_weight="bold"))
    width = xs[-1] + max(node_w) / 2 + _PAD
    return Panel(max(width, _text_width(title, 13)), cy + _NODE_HEIGHT / 2 + down + 12, items)


def _leave(
    x: float, y: float, half_w: float, tx: float, ty: float, gap: float = 0.0
) -> tuple[float, float]:
    """Where the segment from a node's centre ``(x, y)`` towards ``(tx, ty)`` crosses the
    node's border, moved ``gap`` further out."""
    dx, dy = tx - x, ty - y
    half_h = _NODE_HEIGHT / 2
    scale = min(half_w / abs(dx) if dx else float("inf"), half_h / abs(dy) if dy else float("inf"))
    norm = (dx * dx + dy * dy) ** 0.5 or 1.0
    return x + dx * scale + gap * dx / norm, y + dy * scale + gap * dy / norm


def nb201_panel(ops: Sequence[str]) -> Panel:
    from optuna_nas.nn._cells import NB201_EDGES

    edges = [(j, i, op) for op, (i, j) in zip(ops, NB201_EDGES, strict=True)]
    return _graph_panel("cell (node 0: input, node 3: output)", ["0", "1", "2", "3"], edges)


def darts_panels(genotype: DARTSGenotype) -> list[Panel]:
    panels = []
    for name, nodes in (("normal cell", genotype.normal), ("reduction cell", genotype.reduce)):
        labels = ["c_{k-2}", "c_{k-1}", *(str(k) for k in range(len(nodes))), "c_{k}"]
        edges = [(source, k + 2, op) for k, node in enumerate(nodes) for op, source in node]
        concat = [(k + 2, len(labels) - 1) for k in range(len(nodes))]
        panels.append(_graph_panel(f"{name} (output: concatenation)", labels, edges, concat))
    return panels


def _dag_edges(rows: Sequence[Sequence[str]]) -> list[tuple[int, int, str]]:
    return [(j, i, op) for i, row in enumerate(rows, start=1) for j, op in enumerate(row)]


def hierarchical_panels(genotype: HierarchicalGenotype) -> list[Panel]:
    cell_nodes = [str(k) for k in range(len(genotype.cell) + 1)]
    panels = [_graph_panel("cell (level 3)", cell_nodes, _dag_edges(genotype.cell))]
    for m, rows in enumerate(genotype.motifs):
        if rows is not None:
            nodes = [str(k) for k in range(len(rows) + 1)]
            panels.append(_graph_panel(f"motif{m} (level 2)", nodes, _dag_edges(rows)))
    return panels


def _document(description: str, title: str, settings: str, panels: Sequence[Panel]) -> str:
    y = 34.0
    body = []
    for panel in panels:
        body.append(f'<g transform="translate({_PAD},{y:.1f})">' + "".join(panel.items) + "</g>")
        y += panel.height + 24
    footer_y = y - 6
    width = max(
        _text_width(title, 15) + 2 * _PAD,
        _text_width(settings, 11) + 2 * _PAD,
        *(p.width + 2 * _PAD for p in panels),
    )
    height = footer_y + 18
    head = [_text(_PAD, 18, title, size=15, font_weight="bold")]
    if settings:
        head.append(_text(_PAD, footer_y, settings, size=11, fill="#666666"))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" version="1.1" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">'
        f"<title>{escape(description)}</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#555555"/></marker></defs>'
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#ffffff"/>'
        + "".join(head)
        + "".join(body)
        + "</svg>\n"
    )
