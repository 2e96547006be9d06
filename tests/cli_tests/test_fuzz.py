"""Every subcommand, every option, bad values: exit 2, one line that names the problem, no
traceback, nothing created or changed, and no password anywhere in what was printed.

Runs in-process against a storage that already holds a study, so that a refusal that
wrote anything (a new file, a study, a trial, an attribute) is caught. Nothing trains.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import optuna
import pytest

from optuna_nas import DatasetConfig, TrainingConfig, create_study, open_storage, spaces
from optuna_nas.cli import main

SECRET = "s3cr3tpw"
UNREACHABLE = f"postgresql://nas:{SECRET}@127.0.0.1:1/test"

# (subcommand and the arguments that make it otherwise valid, option, bad values, what
# the error line must contain besides "error").
BAD: list[tuple[list[str], str, list[str]]] = []
for values in (["0", "-1", "x", "", "1.5"],):
    for option in (
        "--n-trials",
        "--epochs",
        "--batch-size",
        "--heartbeat-interval",
        "--grace-period",
    ):
        BAD.append((["search"], option, values))
    for option in ("--top",):
        BAD.append((["best"], option, values))
    for option in ("--epochs",):
        BAD.append((["train-best"], option, values))
    for option in (
        "--jobs",
        "--jobs-per-gpu",
        "--total-trials",
        "--heartbeat-interval",
        "--grace-period",
    ):
        BAD.append((["worker", "--study-name", "s"], option, values))
    for option in ("--seeds", "--n-queries"):
        BAD.append((["benchmark", "nb201"], option, values))
for values in (["0", "-1", "x", "", "nan", "inf"],):
    for option in ("--timeout", "--lr"):
        BAD.append((["search"], option, values))
    for option in ("--timeout", "--stop-timeout"):
        BAD.append((["worker", "--study-name", "s"], option, values))
BAD += [
    (["search"], "--plots-every", ["-1", "x", "nan"]),
    (["search"], "--seed", ["x", "", "1.5"]),
    (["search"], "--space", ["bogus", ""]),
    (["search"], "--space-arg", ["nokey", "=1", "max_layers=-1", "max_layers=abc", "bogus=1"]),
    (["search"], "--dataset", ["bogus", ""]),
    (["search"], "--sampler", ["bogus", ""]),
    (
        ["search", "--sampler", "evolution"],
        "--sampler-arg",
        ["nokey", "bogus=1", "population_size=x", "population_size=0"],
    ),
    (["search"], "--pruner", ["bogus", ""]),
    (["search", "--pruner", "fidelity", "--epochs", "3"], "--estimate-rung", ["flops2", ""]),
    (["search"], "--estimate-rung", ["synflow"]),
    (["search"], "--pruner-arg", ["nokey", "bogus=1", "n_startup_trials=x"]),
    (["search"], "--device", ["bogus", "cuda:99"]),
    (["search", "--dataset", "cifar10"], "--data-root", ["/nonexistent/data"]),
    (["worker", "--study-name", "s"], "--gpus", ["bogus", "-1"]),
    (["worker", "--study-name", "s"], "--sampler", ["bogus"]),
    (["worker", "--study-name", "s"], "--pruner", ["bogus"]),
    (["worker", "--study-name", "s"], "--seed", ["x"]),
    (["worker", "--study-name", "s"], "--storage-retries", ["-1", "x"]),
    (["worker", "--study-name", "s"], "--max-restarts", ["-1", "x"]),
    (["worker", "--study-name", "s"], "--artifact-dir", ["/nonexistent/artifacts"]),
    (["worker"], "--study-name", ["bogus"]),
    (["best"], "--study-name", ["bogus"]),
    (["train-best"], "--study-name", ["bogus"]),
    (["dashboard"], "--study-name", ["bogus"]),
    (["dashboard"], "--port", ["0", "70000", "x"]),
    (["dashboard"], "--artifact-dir", ["/nonexistent/artifacts"]),
    (["benchmark", "nb201"], "--samplers", ["bogus", ""]),
    (["benchmark", "nb201"], "--protocol", ["C"]),
    (["benchmark", "nb201"], "--dataset", ["bogus"]),
    (["benchmark", "nb201"], "--nb201-dir", ["/nonexistent/nb201"]),
    (["search"], "--dataset", ["/nonexistent/images", "missing.npz", "missing.csv"]),
    (["search"], "--resolution", ["0", "-1", "x"]),
    (["search", "--dataset", "mnist1d"], "--resolution", ["16"]),
    (["train-best"], "--trial", ["-1", "x", "1.5"]),
    (["train-best"], "--cells", ["0", "x"]),
    (["train-best"], "--channels", ["0", "x"]),
    (["train-best"], "--width-multiplier", ["0", "-1", "nan", "x"]),
    (["train-best"], "--cutout", ["-1", "x"]),
    (["train-best"], "--label-smoothing", ["-1", "x"]),
    (["train-best"], "--dataset", ["bogus", "/nonexistent/data.npz"]),
    (["train-best", "--export-program"], "--onnx", ["--no-progress"]),
    (["oneshot"], "--space", ["chain", "bogus", ""]),
    (["oneshot"], "--strategy", ["enas", "dart", ""]),
    (["oneshot"], "--checkpoint", ["/nonexistent/supernet.pt"]),
    (["oneshot"], "--epochs", ["0", "x"]),
    (["oneshot"], "--candidates", ["0", "x"]),
    (["oneshot"], "--score", ["auc", ""]),
    (["oneshot"], "--dataset", ["bogus", "/nonexistent/data.npz"]),
    (["report"], "--top", ["0", "x"]),
    (["report"], "--format", ["gif", ""]),
    (["report"], "--study-name", ["bogus", "s"]),
]
STORAGES = [
    "bogus",
    "sqlite:///missing-folder/x.db",
    "nodriver+nothing://host/db",
    UNREACHABLE,
    f"postgresql://nas:{SECRET}@host@127.0.0.1:1/test",
    f"postgresql://nas@127.0.0.1:1/test?password={SECRET}",
    "mysql://",
]
for command in (
    ["search"],
    ["best"],
    ["train-best"],
    ["dashboard"],
    ["worker", "--study-name", "s"],
):
    BAD.append((command, "--storage", STORAGES))
# Commands that only read a study: a file that does not exist is not created.
for command in (
    ["best"],
    ["train-best"],
    ["report"],
    ["dashboard"],
    ["worker", "--study-name", "s"],
):
    BAD.append((command, "--storage", ["sqlite:///typo.db", "journal.log"]))

CASES = [
    pytest.param(command, option, value, id=f"{command[0]} {option}={value!r}")
    for command, option, values in BAD
    for value in values
]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a SQLite storage holding study ``s`` (no trials)."""
    root = tmp_path_factory.mktemp("fuzz")
    create_study(
        storage=open_storage(f"sqlite:///{root / 'optuna_nas.db'}"),
        study_name="s",
        space=spaces.create("chain", filters=[4], max_layers=1),
        dataset=DatasetConfig("digits", {"seed": 0}),
        training=TrainingConfig(epochs=1),
        sampler="random",
        pruner="none",
        seed=0,
    )
    return root


def _state(root: Path) -> tuple:
    files = sorted(
        (str(p.relative_to(root)), hashlib.sha256(p.read_bytes()).hexdigest())
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(("-journal", "-wal", "-shm"))
    )
    storage = optuna.storages.RDBStorage(f"sqlite:///{root / 'optuna_nas.db'}")
    studies = [
        (s.study_name, sorted(s.user_attrs.items(), key=str), s.system_attrs)
        for s in storage.get_all_studies()
    ]
    trials = [len(storage.get_all_trials(s._study_id)) for s in storage.get_all_studies()]
    storage.engine.dispose()
    return files, repr(studies), trials


@pytest.mark.parametrize(("command", "option", "value"), CASES)
def test_bad_value_exits_2_with_one_line_and_changes_nothing(
    command: list[str],
    option: str,
    value: str,
    stored: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(stored)
    monkeypatch.delenv("OPTUNA_NAS_NB201_DIR", raising=False)
    before = _state(stored)
    argv = [*command, option, value]
    if command[0] == "dashboard" and option != "--port":
        argv += ["--port", "1"]  # never serve: every refusal comes before the port
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        status = exc.code
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2, f"exit {status}: {err or out}"
    assert len(lines) == 1, err
    assert "error" in lines[0] and "Traceback" not in err
    named = option.lstrip("-")
    mentions = (named, named.replace("-", "_"), named.split("-")[-1], option)
    shown = value if value and SECRET not in value else None
    if shown and "=" in shown and shown.split("=")[0]:
        shown = shown.split("=")[0]  # KEY=VALUE: the key is what is named
    assert any(m in lines[0] for m in mentions) or (shown and shown in lines[0]), lines[0]
    assert SECRET not in out + err
    assert _state(stored) == before
