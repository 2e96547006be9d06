from __future__ import annotations

import csv
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch

from optuna_nas import spaces
from optuna_nas.spaces import Architecture, CellSpace, DARTSGenotype, DARTSSpace, NB201Space

NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
DARTS_OPS = [
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
]
NB201_PARAMS = {"node1/in0", "node2/in0", "node2/in1", "node3/in0", "node3/in1", "node3/in2"}
DARTS_PARAMS = {
    f"{cell}/node{k}/{field}"
    for cell in ("normal", "reduce")
    for k in range(4)
    for field in ("inputs", "op0", "op1")
    if k or field != "inputs"
}


def _nb201_string(ops: tuple[str, ...]) -> str:
    """Writes the benchmark's format independently of the code under test."""
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def test_registry_names_and_base_class() -> None:
    assert {"nb201", "darts"} <= set(spaces.available())
    assert isinstance(spaces.create("nb201"), NB201Space)
    assert isinstance(spaces.create("darts", layers=3), DARTSSpace)
    assert issubclass(NB201Space, CellSpace) and issubclass(DARTSSpace, CellSpace)
    assert spaces.create("nb201").config == {"channels": 16, "cells_per_stage": 5}
    assert spaces.create("darts").config == {"channels": 16, "layers": 8}


def test_all_nb201_strings_round_trip() -> None:
    space = NB201Space(channels=4, cells_per_stage=1)
    strings = {_nb201_string(ops) for ops in itertools.product(NB201_OPS, repeat=6)}
    assert len(strings) == 5**6 == 15_625
    archs = set()
    for s in strings:
        arch = space.from_nb201_string(s)
        assert space.to_nb201_string(arch) == s
        assert set(arch.param_dict) == NB201_PARAMS
        again = Architecture.from_dict(arch.to_dict())
        assert again == arch
        assert space.to_nb201_string(again) == s
        archs.add(arch)
    assert len(archs) == 15_625


def test_nb201_describe_and_genotype() -> None:
    space = NB201Space(channels=4, cells_per_stage=1)
    s = (
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
        "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    )
    arch = space.from_nb201_string(f"  {s}\n")
    assert arch.genotype == (
        "nor_conv_3x3",
        "nor_conv_3x3",
        "avg_pool_3x3",
        "skip_connect",
        "nor_conv_3x3",
        "skip_connect",
    )
    assert arch.param_dict["node2/in1"] == "avg_pool_3x3"
    assert space.to_nb201_string(arch.genotype) == s
    assert str(arch) == f"nb201:{s}"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "nor_conv_3x3",
        "|nor_conv_3x3~0|",
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|+|none~0|",
        "|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~1|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~1|none~0|+|none~0|none~1|none~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|",
        "|none~0|+|none~0|none~1|none~2|+|none~0|none~1|none~2|",
        "none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|none~0|+|none~0||none~1|+|none~0|none~1|none~2|",
        None,
        12,
    ],
)
def test_bad_nb201_strings_raise(bad: object) -> None:
    with pytest.raises(ValueError, match=r"format is '\|op~0\|\+\|op~0\|op~1\|"):
        NB201Space().from_nb201_string(bad)  # type: ignore[arg-type]


def test_to_nb201_string_rejects_other_inputs() -> None:
    space = NB201Space()
    with pytest.raises(ValueError, match="six op names"):
        space.to_nb201_string(("none",) * 5)
    with pytest.raises(ValueError, match="six op names"):
        space.to_nb201_string(("none",) * 5 + ("conv",))
    darts_arch = DARTSSpace(layers=3).suggest(optuna.create_study().ask())
    with pytest.raises(ValueError, match="'nb201' space"):
        space.to_nb201_string(darts_arch)


def _run_random_study(
    space: CellSpace, expected_params: set[str], check_genotype: Callable[[Any], None]
) -> set[str]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    distributions: dict[str, optuna.distributions.BaseDistribution] = {}
    seen_ops: set[str] = set()
    for number in range(200):
        trial = study.ask()
        arch = space.suggest(trial)
        assert set(trial.params) == expected_params
        assert arch.param_dict == trial.params
        for name, dist in trial.distributions.items():
            assert distributions.setdefault(name, dist) == dist, name
        seen_ops.update(v for v in trial.params.values() if v in space.ops)
        check_genotype(arch.genotype)
        shapes = [(3, 8, 8)] + ([(1, 40), (40,)] if number % 20 == 0 else [])
        for shape in shapes:
            model = arch.build(shape, num_classes=5)
            with torch.no_grad():
                assert model(torch.randn(2, *shape)).shape == (2, 5)
        study.tell(trial, 0.0)
    return seen_ops


def test_nb201_random_trials_build_with_only_active_params() -> None:
    def check(genotype: tuple[str, ...]) -> None:
        assert len(genotype) == 6 and set(genotype) <= set(NB201_OPS)

    space = NB201Space(channels=4, cells_per_stage=1)
    assert _run_random_study(space, NB201_PARAMS, check) == set(NB201_OPS)


def test_darts_random_trials_build_with_distinct_inputs() -> None:
    def check(genotype: DARTSGenotype) -> None:
        for cell in (genotype.normal, genotype.reduce):
            assert len(cell) == 4
            for k, ((op0, a), (op1, b)) in enumerate(cell):
                assert 0 <= a < b <= k + 1
                assert op0 in DARTS_OPS and op1 in DARTS_OPS

    space = DARTSSpace(channels=4, layers=3)
    assert _run_random_study(space, DARTS_PARAMS, check) == set(DARTS_OPS)


def test_darts_input_pairs_are_fixed_lists() -> None:
    trial = optuna.create_study().ask()
    DARTSSpace(layers=3).suggest(trial)
    dists = trial.distributions
    assert dists["normal/node1/inputs"].choices == ("0,1", "0,2", "1,2")  # type: ignore[attr-defined]
    assert len(dists["reduce/node2/inputs"].choices) == 6  # type: ignore[attr-defined]
    assert len(dists["reduce/node3/inputs"].choices) == 10  # type: ignore[attr-defined]
    assert dists["normal/node0/op1"].choices == tuple(DARTS_OPS)  # type: ignore[attr-defined]


def test_nb201_without_edges_into_last_node_still_runs() -> None:
    space = NB201Space(channels=4, cells_per_stage=2)
    arch = space.from_nb201_string(
        "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|none~0|none~1|none~2|"
    )
    for shape in [(3, 8, 8), (1, 40), (40,)]:
        model = arch.build(shape, num_classes=3)
        out = model(torch.randn(4, *shape))
        assert out.shape == (4, 3) and torch.isfinite(out).all()
        out.sum().backward()


@pytest.mark.parametrize("shape", [(3, 7, 7), (1, 5, 9), (2, 3), (1, 1), (5,)])
@pytest.mark.parametrize("name", ["nb201", "darts"])
def test_tiny_and_odd_inputs_pass_both_reductions(name: str, shape: tuple[int, ...]) -> None:
    space = spaces.create(name, channels=2, **({"layers": 3} if name == "darts" else {}))
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3)).ask()
    model = space.suggest(trial).build(shape, num_classes=4)
    assert model(torch.randn(2, *shape)).shape == (2, 4)


def test_nb201_skeleton_matches_benchmark_param_counts(nb201_dir: Path) -> None:
    root = nb201_dir
    with open(root / "nb201_cifar10.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {row["arch"] for row in rows} == {
        _nb201_string(ops) for ops in itertools.product(NB201_OPS, repeat=6)
    }
    space = NB201Space()  # the benchmark's C=16, N=5
    for index in (0, 1, 2, 3, 6111, 15624):
        row = rows[index]
        ours = space.from_nb201_string(row["arch"]).count_params((3, 32, 32), 10)
        assert ours == pytest.approx(float(row["params_m"]) * 1e6, rel=0.02), row["arch"]


def test_darts_network_matches_paper_param_count() -> None:
    # The cells DARTS (second order) found on CIFAR-10, written as this space's parameters.
    cells = {
        "normal": [
            ("0,1", "sep_conv_3x3", "sep_conv_3x3"),
            ("0,1", "sep_conv_3x3", "sep_conv_3x3"),
            ("0,1", "skip_connect", "sep_conv_3x3"),
            ("0,2", "skip_connect", "dil_conv_3x3"),
        ],
        "reduce": [
            ("0,1", "max_pool_3x3", "max_pool_3x3"),
            ("1,2", "max_pool_3x3", "skip_connect"),
            ("0,2", "max_pool_3x3", "skip_connect"),
            ("1,2", "max_pool_3x3", "skip_connect"),
        ],
    }
    params = {}
    for cell, nodes in cells.items():
        for k, (pair, op0, op1) in enumerate(nodes):
            if k:
                params[f"{cell}/node{k}/inputs"] = pair
            params[f"{cell}/node{k}/op0"] = op0
            params[f"{cell}/node{k}/op1"] = op1
    arch = DARTSSpace(channels=36, layers=20).from_params(params)
    # The paper's Table 1 lists 3.3M parameters.
    assert arch.count_params((3, 32, 32), 10) == pytest.approx(3.3e6, rel=0.02)
    assert str(arch).startswith("darts:normal=|sep_conv_3x3~0|sep_conv_3x3~1|+")


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("nb201", {"channels": 0}),
        ("nb201", {"cells_per_stage": -1}),
        ("nb201", {"channels": 8.0}),
        ("nb201", {"cells_per_stage": True}),
        ("darts", {"layers": 0}),
        ("darts", {"channels": "16"}),
    ],
)
def test_invalid_config_is_rejected(name: str, kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"pass a positive integer|must be int, got"):
        spaces.create(name, **kwargs)


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid argument for space 'darts'"):
        spaces.create("darts", cells_per_stage=2)
