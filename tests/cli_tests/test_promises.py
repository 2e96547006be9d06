"""The command line keeps its promises: resume continues, stored settings hold, killed and
interrupted trials are retried once, paths are not invented, passwords never shown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas import _keys, open_storage
from optuna_nas._compat import retried_trial_number
from optuna_nas._storage import mask_url, redact
from optuna_nas.cli import main
from optuna_nas.study import objective_settings

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
    "--pruner",
    "none",
]


def _cli() -> list[str]:
    exe = shutil.which("optuna-nas", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "optuna_nas"]


def _trials(url: str, name: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url)
    return storage.get_all_trials(storage.get_study_id_from_name(name))


def _snapshot(url: str, name: str) -> tuple:
    storage = open_storage(url)
    study_id = storage.get_study_id_from_name(name)
    trials = storage.get_all_trials(study_id)
    return (
        json.dumps(storage.get_study_user_attrs(study_id), sort_keys=True, default=str),
        [(t.number, t.state, t.params) for t in trials],
    )


# -- 1: resuming continues ------------------------------------------------------------


@pytest.mark.parametrize("sampler", ["tpe", "evolution", "gp"])
def test_a_resumed_search_proposes_nothing_the_first_run_evaluated(
    sampler: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["search", *TINY, "--sampler", sampler, "--n-trials", "3"]
    assert main(args) == 0
    first = [t.params for t in _trials("sqlite:///optuna_nas.db", "chain-digits")]
    resume = ["search", "--study-name", "chain-digits", "--n-trials", "3", "--no-progress"]
    assert main(resume) == 0  # every other setting comes from the study
    trials = _trials("sqlite:///optuna_nas.db", "chain-digits")
    assert len(trials) == 6
    second = [t.params for t in trials[3:]]
    assert not [p for p in second if p in first], "the resumed run repeated the first run"


# -- 2, 3: settings are stored, compared and reach the workers --------------------------


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--epochs", "2"], "--epochs"),
        (["--lr", "0.1"], "--lr"),
        (["--batch-size", "32"], "--batch-size"),
        (["--seed", "7"], "--seed"),
        (["--space-arg", "max_layers=3"], "space"),
        (["--inherit-weights"], "--inherit-weights"),
        (["--no-checkpoints"], "--no-checkpoints"),
    ],
)
def test_resume_with_another_setting_is_refused_and_changes_nothing(
    flags: list[str], named: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "1", "--study-name", "s"]) == 0
    before = _snapshot("sqlite:///optuna_nas.db", "s")
    capsys.readouterr()
    assert main(["search", "--study-name", "s", "--n-trials", "1", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    assert _snapshot("sqlite:///optuna_nas.db", "s") == before


def test_settings_that_do_not_change_values_may_differ(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "1", "--study-name", "s"]) == 0
    assert (
        main(
            [
                "search",
                "--study-name",
                "s",
                "--n-trials",
                "1",
                "--timeout",
                "100",
                "--device",
                "cpu",
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(_trials("sqlite:///optuna_nas.db", "s")) == 2


def test_workers_train_as_the_search_stored(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "search",
                *TINY,
                "--n-trials",
                "1",
                "--study-name",
                "s",
                "--no-checkpoints",
                "--sampler",
                "evolution",
                "--sampler-arg",
                "population_size=2",
            ]
        )
        == 0
    )
    study = optuna.load_study(study_name="s", storage="sqlite:///optuna_nas.db")
    assert objective_settings(study).save_checkpoints is False
    assert study.user_attrs[_keys.STUDY_SAMPLER]["kwargs"] == {"population_size": 2}
    worker = subprocess.run(
        [*_cli(), "worker", "--study-name", "s", "--jobs", "1", "--total-trials", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert worker.returncode == 0, worker.stderr
    trials = _trials("sqlite:///optuna_nas.db", "s")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    assert not any(_keys.has(t.user_attrs, _keys.CHECKPOINT) for t in trials)


# -- 4: passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("postgresql://user:hunter2@db.example:5432/nas", "hunter2"),
        ("postgresql://user@db.example/nas?password=hunter2&sslmode=require", "hunter2"),
        ("postgresql://user@db.example/nas?sslpassword=hunter2", "hunter2"),
        ("mysql+pymysql://root:p%40ss@db.example/nas", "p%40ss"),
    ],
)
def test_mask_url_hides_every_form_of_password(url: str, secret: str) -> None:
    masked = mask_url(url)
    assert secret not in masked and "***" in masked
    assert "db.example" in masked


def test_an_unencoded_at_in_the_password_is_refused_without_echoing_it(capsys) -> None:
    url = "postgresql://user:se@cret@127.0.0.1:5432/test"
    assert "cret" not in mask_url(url) and "se@" not in mask_url(url)
    assert main(["best", "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "%40" in err and "cret" not in err and len(err.strip().splitlines()) == 1


def test_a_short_password_does_not_garble_the_message() -> None:
    url = "postgresql+psycopg2://p:p@127.0.0.1:1/test"
    assert (
        redact("psycopg2 cannot reach p at port 1", url) == "psycopg2 cannot reach *** at port 1"
    )


def test_an_unreachable_server_shows_no_password_in_any_form(tmp_path: Path, capsys) -> None:
    for url in (
        "postgresql://user:hunter2@127.0.0.1:1/test",
        "postgresql://user@127.0.0.1:1/test?password=hunter2",
    ):
        assert main(["search", *TINY, "--storage", url, "--n-trials", "1"]) == 2
        out, err = capsys.readouterr()
        assert "hunter2" not in out + err
        assert len(err.strip().splitlines()) == 1


# -- 5, 6, 7: paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["best"],
        ["train-best", "--epochs", "1"],
        ["dashboard", "--port", "1"],
        ["worker", "--study-name", "s", "--jobs", "1"],
    ],
)
def test_reading_commands_never_create_a_storage(argv: list[str], tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path / 'typo.db'}"
    assert main([*argv, "--storage", url]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_database_gives_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "1", "--study-name", "s"]) == 0
    before = _snapshot("sqlite:///optuna_nas.db", "s")
    capsys.readouterr()
    url = f"sqlite:///file:{tmp_path / 'optuna_nas.db'}?mode=ro&uri=true"
    assert (
        main(["search", "--storage", url, "--study-name", "s", "--n-trials", "1", "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err
    assert "read" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _snapshot("sqlite:///optuna_nas.db", "s") == before


def test_best_output_into_a_new_folder_creates_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "2"]) == 0
    assert main(["best", "-o", "out/deep/best.json"]) == 0
    payload = json.loads((tmp_path / "out" / "deep" / "best.json").read_text())
    assert payload["study"] == "chain-digits"


def test_best_prints_a_table_and_json_on_request(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "3"]) == 0
    capsys.readouterr()
    assert main(["best", "--top", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:3] == ["trial", "valid", "acc"]
    assert len(lines) == 4 and lines[-1].startswith("3 completed of 3 trials")
    assert main(["best", "--json"]) == 0
    assert "architecture" in json.loads(capsys.readouterr().out)


# -- 8, rough edges: killed and interrupted searches --------------------------------------


def _running(url: str, name: str, proc: subprocess.Popen, n_complete: int = 0) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search ended before it could be stopped"
        try:
            trials = _trials(url, name)
        except KeyError:
            trials = []
        states = [t.state for t in trials]
        # Params mean the objective runs, so the trial's heartbeat thread has started.
        training = [t for t in trials if t.state == TrialState.RUNNING and t.params]
        if states.count(TrialState.COMPLETE) >= n_complete and training:
            return
        time.sleep(0.2)
    raise AssertionError("no trial started")


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_killed_search_leaves_its_trial_to_be_failed_and_retried_once(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{kind}_url")
    name = f"killed-{uuid.uuid4().hex[:8]}"
    common = [
        "--storage",
        url,
        "--study-name",
        name,
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "2",
    ]
    first = subprocess.Popen(
        [*_cli(), "search", *TINY[:2], "--epochs", "100", *TINY[4:], *common, "--n-trials", "50"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _running(url, name, first)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed = next(t for t in _trials(url, name) if t.state == TrialState.RUNNING)
    time.sleep(3)  # its heartbeat runs out
    second = subprocess.run(
        [*_cli(), "search", *common, "--n-trials", "1", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 0, second.stderr
    trials = _trials(url, name)
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert trials[killed.number].state == TrialState.FAIL
    retries = [t for t in trials if retried_trial_number(t) == killed.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    # Killed mid-suggest, the trial may hold only its first parameters; the retry keeps
    # every one of them.
    assert killed.params.items() <= retries[0].params.items()


def test_ctrl_c_fails_the_trial_as_interrupted_and_queues_it_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    common = ["--storage", url, "--study-name", "s"]
    proc = subprocess.Popen(
        [
            *_cli(),
            "search",
            *TINY[:2],
            "--epochs",
            "150",
            *TINY[4:],
            *common,
            "--n-trials",
            "50",
            "--plots-every",
            "0",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    _running(url, "s", proc, n_complete=1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    trials = _trials(url, "s")
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(failed) == 1
    assert _keys.read(failed[0].user_attrs, _keys.FAIL_REASON) == "interrupted"
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    assert len(waiting) == 1
    assert _keys.read(waiting[0].user_attrs, _keys.RETRY_OF) == failed[0].number
    # The plots were refreshed when the search stopped.
    storage = open_storage(url)
    attrs = storage.get_study_system_attrs(storage.get_study_id_from_name("s"))
    assert any(k.startswith("dashboard:plot_data:") for k in attrs)


# -- rough edges ---------------------------------------------------------------------------


def test_all_failed_trials_are_explained(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", *TINY, "--n-trials", "1", "--study-name", "s"]) == 0
    study = optuna.load_study(study_name="s", storage="sqlite:///optuna_nas.db")
    only = optuna.create_study(storage="sqlite:///optuna_nas.db", study_name="f")
    for key, value in study.user_attrs.items():
        only.set_user_attr(key, value)
    for reason in ("oom", "oom", "nan"):
        trial = only.ask()
        trial.set_user_attr(_keys.FAIL_REASON, reason)
        only.tell(trial, state=TrialState.FAIL)
    capsys.readouterr()
    assert main(["best", "--study-name", "f"]) == 2
    err = capsys.readouterr().err
    assert "all 3 trials" in err and "(2 of 3): oom" in err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        (["--pruner", "lce", "--epochs", "1"], "--epochs 3 or more"),
        (["--inherit-lr-scale", "0.5"], "without --inherit-weights"),
        (["--no-partial-inherit"], "without --inherit-weights"),
        (["--sampler-arg", "populaton_size=3", "--sampler", "evolution"], "population_size"),
        (["--pruner-arg", "bogus"], "--pruner-arg 'bogus' must look like KEY=VALUE"),
    ],
)
def test_flags_without_effect_or_with_bad_values_are_refused(
    flags: list[str], needle: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["search", "--dataset", "digits", *flags]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_every_option_says_its_default() -> None:
    import argparse

    from optuna_nas.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = []
    for name, command in sub.choices.items():
        for action in command._actions:
            if not action.option_strings or action.help in (None, argparse.SUPPRESS):
                continue
            if action.required:
                continue
            if isinstance(action, (argparse._HelpAction, argparse._StoreTrueAction)):
                continue
            if isinstance(action, argparse._StoreConstAction):
                continue
            if "default" not in action.help:
                missing.append(f"{name} {action.option_strings[0]}")
    assert not missing, f"options whose help gives no default: {missing}"
