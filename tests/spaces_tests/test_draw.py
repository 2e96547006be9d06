from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from optuna_nas import spaces
from optuna_nas.spaces import draw_architecture

SVG = "{http://www.w3.org/2000/svg}"

SPACES = [
    ("chain", {}),
    ("chain", {"ops": ["dense", "identity"]}),
    ("multibranch", {"max_layers": 5}),
    ("nb201", {}),
    ("darts", {}),
    ("hierarchical", {}),
]


def _texts(svg: str) -> list[str]:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return [el.text or "" for el in root.iter(f"{SVG}text")]


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    width, height = float(root.attrib["width"]), float(root.attrib["height"])
    assert width > 0 and height > 0
    assert root.attrib["viewBox"] == f"0 0 {root.attrib['width']} {root.attrib['height']}"
    return root


@pytest.mark.parametrize(("name", "config"), SPACES)
def test_every_space_draws_valid_svg_with_its_title(name: str, config: dict) -> None:
    space = spaces.create(name, **config)
    rng = np.random.RandomState(0)
    for _ in range(15):
        arch = space.from_params(space.sample_params(rng))
        svg = draw_architecture(arch)
        root = _parse(svg)
        assert root.find(f"{SVG}title").text == str(arch)
        assert arch.to_svg() == svg
        # No scripts or external references: the dashboard shows it in an <img>.
        assert "<script" not in svg and "href" not in svg


def test_chain_is_a_stack_of_layer_boxes_in_order() -> None:
    space = spaces.create("chain")
    arch = space.from_params(
        {
            "n_layers": 3,
            "layer0/op": "conv",
            "layer0/filters": 32,
            "layer0/kernel_size": 5,
            "layer0/stride": 2,
            "layer0/dilation": 1,
            "layer1/op": "pool",
            "layer1/pool_type": "max",
            "layer1/kernel_size": 3,
            "layer1/stride": 2,
            "layer2/op": "identity",
        }
    )
    texts = _texts(arch.to_svg())
    assert texts[0] == "chain: 3 layers"
    stack = texts[1:]
    assert stack == [
        "input",
        "L0: conv 5, 32 filters, stride 2, dilation 1",
        "L1: max pool 3, stride 2",
        "L2: identity",
        "global average pool + linear",
    ]


def test_multibranch_draws_one_arc_per_skip_and_names_the_merge() -> None:
    space = spaces.create("multibranch", max_layers=3)
    params = {"n_layers": 3}
    for i in range(3):
        params[f"layer{i}/op"] = "identity"
    params |= {
        "layer1/skip_input": True,
        "layer1/merge": "sum",
        "layer2/skip_input": True,
        "layer2/skip0": True,
        "layer2/merge": "concat",
    }
    arch = space.from_params(params)
    svg = arch.to_svg()
    texts = _texts(svg)
    assert "sum of in, L0" in texts
    assert "concat of in, L0, L1" in texts
    root = ET.fromstring(svg)
    # Four straight arrows down the stack plus three skip arcs (cubic paths).
    arcs = [p for p in root.iter(f"{SVG}path") if " C" in p.attrib["d"]]
    assert len(arcs) == 3


def test_nb201_cell_labels_every_edge_but_none() -> None:
    space = spaces.create("nb201")
    cell = (
        "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_1x1~1|skip_connect~2|"
    )
    texts = _texts(space.from_nb201_string(cell).to_svg())
    edge_labels = [t for t in texts if t in space.ops]
    assert sorted(edge_labels) == sorted(
        ["nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_1x1", "skip_connect"]
    )
    assert [t for t in texts if t in {"0", "1", "2", "3"}] == ["0", "1", "2", "3"]


def test_darts_draws_both_cells_with_eight_edges_each() -> None:
    space = spaces.create("darts")
    arch = space.from_params(space.sample_params(np.random.RandomState(3)))
    genotype = arch.genotype
    texts = _texts(arch.to_svg())
    assert any(t.startswith("normal cell") for t in texts)
    assert any(t.startswith("reduction cell") for t in texts)
    ops = [op for cell in (genotype.normal, genotype.reduce) for node in cell for op, _ in node]
    drawn = [t for t in texts if t in space.ops]
    assert sorted(drawn) == sorted(op for op in ops if op != "none")
    assert texts.count("c_{k}") == 2


def test_hierarchical_draws_the_cell_and_each_used_motif() -> None:
    space = spaces.create("hierarchical", num_motifs=3)
    arch = space.from_params(space.sample_params(np.random.RandomState(5)))
    genotype = arch.genotype
    texts = _texts(arch.to_svg())
    used = [m for m, rows in enumerate(genotype.motifs) if rows is not None]
    assert used
    assert [t for t in texts if t.startswith("motif") and "level" in t] == [
        f"motif{m} (level 2)" for m in used
    ]
    cell_edges = [op for row in genotype.cell for op in row if op != "none"]
    assert sorted(t for t in texts if t in {f"motif{m}" for m in range(3)}) == sorted(cell_edges)
