"""NAS-Bench-201 as a tabular Optuna objective: a table lookup in place of training.

The tables hold, for each of the 15,625 cells of the NB201 space, the accuracies and the
training time the benchmark recorded. An objective that looks them up turns a search that
would cost GPU-days into one that takes seconds on a CPU, so samplers can be compared over
many seeds.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from optuna_nas import _keys
from optuna_nas.spaces import Architecture, NB201Space

if TYPE_CHECKING:
    import optuna

NB201_DIR_ENV = "OPTUNA_NAS_NB201_DIR"
"""Environment variable naming the folder of the NAS-Bench-201 tables."""

DATASETS = ("cifar10", "cifar100", "imagenet16-120")
"""The datasets the benchmark has a table for."""

PROTOCOLS = ("A", "B")
"""``A``: the NB201 paper's (12-epoch reward, simulated time budget); ``B``: 200-epoch reward."""

NB201_SIZE = 15_625
"""Number of cells in the NAS-Bench-201 space (5 ops on 6 edges)."""

_INT_COLUMNS = frozenset(
    {"arch_index", "iso_class", "iso_rep_index", "n_seeds_nats", "params_record_mismatch"}
)
_REQUIRED_COLUMNS = (
    "arch_index",
    "arch",
    "valid_acc",
    "test_acc",
    "valid_acc_12ep",
    "train_time_200ep_s",
    "train_time_12ep_s_approx",
)

_BUILD_HINT = (
    "; to build the tables from the NATS-Bench release (NATS-tss-v1_0-3ffb9-simple), run "
    "`python -m optuna_nas.benchmarks.convert_nats <release folder> <out folder>` "
    "(needs `pip install nats_bench`)"
)

Row = dict[str, Any]
"""One table row: column name to value (``str`` arch, ``int`` ids, ``float`` or ``None``)."""


def resolve_nb201_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the NAS-Bench-201 tables: ``root``, else ``$OPTUNA_NAS_NB201_DIR``.

    Args:
        root: A folder holding ``nb201_<dataset>.csv``; ``None`` reads the environment.

    Raises:
        FileNotFoundError: If neither names a folder; the message says how to set either.
    """
    if root is None:
        env = os.environ.get(NB201_DIR_ENV)
        if not env:
            raise FileNotFoundError(
                "no NAS-Bench-201 tables given; pass root=... (the CLI's --nb201-dir) or set "
                f"{NB201_DIR_ENV} to the folder holding nb201_cifar10.csv" + _BUILD_HINT
            )
        root = env
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(
            f"NAS-Bench-201 folder {str(path)!r} does not exist; pass root=... (the CLI's "
            f"--nb201-dir) or set {NB201_DIR_ENV} to the folder holding nb201_cifar10.csv"
            + _BUILD_HINT
        )
    return path


def _parse(column: str, text: str) -> Any:
    if column == "arch":
        return text
    if text == "":
        return None
    return int(text) if column in _INT_COLUMNS else float(text)


@dataclass(frozen=True)
class _Table:
    rows: tuple[Row, ...]
    index: dict[str, int]

    def column(self, name: str) -> np.ndarray:
        return np.array(
            [math.nan if row[name] is None else row[name] for row in self.rows], dtype=float
        )


@functools.cache
def _read_table(path: str) -> _Table:
    # Read once per process: every NASBench201 on the same file shares the parsed rows.
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(
                f"{path} lacks the columns {missing}; it is not a NAS-Bench-201 table as "
                "described in its README (columns arch_index, arch, valid_acc, test_acc, ...)"
            )
        rows = tuple({k: _parse(k, v) for k, v in record.items()} for record in reader)
    index = {row["arch"]: i for i, row in enumerate(rows)}
    if len(rows) != NB201_SIZE or len(index) != NB201_SIZE:
        raise ValueError(
            f"{path} has {len(rows)} rows and {len(index)} distinct archs, expected "
            f"{NB201_SIZE} of each; the file is truncated or not a NAS-Bench-201 table"
        )
    return _Table(rows, index)


class NASBench201:
    """NAS-Bench-201 as an Optuna objective over the ``nb201`` cell space.

    Calling it with a trial suggests a cell through :meth:`NB201Space.suggest
    <optuna_nas.spaces.NB201Space.suggest>` (the six ``node{i}/in{j}`` decisions, nothing
    else), looks the cell up in the benchmark's table and returns its reward, to maximize:

    * protocol ``"A"``, the NB201 paper's: the validation accuracy after the 12-epoch
      schedule (``valid_acc_12ep``; on CIFAR-10 the ``cifar10-valid`` split), each query
      charging the simulated cost ``train_time_12ep_s_approx``, the 12-epoch share of the
      recorded 200-epoch training time. The paper's searches stop at 12,000 simulated seconds,
      which :func:`~optuna_nas.benchmarks.run_nb201` applies.
    * protocol ``"B"``: the final 200-epoch validation accuracy (``valid_acc``), charging
      ``train_time_200ep_s``; searches stop after a number of queries.

    The trial's user attributes record ``test_acc`` (the 200-epoch test accuracy, the metric
    to report; never the reward), ``simulated_seconds`` (the cost charged) and ``arch`` (the
    NB201 arch string), besides the space spec and architecture JSON that
    :meth:`~optuna_nas.spaces.SearchSpace.suggest` stores. Accuracies are in percent.

    The tables are read once per process and shared by every instance on the same file.

    Args:
        dataset: ``cifar10``, ``cifar100`` or ``imagenet16-120``.
        root: Folder holding ``nb201_<dataset>.csv``; by default ``$OPTUNA_NAS_NB201_DIR``.
        protocol: ``"A"`` or ``"B"``, as above.

    Raises:
        ValueError: For an unknown dataset or protocol, or a malformed table.
        FileNotFoundError: If the folder or table is missing; the message names ``root``
            and ``$OPTUNA_NAS_NB201_DIR``.

    References:
        Dong and Yang, "NAS-Bench-201: Extending the Scope of Reproducible Neural
        Architecture Search", ICLR 2020 (the space, the tables and protocol A).

        Ying, Klein, Real, Christiansen, Murphy and Hutter, "NAS-Bench-101: Towards
        Reproducible Neural Architecture Search", ICML 2019 (tabular benchmarks).

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.benchmarks import NASBench201

            # The tables' folder: root=..., or OPTUNA_NAS_NB201_DIR as here.
            bench = NASBench201("cifar10", protocol="A")
            study = optuna.create_study(direction="maximize")
            study.optimize(bench, n_trials=50)
            best = study.best_trial
            print(best.user_attrs["optuna_nas:bench_arch"], best.value)
            print("optimum test accuracy:", bench.optimum_test())
    """

    _REWARD: ClassVar[dict[str, str]] = {"A": "valid_acc_12ep", "B": "valid_acc"}
    _COST: ClassVar[dict[str, str]] = {"A": "train_time_12ep_s_approx", "B": "train_time_200ep_s"}
    test_column: ClassVar[str] = "test_acc"
    """The reported metric: final 200-epoch test accuracy."""

    def __init__(
        self,
        dataset: str = "cifar10",
        root: str | os.PathLike[str] | None = None,
        protocol: str = "A",
    ) -> None:
        if dataset not in DATASETS:
            raise ValueError(
                f"unknown NAS-Bench-201 dataset {dataset!r}; choose one of: {', '.join(DATASETS)}"
            )
        if protocol not in PROTOCOLS:
            raise ValueError(
                f"unknown protocol {protocol!r}; choose A (12-epoch reward, simulated time "
                "budget) or B (200-epoch reward, fixed number of queries)"
            )
        path = resolve_nb201_dir(root) / f"nb201_{dataset}.csv"
        if not path.is_file():
            raise FileNotFoundError(
                f"NAS-Bench-201 table {str(path)!r} not found; pass root=... (the CLI's "
                f"--nb201-dir) or set {NB201_DIR_ENV} to the folder holding nb201_{dataset}.csv"
                + _BUILD_HINT
            )
        self.dataset = dataset
        self.protocol = protocol
        self.path = path.resolve()
        self.space = NB201Space()
        self._table = _read_table(str(self.path))

    @property
    def reward_column(self) -> str:
        """The column the objective returns: ``valid_acc_12ep`` (A) or ``valid_acc`` (B)."""
        return self._REWARD[self.protocol]

    @property
    def cost_column(self) -> str:
        """The simulated seconds a query charges: 12-epoch (A) or 200-epoch (B) time."""
        return self._COST[self.protocol]

    @property
    def columns(self) -> list[str]:
        """The table's column names."""
        return list(self._table.rows[0])

    def __len__(self) -> int:
        return len(self._table.rows)

    def __repr__(self) -> str:
        return f"NASBench201(dataset={self.dataset!r}, protocol={self.protocol!r})"

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        """Suggests a cell, looks it up and returns its reward; see the class docstring."""
        return self.evaluate(trial, self.space.suggest(trial))

    def evaluate(self, trial: optuna.trial.BaseTrial, arch: Architecture | str) -> float:
        """Looks up a cell already suggested in ``trial`` and returns its reward.

        The trial's user attributes ``test_acc``, ``simulated_seconds`` and ``arch`` are set.
        :meth:`__call__` is ``evaluate(trial, space.suggest(trial))``; the split lets a
        harness time the sampling apart from the lookup.

        Args:
            trial: The trial to record ``test_acc``, ``simulated_seconds`` and ``arch`` in.
            arch: The cell, as an ``nb201`` architecture or an NB201 arch string.
        """
        row = self.query(arch)
        trial.set_user_attr(_keys.BENCH_ARCH, row["arch"])
        trial.set_user_attr(_keys.BENCH_TEST_ACCURACY, row[self.test_column])
        trial.set_user_attr(_keys.BENCH_SIMULATED_SECONDS, row[self.cost_column])
        return float(row[self.reward_column])

    def arch_string(self, arch: Architecture | str) -> str:
        """The NB201 arch string of a cell, validated.

        Raises:
            ValueError: If ``arch`` is not an ``nb201`` architecture or a well-formed string.
        """
        if isinstance(arch, str):
            if arch in self._table.index:
                return arch
            arch = self.space.from_nb201_string(arch)  # raises with the expected format
        return self.space.to_nb201_string(arch)

    def query(self, arch: Architecture | str) -> Row:
        """The table row of a cell: every column, as a new dict.

        Args:
            arch: An NB201 arch string such as ``'|nor_conv_3x3~0|+|nor_conv_3x3~0|'
                'avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'`` (one
                string, split here), or an ``nb201`` architecture.

        Raises:
            ValueError: If ``arch`` is not a cell of the space.
        """
        key = self.arch_string(arch)
        try:
            return dict(self._table.rows[self._table.index[key]])
        except KeyError:
            raise ValueError(
                f"{key!r} is a valid cell but missing from {self.path}; the table is incomplete"
            ) from None

    def reward(self, arch: Architecture | str) -> float:
        """The reward of a cell under this protocol, without a trial."""
        return float(self.query(arch)[self.reward_column])

    def cost(self, arch: Architecture | str) -> float:
        """The simulated seconds a query of this cell charges under this protocol."""
        return float(self.query(arch)[self.cost_column])

    def test_accuracy(self, arch: Architecture | str) -> float:
        """The 200-epoch test accuracy of a cell, the metric to report."""
        return float(self.query(arch)[self.test_column])

    def column(self, name: str) -> np.ndarray:
        """One column over all cells in ``arch_index`` order, as floats (blank cells NaN).

        Raises:
            ValueError: For a column the table lacks or that holds text.
        """
        if name not in self.columns or name == "arch":
            numeric = [c for c in self.columns if c != "arch"]
            raise ValueError(f"no numeric column {name!r}; choose one of: {', '.join(numeric)}")
        return self._table.column(name)

    def optimum_test(self) -> float:
        """The best 200-epoch test accuracy over all cells (94.37 on CIFAR-10)."""
        return float(np.nanmax(self.column(self.test_column)))

    def optimum_reward(self) -> float:
        """The best reward over all cells under this protocol."""
        return float(np.nanmax(self.column(self.reward_column)))

    def best_reward_arch(self) -> str:
        """The cell a search that queried every cell would return: best reward, lowest index.

        Its test accuracy is what a perfect searcher under this protocol would report.
        """
        return str(self._table.rows[int(np.nanargmax(self.column(self.reward_column)))]["arch"])


_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
_FAMILIES = ("none", "skip", "conv", "pool")


class NASBench201Conditional(NASBench201):
    """NAS-Bench-201 written as a conditional space: an operation family per edge, then
    the kernel size only where the family is a convolution.

    The same 15,625 cells and the same protocols as :class:`NASBench201`, asked for the way
    a user who thinks in families would write the objective: for each of the six edges,
    ``edge{k}`` is one of ``none``, ``skip``, ``conv`` and ``pool``, and only when it is
    ``conv``, ``edge{k}/kernel`` is ``1`` or ``3`` (``nor_conv_1x1`` or ``nor_conv_3x3``).
    A cell thus holds six to twelve parameters, and samplers that model only the
    parameters every trial has see little. The user attributes are those of
    :class:`NASBench201`.

    Args:
        dataset: ``cifar10``, ``cifar100`` or ``imagenet16-120``.
        root: Folder holding ``nb201_<dataset>.csv``; by default ``$OPTUNA_NAS_NB201_DIR``.
        protocol: ``"A"`` or ``"B"``, as in :class:`NASBench201`.
    """

    _OPERATION: ClassVar[dict[str, str]] = {
        "none": "none",
        "skip": "skip_connect",
        "pool": "avg_pool_3x3",
        "conv1": "nor_conv_1x1",
        "conv3": "nor_conv_3x3",
    }

    def __repr__(self) -> str:
        return f"NASBench201Conditional(dataset={self.dataset!r}, protocol={self.protocol!r})"

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        """Suggests a cell family by family, looks it up and returns its reward."""
        ops = []
        for k in range(len(_EDGES)):
            family = str(trial.suggest_categorical(f"edge{k}", _FAMILIES))
            if family == "conv":
                family += str(trial.suggest_categorical(f"edge{k}/kernel", (1, 3)))
            ops.append(self._OPERATION[family])
        nodes = [
            "|"
            + "|".join(f"{op}~{j}" for op, (i, j) in zip(ops, _EDGES, strict=True) if i == node)
            + "|"
            for node in (1, 2, 3)
        ]
        return self.evaluate(trial, "+".join(nodes))
