from __future__ import annotations

import dataclasses
from pathlib import Path

import optuna
import pytest

from optuna_nas import _keys
from optuna_nas.benchmarks import (
    NASBench201,
    NASBench201Conditional,
    NASBenchGraph,
    SuiteRun,
    average_ranks,
    default_problems,
    format_suite,
    plot_anytime,
    run_problem,
    summarize_suite,
)
from optuna_nas.spaces import NB201Space

pytest.importorskip("nas_bench_graph")


def test_nas_bench_graph_reads_the_packages_table() -> None:
    from nas_bench_graph import Arch, light_read

    bench = NASBenchGraph("cora")
    table = light_read("cora")
    row = bench.query("0123", ["gcn", "gat", "sage", "gin"])
    expected = table[Arch([0, 1, 2, 3], ["gcn", "gat", "sage", "gin"]).valid_hash()]
    assert row["valid_perf"] == expected["valid_perf"] and row["perf"] == expected["perf"]
    # Isomorphic cells share a class: layers 2 and 3 both read layer 1, in either order.
    a = bench.query("0011", ["gcn", "gat", "sage", "gin"])
    b = bench.query("0011", ["gcn", "gat", "gin", "sage"])
    assert a == b
    # The cell with no graph layer is not in the table: it scores the table's worst.
    worst = bench.query("0123", ["skip"] * 4)
    assert worst["valid_perf"] == min(r["valid_perf"] for r in table.values())
    with pytest.raises(ValueError, match="not a NAS-Bench-Graph cell"):
        bench.query("0124", ["gcn"] * 4)
    with pytest.raises(ValueError, match="unknown NAS-Bench-Graph dataset"):
        NASBenchGraph("proteins")


def test_nas_bench_graph_objective_records_test_performance() -> None:
    bench = NASBenchGraph("cs")
    params = {"link": "0012", "op0": "gcn", "op1": "gin", "op2": "fc", "op3": "arma"}
    trial = optuna.trial.FixedTrial(params)
    value = bench(trial)
    row = bench.query("0012", ["gcn", "gin", "fc", "arma"])
    assert value == row["valid_perf"]
    assert trial.user_attrs[_keys.BENCH_TEST_ACCURACY] == row["perf"]
    assert 0 < value <= bench.optimum() <= 1


def test_conditional_nb201_asks_the_kernel_only_for_convolutions(nb201_dir: Path) -> None:
    plain = NASBench201("cifar10", root=nb201_dir, protocol="B")
    conditional = NASBench201Conditional("cifar10", root=nb201_dir, protocol="B")
    params = {
        f"edge{k}": f for k, f in enumerate(["conv", "skip", "none", "pool", "conv", "skip"])
    }
    params.update({"edge0/kernel": 3, "edge4/kernel": 1})
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(params)
    study.optimize(conditional, n_trials=1)
    trial = study.trials[0]
    assert set(trial.params) == set(params)
    arch = (
        "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|avg_pool_3x3~0|nor_conv_1x1~1|skip_connect~2|"
    )
    assert trial.user_attrs[_keys.BENCH_ARCH] == arch
    assert trial.value == plain.reward(arch)
    assert dict(NB201Space().from_nb201_string(arch).params)  # a valid cell of the space


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["gp", "evolution", "tpe-group", "smac"])
def test_run_problem_records_the_anytime_curve(sampler: str, nb201_dir: Path) -> None:
    problems = {p.name: p for p in default_problems(nb201_dir, nbg_datasets=("cora",))}
    assert problems["nb201-cifar10-A"].tuned and not problems["nbg-cora-60"].tuned
    problem = dataclasses.replace(problems["nbg-cora-60"], n_queries=14)
    run = run_problem(problem, sampler, seed=0)
    assert run.n_queries == len(run.curve) == 14
    assert run.curve == sorted(run.curve) and run.curve[-1] == run.best_value
    assert run.sampler_ms_per_trial > 0
    bench = NASBenchGraph("cora")
    assert 0 < run.test_of_best <= 1 and run.best_value <= bench.optimum()


@pytest.mark.slow
def test_time_budget_stops_before_the_budget_is_passed(nb201_dir: Path) -> None:
    problems = {p.name: p for p in default_problems(nb201_dir, nbg_datasets=())}
    problem = dataclasses.replace(problems["nb201-cifar100-A"], budget_seconds=3000.0)
    run = run_problem(problem, "random", seed=0)
    assert 5 < run.n_queries < 40


def _run(problem: str, sampler: str, seed: int, value: float) -> SuiteRun:
    return SuiteRun(
        problem, sampler, seed, value, value - 0.01, 3, 1.0, [value - 0.2, value, value]
    )


def test_tables_ranks_and_plot(tmp_path: Path, nb201_dir: Path) -> None:
    runs = [
        _run("nbg-cora-60", "gp", 0, 0.80),
        _run("nbg-cora-60", "gp", 1, 0.82),
        _run("nbg-cora-60", "tpe", 0, 0.70),
        _run("nbg-cora-60", "tpe", 1, 0.72),
        _run("nbg-cora-150", "gp", 0, 0.60),
        _run("nbg-cora-150", "gp", 1, 0.60),
        _run("nbg-cora-150", "tpe", 0, 0.90),
        _run("nbg-cora-150", "tpe", 1, 0.90),
    ]
    table = summarize_suite(runs)
    assert table["nbg-cora-60"]["gp"].mean == pytest.approx(0.81)
    assert table["nbg-cora-60"]["gp"].se == pytest.approx(0.01)
    assert average_ranks(table) == {"gp": 1.5, "tpe": 1.5}
    problems = [p for p in default_problems(nb201_dir, nbg_datasets=("cora",))]
    text = format_suite(runs, problems, ["gp", "tpe"])
    assert (
        "| nbg-cora-60 | no | **81.00 ± 1.00 (80.00)** | 71.00 ± 1.00 (70.00) | +10.0 SE |" in text
    )
    assert "-30.0" not in text and "| nbg-cora-150 | no |" in text
    path = tmp_path / "anytime.png"
    plot_anytime(runs, problems, path)
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_problems_pickle_for_worker_processes(nb201_dir: Path) -> None:
    import pickle

    for problem in default_problems(nb201_dir, nbg_datasets=("cora",)):
        copy = pickle.loads(pickle.dumps(problem))
        assert copy.name == problem.name and callable(copy.make_objective)


@pytest.mark.e2e
def test_suite_script_writes_the_table_and_resumes(tmp_path: Path, nb201_dir: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "sampler_suite.py"
    runs, table, plot = tmp_path / "runs.jsonl", tmp_path / "suite.md", tmp_path / "any.png"
    command = [
        sys.executable,
        str(script),
        "--problems",
        "nbg-cs-60",
        "--samplers",
        "random,tpe",
        "--seeds",
        "2",
        "--nb201-dir",
        str(nb201_dir),
        "--runs",
        str(runs),
        "--output",
        str(table),
        "--plot",
        str(plot),
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert len(runs.read_text().splitlines()) == 4
    text = table.read_text()
    assert "| nbg-cs-60 | no |" in text and "average rank" in text
    assert plot.read_bytes()[:4] == b"\x89PNG"
    # A second call finds every run in the file and runs nothing again.
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and "seed" not in second.stdout.split("| problem")[0]
    assert len(runs.read_text().splitlines()) == 4
