"""NAS-Bench-Graph as a plain Optuna objective: a second tabular benchmark, on graph networks."""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import numpy as np
import optuna

from optuna_nas import _keys

NBG_DATASETS = ("arxiv", "citeseer", "computers", "cora", "cs", "photo", "physics")
"""The datasets whose tables ship inside the ``nas-bench-graph`` package."""

LINKS = ("0000", "0001", "0011", "0012", "0013", "0111", "0112", "0122", "0123")
"""The nine link patterns, as strings: digit ``i`` is the input of layer ``i`` (0: the
cell's input, ``k``: the output of layer ``k``)."""

OPERATIONS = ("gat", "gcn", "gin", "cheb", "sage", "arma", "graph", "fc", "skip")
"""The nine operations of every layer."""


@functools.cache
def _table(dataset: str) -> dict[int, dict[str, float]]:
    try:
        from nas_bench_graph import light_read
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "NAS-Bench-Graph needs the nas-bench-graph package: pip install nas-bench-graph"
        ) from err
    return light_read(dataset)


class NASBenchGraph:
    """NAS-Bench-Graph as an Optuna objective: a cell of four graph layers, looked up.

    Calling it with a trial suggests five categorical parameters, as a user writing their own
    objective would: ``link`` (one of :data:`LINKS`, which earlier layer feeds each layer)
    and ``op0`` to ``op3`` (one of :data:`OPERATIONS` each). The cell is mapped to its
    isomorphism class with the package's own ``valid_hash`` and looked up; the objective
    returns the validation performance (``valid_perf``, to maximize), and records the test
    performance (``perf``) in the trial's ``optuna_nas:bench_test_accuracy`` user
    attribute and the class's hash in ``optuna_nas:bench_arch``. Performances are in
    ``[0, 1]``.

    The one cell the table lacks, four skip connections (no graph layer at all), scores the
    table's worst validation and test performance. Queries cost nothing simulated: searches
    on this benchmark stop after a number of queries.

    Args:
        dataset: One of :data:`NBG_DATASETS`.

    Raises:
        ValueError: For an unknown dataset.
        ImportError: If ``nas-bench-graph`` is not installed.

    References:
        Qin, Zhang, Zhang, Chen, Wang and Zhu, "NAS-Bench-Graph: Benchmarking Graph Neural
        Architecture Search", NeurIPS 2022 Datasets and Benchmarks.

    Example:
        .. code-block:: python

            import optuna
            from optuna_nas.benchmarks import NASBenchGraph

            bench = NASBenchGraph("cora")
            study = optuna.create_study(direction="maximize")
            study.optimize(bench, n_trials=30)
            print(study.best_value, study.best_trial.user_attrs)
    """

    test_column: ClassVar[str] = "perf"

    def __init__(self, dataset: str = "cora") -> None:
        if dataset not in NBG_DATASETS:
            raise ValueError(
                f"unknown NAS-Bench-Graph dataset {dataset!r}; choose one of: "
                f"{', '.join(NBG_DATASETS)}"
            )
        self.dataset = dataset
        table = _table(dataset)
        valid = np.array([row["valid_perf"] for row in table.values()])
        test = np.array([row["perf"] for row in table.values()])
        self._worst = {"valid_perf": float(valid.min()), "perf": float(test.min())}
        self._optimum = float(valid.max())

    def __repr__(self) -> str:
        return f"NASBenchGraph(dataset={self.dataset!r})"

    def __call__(self, trial: optuna.trial.BaseTrial) -> float:
        """Suggests a cell, looks it up and returns its validation performance."""
        link = trial.suggest_categorical("link", LINKS)
        ops = [trial.suggest_categorical(f"op{i}", OPERATIONS) for i in range(4)]
        row = self.query(str(link), [str(op) for op in ops])
        trial.set_user_attr(_keys.BENCH_ARCH, row["hash"])
        trial.set_user_attr(_keys.BENCH_TEST_ACCURACY, row["perf"])
        return float(row["valid_perf"])

    def query(self, link: str, ops: list[str]) -> dict[str, Any]:
        """The validation and test performance of a cell and its class's hash.

        Raises:
            ValueError: For a link or operation outside :data:`LINKS` and
                :data:`OPERATIONS`.
        """
        from nas_bench_graph import Arch

        if link not in LINKS or len(ops) != 4 or any(op not in OPERATIONS for op in ops):
            raise ValueError(
                f"not a NAS-Bench-Graph cell: link {link!r}, ops {ops!r}; links are "
                f"{', '.join(LINKS)} and ops {', '.join(OPERATIONS)}"
            )
        key = int(Arch([int(c) for c in link], list(ops)).valid_hash())
        row = _table(self.dataset).get(key, self._worst)
        return {"hash": key, "valid_perf": row["valid_perf"], "perf": row["perf"]}

    def optimum(self) -> float:
        """The best validation performance over all cells."""
        return self._optimum
