"""The NATS-Bench converter, on a three-cell release written in the official layout.

The fixture is built with the ``nats_bench`` package's own result classes and saved as the
release is: a ``NATS-tss-v1_0-3ffb9-simple`` folder of bz2 pickles (``meta`` plus one file
per cell holding ``{hp: ArchResults.state_dict()}``), and the single ``-full`` file.
"""

from __future__ import annotations

import bz2
import csv
import pickle
from pathlib import Path

import pytest

from optuna_nas.benchmarks import NASBench201, convert_nats_tss
from optuna_nas.benchmarks._nats import COLUMNS, main

nats_utils = pytest.importorskip("nats_bench.api_utils")

ARCHS = [
    "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
]
SEEDS = (777, 888)
# (NATS dataset, eval sets it carries): as the release stores them.
EVAL_SETS = {
    "cifar10-valid": ("x-valid", "ori-test"),
    "cifar10": ("ori-test",),
    "cifar100": ("x-valid", "x-test", "ori-test"),
    "ImageNet16-120": ("x-valid", "x-test", "ori-test"),
}
EPOCH_SECONDS = 7.0


def accuracy(index: int, dataset: str, setname: str, hp: str, seed: int) -> float:
    """A distinct, recognizable final accuracy for each (cell, dataset, split, hp, seed)."""
    base = {"cifar10-valid": 80, "cifar10": 85, "cifar100": 60, "ImageNet16-120": 40}[dataset]
    split = {"x-valid": 0.0, "x-test": 1.0, "ori-test": 2.0}[setname]
    return base + 3 * index + split + (0.5 if hp == "200" else 0.0) + (seed - 777) / 1000


def results(index: int, hp: str) -> dict:
    epochs = int(hp)
    arch = nats_utils.ArchResults(index, ARCHS[index])
    for dataset, sets in EVAL_SETS.items():
        for seed in SEEDS:
            count = nats_utils.ResultsCount(
                dataset,
                None,
                {e: 10.0 + e for e in range(epochs)},
                {e: 1.0 for e in range(epochs)},
                0.1 * (index + 1),
                10.0 * (index + 1),
                {"arch_str": ARCHS[index], "channel": 16, "num_cells": 5, "class_num": 10},
                seed,
                epochs,
                None,
            )
            count.update_train_info(
                count.train_acc1es,
                None,
                count.train_losses,
                {e: EPOCH_SECONDS * (index + 1) for e in range(epochs)},
            )
            accs, losses, times = {}, {}, {}
            for name in sets:
                for e in range(epochs):
                    key = f"{name}@{e}"
                    final = accuracy(index, dataset, name, hp, seed)
                    accs[key] = final if e == epochs - 1 else final / 2
                    losses[key] = 1.0
                    times[key] = 0.5
            count.update_eval(accs, losses, times)
            arch.update(dataset, seed, count)
    return arch.state_dict()


def dump(obj: object, path: Path) -> None:
    with bz2.BZ2File(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("nats")
    simple = root / "NATS-tss-v1_0-3ffb9-simple"
    simple.mkdir()
    dump({"meta_archs": ARCHS}, simple / "meta.pickle.pbz2")
    infos = {i: {hp: results(i, hp) for hp in ("12", "200")} for i in range(len(ARCHS))}
    for i, info in infos.items():
        dump(info, simple / f"{i:06d}.pickle.pbz2")
    full = root / "NATS-tss-v1_0-3ffb9-full.pickle.pbz2"
    dump(
        {"meta_archs": ARCHS, "arch2infos": infos, "evaluated_indexes": list(infos)},
        full,
    )
    return {"simple": simple, "full": full}


def read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def mean_acc(index: int, dataset: str, setname: str, hp: str) -> float:
    return sum(accuracy(index, dataset, setname, hp, s) for s in SEEDS) / len(SEEDS)


@pytest.mark.parametrize("layout", ["simple", "full"])
def test_tables_hold_the_seed_means_of_the_documented_splits(
    release: dict[str, Path], layout: str, tmp_path: Path
) -> None:
    paths = convert_nats_tss(release[layout], tmp_path)
    assert [p.name for p in paths] == [
        "nb201_cifar10.csv",
        "nb201_cifar100.csv",
        "nb201_imagenet16-120.csv",
    ]
    c10 = read(tmp_path / "nb201_cifar10.csv")
    assert list(c10[0]) == list(COLUMNS)
    assert [r["arch"] for r in c10] == ARCHS
    assert [int(r["arch_index"]) for r in c10] == [0, 1, 2]
    for i, row in enumerate(c10):
        assert float(row["valid_acc"]) == pytest.approx(
            mean_acc(i, "cifar10-valid", "x-valid", "200")
        )
        assert float(row["test_acc"]) == pytest.approx(mean_acc(i, "cifar10", "ori-test", "200"))
        assert float(row["valid_acc_12ep"]) == pytest.approx(
            mean_acc(i, "cifar10-valid", "x-valid", "12")
        )
        time_200 = 200 * EPOCH_SECONDS * (i + 1)
        assert float(row["train_time_200ep_s"]) == pytest.approx(time_200)
        assert float(row["train_time_12ep_s_approx"]) == pytest.approx(time_200 * 12 / 200)
        assert float(row["params_m"]) == pytest.approx(0.1 * (i + 1))
    c100 = read(tmp_path / "nb201_cifar100.csv")
    assert float(c100[1]["valid_acc"]) == pytest.approx(mean_acc(1, "cifar100", "x-valid", "200"))
    assert float(c100[1]["test_acc"]) == pytest.approx(mean_acc(1, "cifar100", "x-test", "200"))
    in16 = read(tmp_path / "nb201_imagenet16-120.csv")
    assert float(in16[2]["test_acc_12ep"]) == pytest.approx(
        mean_acc(2, "ImageNet16-120", "x-test", "12")
    )


def test_one_dataset_and_a_subset_of_cells(release: dict[str, Path], tmp_path: Path) -> None:
    paths = convert_nats_tss(release["simple"], tmp_path, datasets=["cifar100"], indexes=[2])
    assert [p.name for p in paths] == ["nb201_cifar100.csv"]
    rows = read(paths[0])
    assert [r["arch"] for r in rows] == [ARCHS[2]]
    assert not list(tmp_path.glob("*.tmp"))


def test_the_benchmark_refuses_a_partial_release(release: dict[str, Path], tmp_path: Path) -> None:
    convert_nats_tss(release["full"], tmp_path, datasets=["cifar10"])
    with pytest.raises(ValueError, match="15625"):
        NASBench201("cifar10", root=tmp_path)


def test_bad_inputs_are_named(release: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown NAS-Bench-201 datasets"):
        convert_nats_tss(release["simple"], tmp_path, datasets=["svhn"])
    with pytest.raises(FileNotFoundError, match="does not exist"):
        convert_nats_tss(tmp_path / "missing", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"meta\.pickle\.pbz2"):
        convert_nats_tss(tmp_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_command_line(
    release: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Three cells are not a whole release: the tables are written, and the exit says so.
    assert main([str(release["simple"]), str(tmp_path), "--dataset", "cifar10"]) == 1
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "nb201_cifar10.csv")
    assert "held 3 cells, not 15625" in err
    assert main([str(tmp_path / "nope"), str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_missing_tables_name_the_converter(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="convert_nats") as info:
        NASBench201("cifar10", root=tmp_path)
    assert "nats_bench" in str(info.value)
