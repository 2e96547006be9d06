"""Build the NAS-Bench-201 tables from the official NATS-Bench topology-space release.

:class:`~optuna_nas.benchmarks.NASBench201` reads three CSV files, one per dataset. This
module writes them from the release that NATS-Bench publishes (``NATS-tss-v1_0-3ffb9-simple``,
a folder of one compressed pickle per cell, or the single-file ``...-full`` pickle), through
the ``nats_bench`` package's own API (``pip install nats_bench``), so the tables can be
rebuilt from the source rather than taken on trust.

Every value is the mean over the seeds the release trained (``is_random=False``):

* ``valid_acc`` and ``test_acc``: after the 200-epoch schedule (``hp="200"``). On CIFAR-10,
  ``valid_acc`` is ``cifar10-valid``'s ``x-valid`` split and ``test_acc`` is ``cifar10``'s
  ``ori-test`` (trained on train and valid); on CIFAR-100 and ImageNet16-120 they are the
  ``x-valid`` and ``x-test`` halves of the original test set.
* ``valid_acc_12ep`` and ``test_acc_12ep``: the same splits after the 12-epoch schedule
  (``hp="12"``), the NB201 paper's search reward.
* ``train_time_200ep_s``: the release's ``train-all-time`` after 200 epochs (on CIFAR-10, of
  ``cifar10-valid``); ``train_time_12ep_s_approx`` is its 12/200 share, the cost protocol A
  charges.
* ``params_m`` and ``flops_m``: from ``get_cost_info``.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from optuna_nas.benchmarks._nb201 import DATASETS, NB201_SIZE

COLUMNS = (
    "arch_index",
    "arch",
    "valid_acc",
    "test_acc",
    "valid_acc_12ep",
    "test_acc_12ep",
    "train_time_200ep_s",
    "train_time_12ep_s_approx",
    "params_m",
    "flops_m",
)
"""The columns :func:`convert_nats_tss` writes, in order."""

_INSTALL_HINT = "install the NATS-Bench API with `pip install nats_bench`"

# Our dataset name -> (NATS dataset giving valid_acc and the time, NATS dataset giving test_acc).
_NATS_NAMES = {
    "cifar10": ("cifar10-valid", "cifar10"),
    "cifar100": ("cifar100", "cifar100"),
    "imagenet16-120": ("ImageNet16-120", "ImageNet16-120"),
}


def _open_api(source: Path) -> Any:
    try:
        import nats_bench
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"converting a NATS-Bench release needs its API: {_INSTALL_HINT}"
        ) from exc
    if source.is_dir():
        if not (source / "meta.pickle.pbz2").is_file():
            raise FileNotFoundError(
                f"{str(source)!r} has no meta.pickle.pbz2; point at the unpacked "
                "NATS-tss-v1_0-3ffb9-simple folder of the NATS-Bench release"
            )
        return nats_bench.create(str(source), "tss", fast_mode=True, verbose=False)
    if source.is_file():
        return nats_bench.create(str(source), "tss", fast_mode=False, verbose=False)
    raise FileNotFoundError(
        f"NATS-Bench release {str(source)!r} does not exist; pass the unpacked "
        "NATS-tss-v1_0-3ffb9-simple folder or the NATS-tss-v1_0-3ffb9-full.pickle.pbz2 file"
    )


def _row(api: Any, index: int, dataset: str) -> dict[str, Any]:
    valid_name, test_name = _NATS_NAMES[dataset]
    final_valid = api.get_more_info(index, valid_name, hp="200", is_random=False)
    final_test = api.get_more_info(index, test_name, hp="200", is_random=False)
    early_valid = api.get_more_info(index, valid_name, hp="12", is_random=False)
    early_test = api.get_more_info(index, test_name, hp="12", is_random=False)
    cost = api.get_cost_info(index, test_name, hp="200")
    time_200 = final_valid["train-all-time"]
    return {
        "arch_index": index,
        "arch": api.arch(index),
        "valid_acc": final_valid["valid-accuracy"],
        "test_acc": final_test["test-accuracy"],
        "valid_acc_12ep": early_valid["valid-accuracy"],
        "test_acc_12ep": early_test["test-accuracy"],
        "train_time_200ep_s": time_200,
        "train_time_12ep_s_approx": None if time_200 is None else time_200 * 12 / 200,
        "params_m": cost.get("params"),
        "flops_m": cost.get("flops"),
    }


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def convert_nats_tss(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    datasets: Sequence[str] = DATASETS,
    indexes: Iterable[int] | None = None,
) -> list[Path]:
    """Write ``nb201_<dataset>.csv`` tables from the NATS-Bench topology-space release.

    The output folder is what :class:`~optuna_nas.benchmarks.NASBench201` takes as ``root``
    (or through ``$OPTUNA_NAS_NB201_DIR``). The columns are :data:`COLUMNS`; the module
    docstring says which NATS-Bench split each comes from.

    Args:
        source: The unpacked ``NATS-tss-v1_0-3ffb9-simple`` folder (read lazily, one cell at a
            time) or the ``NATS-tss-v1_0-3ffb9-full.pickle.pbz2`` file.
        out_dir: Folder to write the tables into; created if missing.
        datasets: Which of ``cifar10``, ``cifar100`` and ``imagenet16-120`` to write.
        indexes: Cells to convert; by default every cell of the release (15,625), which is
            what :class:`~optuna_nas.benchmarks.NASBench201` requires.

    Returns:
        The paths written, one per dataset.

    Raises:
        ImportError: If ``nats_bench`` is not installed.
        FileNotFoundError: If ``source`` is neither the release folder nor its file.
        ValueError: For an unknown dataset.

    References:
        Dong, Liu, Musial and Gabrys, "NATS-Bench: Benchmarking NAS Algorithms for
        Architecture Topology and Size", IEEE TPAMI 2021.

    Example:
        .. code-block:: python

            # not run: needs the NATS-Bench release (about 2 GB unpacked)
            from optuna_nas.benchmarks import NASBench201, convert_nats_tss

            convert_nats_tss("~/.torch/NATS-tss-v1_0-3ffb9-simple", "/data/nb201")
            bench = NASBench201("cifar100", root="/data/nb201")
    """
    unknown = [d for d in datasets if d not in _NATS_NAMES]
    if unknown:
        raise ValueError(
            f"unknown NAS-Bench-201 datasets {unknown}; choose from: {', '.join(DATASETS)}"
        )
    api = _open_api(Path(source).expanduser())
    chosen = range(len(api)) if indexes is None else list(indexes)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset in datasets:
        path = out / f"nb201_{dataset}.csv"
        tmp = path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(COLUMNS)
            for index in chosen:
                row = _row(api, index, dataset)
                writer.writerow([_format(row[c]) for c in COLUMNS])
        os.replace(tmp, path)  # a table is either whole or absent
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m optuna_nas.benchmarks.convert_nats``; see :func:`convert_nats_tss`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m optuna_nas.benchmarks.convert_nats",
        description="Write the NAS-Bench-201 tables from the NATS-Bench topology-space release.",
    )
    parser.add_argument("source", help="NATS-tss-v1_0-3ffb9-simple folder or -full.pickle.pbz2")
    parser.add_argument("out_dir", help="folder for nb201_<dataset>.csv")
    parser.add_argument(
        "--dataset", action="append", choices=DATASETS, help="repeat for several (default: all)"
    )
    args = parser.parse_args(argv)
    try:
        paths = convert_nats_tss(args.source, args.out_dir, args.dataset or DATASETS)
    except (ImportError, FileNotFoundError, ValueError) as exc:
        print(f"convert_nats: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    if paths:
        with open(paths[0]) as f:
            n_rows = sum(1 for _ in f) - 1
        if n_rows != NB201_SIZE:
            print(
                f"convert_nats: the release held {n_rows} cells, not {NB201_SIZE}; "
                "NASBench201 needs all of them",
                file=sys.stderr,
            )
            return 1
    return 0
