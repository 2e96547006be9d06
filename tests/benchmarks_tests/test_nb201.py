from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_nas import samplers
from optuna_nas.benchmarks import (
    NB201_DIR_ENV,
    NASBench201,
    RunResult,
    format_table,
    run_nb201,
    summarize,
)
from optuna_nas.cli import main
from optuna_nas.spaces import NB201Space

# arch_index 1 is the README's example cell; 6111 and 13714 share the best CIFAR-10 test_acc.
SAMPLE_INDICES = (0, 1, 6111, 13714, 15624)


def _csv_rows(nb201_dir: Path, dataset: str = "cifar10") -> dict[int, dict[str, str]]:
    """Reads the table with the csv module alone, independently of the code under test."""
    with open(nb201_dir / f"nb201_{dataset}.csv", newline="") as f:
        return {int(r["arch_index"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def c10_rows(nb201_dir: Path) -> dict[int, dict[str, str]]:
    return _csv_rows(nb201_dir)


def _params(arch: str) -> dict[str, str]:
    return dict(NB201Space().from_nb201_string(arch).params)


def _evaluate_one(bench: NASBench201, arch: str) -> optuna.trial.FrozenTrial:
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(_params(arch))
    study.optimize(bench, n_trials=1)
    return study.trials[0]


def _replay_random(nb201_dir: Path, seed: int, n: int) -> list[dict[str, Any]]:
    """The first ``n`` cells Optuna's RandomSampler proposes: it ignores history, so the
    sequence is fixed by the seed."""
    bench = NASBench201(root=nb201_dir)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    rows = []
    for _ in range(n):
        trial = study.ask()
        rows.append(bench.query(bench.space.suggest(trial)))
        study.tell(trial, 0.0)
    return rows


def test_query_matches_the_csv(nb201_dir: Path, c10_rows: dict[int, dict[str, str]]) -> None:
    bench = NASBench201("cifar10", root=nb201_dir)
    assert len(bench) == 15_625
    for index in SAMPLE_INDICES:
        expected = c10_rows[index]
        row = bench.query(expected["arch"])
        assert row["arch_index"] == index
        for column in ("valid_acc", "test_acc", "valid_acc_12ep", "train_time_12ep_s_approx"):
            assert row[column] == pytest.approx(float(expected[column]), abs=1e-9)
        arch = NB201Space().from_nb201_string(expected["arch"])
        assert bench.query(arch) == row
        assert bench.test_accuracy(arch) == pytest.approx(float(expected["test_acc"]))


def test_blank_cells_and_integer_columns(nb201_dir: Path, c10_rows) -> None:
    bench = NASBench201(root=nb201_dir)
    blank = next(r for r in c10_rows.values() if r["naswot_score"] == "")
    row = bench.query(blank["arch"])
    assert row["naswot_score"] is None
    assert isinstance(row["iso_class"], int) and isinstance(row["n_seeds_nats"], int)


def test_optima_match_the_readme(nb201_dir: Path) -> None:
    bench = NASBench201(root=nb201_dir, protocol="B")
    assert bench.optimum_test() == pytest.approx(94.3733, abs=1e-4)
    assert bench.optimum_reward() == pytest.approx(91.6067, abs=1e-4)
    assert bench.test_accuracy(bench.best_reward_arch()) == pytest.approx(94.37, abs=0.01)
    assert NASBench201("cifar100", root=nb201_dir).optimum_test() == pytest.approx(73.5133)


def test_protocol_a_rewards_and_charges_12_epoch_columns(nb201_dir: Path, c10_rows) -> None:
    expected = c10_rows[1]
    trial = _evaluate_one(NASBench201(root=nb201_dir, protocol="A"), expected["arch"])
    assert trial.value == pytest.approx(float(expected["valid_acc_12ep"]))
    assert trial.user_attrs["optuna_nas:bench_simulated_seconds"] == pytest.approx(
        float(expected["train_time_12ep_s_approx"])
    )
    assert trial.user_attrs["optuna_nas:bench_test_accuracy"] == pytest.approx(
        float(expected["test_acc"])
    )
    assert trial.user_attrs["optuna_nas:bench_arch"] == expected["arch"]
    assert set(trial.params) == {f"node{i}/in{j}" for i in (1, 2, 3) for j in range(i)}


def test_protocol_b_rewards_200_epoch_valid(nb201_dir: Path, c10_rows) -> None:
    expected = c10_rows[6111]
    bench = NASBench201(root=nb201_dir, protocol="B")
    trial = _evaluate_one(bench, expected["arch"])
    assert trial.value == pytest.approx(float(expected["valid_acc"]))
    assert trial.user_attrs["optuna_nas:bench_simulated_seconds"] == pytest.approx(
        float(expected["train_time_200ep_s"])
    )
    assert bench.reward_column == "valid_acc" and bench.cost_column == "train_time_200ep_s"


def test_other_dataset_uses_its_own_12_epoch_column(nb201_dir: Path) -> None:
    expected = _csv_rows(nb201_dir, "imagenet16-120")[42]
    trial = _evaluate_one(NASBench201("imagenet16-120", root=nb201_dir), expected["arch"])
    assert trial.value == pytest.approx(float(expected["valid_acc_12ep"]))
    assert trial.user_attrs["optuna_nas:bench_test_accuracy"] == pytest.approx(
        float(expected["test_acc"])
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "cifar11"}, "choose one of: cifar10, cifar100, imagenet16-120"),
        ({"protocol": "C"}, "choose A"),
    ],
)
def test_bad_dataset_or_protocol(nb201_dir: Path, kwargs, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NASBench201(root=nb201_dir, **kwargs)


def test_bad_arch_string_shows_the_format(nb201_dir: Path) -> None:
    with pytest.raises(ValueError, match="the format is"):
        NASBench201(root=nb201_dir).query("|conv~0|+|")


def test_env_var_locates_the_tables(nb201_dir: Path, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv(NB201_DIR_ENV, str(nb201_dir))
    assert NASBench201().optimum_test() == pytest.approx(94.3733, abs=1e-4)
    monkeypatch.delenv(NB201_DIR_ENV)
    with pytest.raises(FileNotFoundError, match=f"root=.*{NB201_DIR_ENV}"):
        NASBench201()
    with pytest.raises(FileNotFoundError, match=NB201_DIR_ENV):
        NASBench201(root=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"nb201_cifar10\.csv"):
        NASBench201(root=tmp_path)


def test_budget_stop_counts_only_queries_that_fit(nb201_dir: Path) -> None:
    budget = 2_000.0
    result = run_nb201("optuna-random", seed=3, budget_seconds=budget, root=nb201_dir)
    rows = _replay_random(nb201_dir, seed=3, n=result.n_queries + 1)
    costs = [float(r["train_time_12ep_s_approx"]) for r in rows]
    assert result.simulated_seconds == pytest.approx(sum(costs[:-1]))
    assert result.simulated_seconds <= budget < sum(costs)
    counted = rows[:-1]
    best = max(counted, key=lambda r: r["valid_acc_12ep"])
    assert result.best_arch == best["arch"]
    assert result.test_acc == best["test_acc"]
    assert result.best_reward == best["valid_acc_12ep"]


def test_full_budget_run_stays_under_12000_seconds(nb201_dir: Path) -> None:
    result = run_nb201("tpe", seed=0, protocol="A", root=nb201_dir)
    assert result.simulated_seconds <= 12_000.0
    assert 50 < result.n_queries < 200
    assert result.sampler_ms_per_trial > 0
    assert run_nb201("tpe", seed=0, protocol="A", root=nb201_dir).best_arch == result.best_arch


def test_protocol_b_stops_after_n_queries(nb201_dir: Path) -> None:
    result = run_nb201("optuna-random", seed=1, protocol="B", n_queries=17, root=nb201_dir)
    assert result.n_queries == 17
    rows = _replay_random(nb201_dir, seed=1, n=17)
    best = max(rows, key=lambda r: r["valid_acc"])
    assert result.test_acc == best["test_acc"]
    assert result.simulated_seconds == pytest.approx(
        sum(float(r["train_time_200ep_s"]) for r in rows)
    )


def test_sampler_names() -> None:
    names = samplers.available()
    assert {"optuna-random", "optuna-gp", "tpe", "random"} <= set(names)
    assert isinstance(samplers.create("optuna-random", seed=0), optuna.samplers.RandomSampler)
    assert isinstance(samplers.create("optuna-gp", seed=0), optuna.samplers.GPSampler)
    assert isinstance(samplers.create("tpe", seed=0), optuna.samplers.TPESampler)
    with pytest.raises(ValueError, match=r"choose one of: .*optuna-random"):
        samplers.create("nope")


def test_summary_and_table() -> None:
    def run(sampler: str, seed: int, test: float) -> RunResult:
        return RunResult(sampler, seed, "A", "cifar10", test, 80.0, "a", 100, 1.0, 2.0, 0.5)

    summaries = summarize([run("x", 0, 93.0), run("y", 0, 94.0), run("x", 1, 94.0)])
    assert [s.sampler for s in summaries] == ["x", "y"]
    assert summaries[0].test_acc_mean == pytest.approx(93.5)
    assert summaries[0].test_acc_std == pytest.approx(0.7071, abs=1e-4)
    assert summaries[1].test_acc_std == 0.0
    table = format_table(summaries, "valid_acc_12ep")
    assert "| x | 2 | 93.50 ± 0.71 | 80.00 | 100.0 | 2.00 | 0.5 |" in table


def test_cli_benchmark_prints_and_writes_the_table(
    nb201_dir: Path, tmp_path: Path, capsys
) -> None:
    md, js = tmp_path / "out.md", tmp_path / "out.json"
    args = ["benchmark", "nb201", "--samplers", "optuna-random,tpe", "--seeds", "2"]
    args += ["--nb201-dir", str(nb201_dir), "--output", str(md), "--json", str(js)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "protocol A (reward valid_acc_12ep, budget 12000 simulated s)" in out
    assert "| optuna-random | 2 |" in out and "| tpe | 2 |" in out
    payload = json.loads(js.read_text())
    assert [(r["sampler"], r["seed"]) for r in payload["runs"]] == [
        ("optuna-random", 0),
        ("optuna-random", 1),
        ("tpe", 0),
        ("tpe", 1),
    ]
    # The file names each run's cell but copies none of the tables' values.
    assert all(r["best_arch"].startswith("|") for r in payload["runs"])
    assert not any({"test_acc", "best_reward"} & r.keys() for r in payload["runs"])
    assert "optuna-nas benchmark nb201 --samplers optuna-random,tpe --seeds 2" in md.read_text()
    assert "| tpe | 2 |" in md.read_text()


def test_cli_workers_give_the_serial_results(nb201_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(NB201_DIR_ENV, str(nb201_dir))
    runs = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.json"
        args = ["benchmark", "nb201", "--samplers", "optuna-random", "--seeds", "3"]
        args += ["--protocol", "B", "--n-queries", "5", "--workers", workers, "--json", str(out)]
        assert main(args) == 0
        runs.append([(r["seed"], r["best_arch"]) for r in json.loads(out.read_text())["runs"]])
    assert runs[0] == runs[1]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--samplers", "random,nope"], "unknown sampler nope; choose from: "),
        (["--samplers", ","], "--samplers is empty"),
        (["--protocol", "C"], "unknown protocol 'C'"),
        (["--dataset", "mnist"], "unknown NAS-Bench-201 dataset 'mnist'"),
        (["--output", "no/such/dir/t.md"], "its folder does not exist"),
    ],
)
def test_cli_bad_input_exits_2(nb201_dir: Path, capsys, extra: list[str], message: str) -> None:
    assert main(["benchmark", "nb201", "--nb201-dir", str(nb201_dir), *extra]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optuna-nas: error: ")
    assert message in lines[0]


def test_cli_unknown_benchmark_and_missing_tables(monkeypatch, tmp_path: Path, capsys) -> None:
    assert main(["benchmark", "nb101"]) == 2
    assert "unknown benchmark 'nb101'; choose one of: nb201" in capsys.readouterr().err
    monkeypatch.delenv(NB201_DIR_ENV, raising=False)
    assert main(["benchmark", "nb201"]) == 2
    assert NB201_DIR_ENV in capsys.readouterr().err
