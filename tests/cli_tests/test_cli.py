from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from optuna_nas.cli import main

TINY = [
    "--dataset",
    "digits",
    "--epochs",
    "1",
    "--space-arg",
    "filters=[4,8]",
    "--space-arg",
    "max_layers=2",
    "--no-progress",
]


def _cli() -> list[str]:
    exe = shutil.which("optuna-nas", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "optuna_nas"]


def test_search_best_and_train_best_end_to_end(tmp_path: Path) -> None:
    run = subprocess.run(
        [*_cli(), "search", "--n-trials", "3", *TINY],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "optuna_nas.db").is_file()
    assert "Best architecture: chain:" in run.stdout
    assert (
        "optuna-nas dashboard --storage sqlite:///optuna_nas.db --study-name chain-digits"
        in run.stdout
    )

    best = subprocess.run(
        [*_cli(), "best", "--json"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert best.returncode == 0, best.stderr
    payload = json.loads(best.stdout)
    study = optuna.load_study(
        study_name="chain-digits", storage=f"sqlite:///{tmp_path / 'optuna_nas.db'}"
    )
    assert payload["trial"] == study.best_trial.number
    assert payload["valid_accuracy"] == study.best_value
    assert payload["architecture"]["space"] == "chain"

    retrain = subprocess.run(
        [*_cli(), "train-best", "--epochs", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert retrain.returncode == 0, retrain.stderr
    assert f"Retraining trial #{payload['trial']}" in retrain.stdout
    accuracy = float(retrain.stdout.split("Test accuracy: ")[1].split()[0])
    assert 0.0 < accuracy <= 1.0


def test_resume_adds_trials_and_other_space_is_refused(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["search", "--n-trials", "2", "--study-name", "s", *TINY]
    assert main(args) == 0
    assert main(args) == 0
    url = f"sqlite:///{tmp_path / 'optuna_nas.db'}"
    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 4
    capsys.readouterr()
    assert main(["search", "--n-trials", "1", "--study-name", "s", "--space", "nb201"]) == 2
    err = capsys.readouterr().err
    assert "was created with space 'chain'" in err and "--study-name" in err
    study = optuna.load_study(study_name="s", storage=url)
    assert len(study.trials) == 4
    assert study.user_attrs["optuna_nas:space"]["space"] == "chain"


def test_best_json_to_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--n-trials", "1", *TINY]) == 0
    assert main(["best", "--output", "best.json"]) == 0
    data = json.loads((tmp_path / "best.json").read_text())
    from optuna_nas import Architecture

    arch = Architecture.from_dict(data["architecture"])
    assert str(arch) == data["description"]


BAD_INPUT = [
    (["--space", "nb210"], "unknown space 'nb210'; choose one of: chain"),
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'; choose one of:"),
    (["--sampler", "cmaes2"], "unknown sampler 'cmaes2'; choose one of:"),
    (["--pruner", "early"], "unknown pruner 'early'; choose one of:"),
    (["--space-arg", "max_layers=0"], "min_layers <= max_layers"),
    (["--space-arg", "depth=3"], "invalid argument for space 'chain'"),
    (["--space-arg", "oops"], "must look like KEY=VALUE"),
    (["--storage", "not a url"], "malformed storage URL"),
    (["--storage", "sqlite:///missing/dir/x.db"], "does not exist"),
    (["--storage", "nosuchdb://host/db"], "cannot open storage"),
    (["--storage", "postgresql://nas:s3cret@127.0.0.1:1/db"], None),  # postgres_refusal
    (["--device", "tpu9"], "invalid device"),
    (["--estimate-rung", "synflow"], "--estimate-rung reports a proxy at step 0"),
    (["--estimate-rung", "flop", "--pruner", "fidelity", "--epochs", "3"], "unknown proxy 'flop'"),
]


@pytest.mark.parametrize(("extra", "message"), BAD_INPUT)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    extra, message, tmp_path: Path, monkeypatch, capsys, postgres_refusal: str
) -> None:
    message = message or postgres_refusal
    monkeypatch.chdir(tmp_path)
    code = main(["search", "--n-trials", "1", "--dataset", "digits", *extra])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("optuna-nas: error: ")
    assert message in lines[0]
    assert "s3cret" not in captured.err + captured.out
    assert list(tmp_path.iterdir()) == []


def test_a_proxy_rung_below_the_epochs_is_stored_for_every_worker(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    tiny = [a if a != "1" else "3" for a in TINY]  # three epochs: rungs 0 (proxy), 1, 3
    args = ["search", "--n-trials", "3", *tiny, "--pruner", "fidelity"]
    assert main([*args, "--estimate-rung", "synflow"]) == 0
    study = optuna.load_study(study_name="chain-digits", storage="sqlite:///optuna_nas.db")
    assert study.user_attrs["optuna_nas:objective"]["estimate_rung"] == "synflow"
    assert study.user_attrs["optuna_nas:pruner"]["kwargs"] == {"estimate_rung": True}
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == [0, 1, 2, 3]
        assert trial.intermediate_values[0] == trial.user_attrs["optuna_nas:proxy_score"]
        assert trial.value == trial.intermediate_values[3]
    # A resumed search keeps the rung without being told again.
    assert main(["search", "--n-trials", "1", "--no-progress"]) == 0
    last = optuna.load_study(study_name="chain-digits", storage="sqlite:///optuna_nas.db")
    assert "optuna_nas:proxy_score" in last.trials[-1].user_attrs


def test_bad_input_does_not_touch_an_existing_study(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--n-trials", "1", *TINY]) == 0
    before = (tmp_path / "optuna_nas.db").read_bytes()
    assert main(["search", "--n-trials", "1", "--dataset", "digits", "--sampler", "nope"]) == 2
    assert (tmp_path / "optuna_nas.db").read_bytes() == before


def test_argparse_errors_exit_2(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["search", "--n-trials", "0"])
    assert exc.value.code == 2


def test_best_on_empty_storage_explains(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    import optuna

    optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'x.db'}")  # an empty database
    assert main(["best", "--storage", f"sqlite:///{tmp_path / 'x.db'}"]) == 2
    assert "holds 0 studies" in capsys.readouterr().err
