"""A study made by the real CLI, served by a real optuna-dashboard (``optuna-nas
dashboard``) on 127.0.0.1, checked through its HTTP API and in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_nas import _keys as keys
from optuna_nas.cli import main
from optuna_nas.dashboard import PLOT_IDS
from optuna_nas.spaces import ARCH_ATTR, Architecture

if os.environ.get("OPTUNA_NAS_REQUIRE_DASHBOARD") == "1":
    import optuna_dashboard  # noqa: F401  (CI: a missing extra fails instead of skipping)
    import plotly  # noqa: F401
pytest.importorskip("optuna_dashboard")
pytest.importorskip("plotly")

STUDY = "chain-digits"
TRIALS = 3
EPOCHS = 2
ONESHOT_STUDY = "nb201-digits-drnas"


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("optuna-nas")
    return [str(script)] if script.exists() else [sys.executable, "-m", "optuna_nas"]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    url: str
    storage: str
    artifact_dir: Path
    search_output: str
    dashboard_log: Path

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def json(self, path: str) -> Any:
        status, _, body = self.get(path)
        assert status == 200, (path, status, body[:300])
        return json.loads(body)

    def study(self, name: str = STUDY) -> dict[str, Any]:
        [summary] = [
            s for s in self.json("/api/studies")["study_summaries"] if s["study_name"] == name
        ]
        detail = self.json(f"/api/studies/{summary['study_id']}")
        detail["study_id"] = summary["study_id"]
        return detail


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("dashboard")
    storage = f"sqlite:///{root / 'study.db'}"
    search = subprocess.run(
        [
            *_cli(),
            "search",
            "--dataset",
            "digits",
            "--epochs",
            str(EPOCHS),
            "--n-trials",
            str(TRIALS),
            "--no-progress",
            "--storage",
            storage,
        ],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert search.returncode == 0, search.stderr
    retrain = subprocess.run(
        [*_cli(), "train-best", "--epochs", "1", "--no-progress", "--storage", storage],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert retrain.returncode == 0, retrain.stderr
    gradient = subprocess.run(
        [
            *_cli(),
            "oneshot",
            "--strategy",
            "drnas",
            "--epochs",
            "2",
            "--final-epochs",
            "1",
            "--dataset",
            "digits",
            "--space-arg",
            "channels=4",
            "--space-arg",
            "cells_per_stage=1",
            "--study-name",
            ONESHOT_STUDY,
            "--no-progress",
            "--storage",
            storage,
        ],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert gradient.returncode == 0, gradient.stderr
    port = _free_port()
    log = root / "dashboard.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [
                *_cli(),
                "dashboard",
                "--storage",
                storage,
                "--study-name",
                STUDY,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            cwd=root,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    served = Served(
        f"http://127.0.0.1:{port}",
        storage,
        root / "optuna_nas_artifacts",
        search.stdout,
        log,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if served.get("/api/meta")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "dashboard did not answer: " + log.read_text()
            time.sleep(0.5)
        yield served
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def test_search_tells_how_to_open_the_dashboard(served: Served) -> None:
    assert f"optuna-nas dashboard --storage {served.storage} --study-name {STUDY}" in (
        served.search_output
    )
    assert str(served.artifact_dir) in served.search_output
    log = served.dashboard_log.read_text()
    assert f"artifacts: {served.artifact_dir}" in log


def test_api_serves_study_trials_curves_and_attributes(served: Served) -> None:
    study = served.study()
    assert study["name"] == STUDY
    assert study["objective_names"] == ["valid_accuracy"]
    user_attrs = {a["key"]: a["value"] for a in study["user_attrs"]}
    assert user_attrs["optuna_nas:artifact_dir"] == str(served.artifact_dir)
    trials = study["trials"]
    assert [t["number"] for t in trials] == list(range(TRIALS))
    for trial in trials:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        for key in (keys.N_PARAMS, keys.FLOPS, keys.LATENCY_MS, ARCH_ATTR, keys.DRAWING):
            assert key in attrs, (trial["number"], key)
        assert float(attrs["optuna_nas:latency_ms"]) > 0
        Architecture.from_json(attrs[ARCH_ATTR])  # the JSON is a valid architecture
        assert trial["params"], trial
        steps = [v["step"] for v in trial["intermediate_values"]]
        if trial["state"] == "Complete":
            assert steps == list(range(EPOCHS))
            assert trial["values"][0] == trial["intermediate_values"][-1]["value"]
        else:
            assert trial["state"] == "Pruned" and steps


def test_retraining_shows_beside_the_search(served: Served) -> None:
    stored = optuna.load_study(study_name=STUDY, storage=served.storage)
    record = stored.user_attrs["optuna_nas:retrained:0000"]
    study = served.study()
    # The dashboard shows the record (it cuts long attributes) and, in full, the note.
    user_attrs = {a["key"]: a["value"] for a in study["user_attrs"]}
    assert user_attrs["optuna_nas:retrained:0000"].startswith('{"trial": ')
    trial = next(t for t in study["trials"] if t["number"] == record["trial"])
    body = trial["note"]["body"]
    assert f"## Trial {record['trial']}, retrained" in body
    assert f"{100 * record['test_accuracy']:.2f}%" in body


def test_svg_drawings_are_served_as_images(served: Served) -> None:
    study = served.study()
    for trial in study["trials"]:
        attrs = {a["key"]: a["value"] for a in trial["user_attrs"]}
        [drawing] = [a for a in trial["artifacts"] if a["mimetype"] == "image/svg+xml"]
        assert drawing["artifact_id"] == attrs["optuna_nas:architecture_svg"]
        status, headers, body = served.get(
            f"/artifacts/{study['study_id']}/{trial['trial_id']}/{drawing['artifact_id']}"
        )
        assert status == 200
        assert headers["Content-Type"] == "image/svg+xml"
        root = ET.fromstring(body)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        arch = Architecture.from_json(attrs[ARCH_ATTR])
        assert root.find("{http://www.w3.org/2000/svg}title").text == str(arch)
        assert body.decode() == arch.to_svg()
    unknown = "00000000-0000-0000-0000-000000000000"
    first = study["trials"][0]["trial_id"]
    assert served.get(f"/artifacts/{study['study_id']}/{first}/{unknown}")[0] == 404


def test_custom_plot_shows_every_completed_trial_and_the_front(served: Served) -> None:
    study = served.study()
    plots = {p["id"]: json.loads(p["graph_object"]) for p in study["plotly_graph_objects"]}
    assert set(plots) == set(PLOT_IDS.values())
    figure = plots[PLOT_IDS["n_params"]]
    points, front = figure["data"]
    complete = [t for t in study["trials"] if t["state"] == "Complete"]
    params = {
        t["number"]: int(next(a["value"] for a in t["user_attrs"] if a["key"] == keys.N_PARAMS))
        for t in complete
    }
    assert sorted(points["x"]) == sorted(params.values())
    assert front["name"] == "Pareto front"
    assert set(front["x"]) <= set(points["x"]) and front["x"]
    best = max(t["values"][0] for t in complete)
    assert front["y"][-1] == pytest.approx(best)


def test_gradient_search_shows_its_architecture_weights_by_epoch(served: Served) -> None:
    study = served.study(ONESHOT_STUDY)
    [trial] = study["trials"]
    assert trial["state"] == "Complete"
    plots = {p["id"]: json.loads(p["graph_object"]) for p in study["plotly_graph_objects"]}
    figure = plots[f"optuna-nas-architecture-weights-{trial['number']}"]
    lines = figure["data"]
    assert len(lines) == 6 * 5  # one line per edge and candidate operation
    assert {line["name"] for line in lines} == {
        "none",
        "skip_connect",
        "nor_conv_1x1",
        "nor_conv_3x3",
        "avg_pool_3x3",
    }
    for line in lines:
        assert line["x"] == [0, 1, 2]  # at initialisation, then after each epoch
    # At every epoch, each edge's probabilities sum to one.
    for edge in range(6):
        mine = lines[edge * 5 : edge * 5 + 5]
        for epoch in range(3):
            assert sum(line["y"][epoch] for line in mine) == pytest.approx(1.0, abs=1e-3)
    # The derived architecture is each edge's most probable operation after the last epoch.
    params = {p["name"]: p["param_external_value"] for p in trial["params"]}
    titles = [a["text"] for a in figure["layout"]["annotations"]]
    for edge, title in enumerate(titles):
        mine = lines[edge * 5 : edge * 5 + 5]
        assert params[title] == max(mine, key=lambda line: line["y"][-1])["name"]


def test_dashboard_cli_refuses_bad_input_without_leaking_passwords(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://nas:s3cret-pw@127.0.0.1:1/nas"
    assert main(["dashboard", "--storage", url, "--port", str(_free_port())]) == 2
    out, err = capsys.readouterr()
    assert "s3cret-pw" not in out + err
    assert "***" in err
    unknown = ["dashboard", "--storage", served.storage, "--study-name", "nope"]
    assert main(unknown) == 2
    assert f"it holds: {STUDY}" in capsys.readouterr().err


def test_search_refuses_another_artifact_dir_for_the_same_study(
    served: Served, capsys: pytest.CaptureFixture[str]
) -> None:
    before = served.study()["trials"]
    status = main(
        [
            "search",
            "--dataset",
            "digits",
            "--epochs",
            str(EPOCHS),
            "--n-trials",
            "1",
            "--no-progress",
            "--storage",
            served.storage,
            "--artifact-dir",
            str(served.artifact_dir.parent / "elsewhere"),
        ]
    )
    assert status == 2
    assert "keeps its artifacts in" in capsys.readouterr().err
    assert not (served.artifact_dir.parent / "elsewhere").exists()
    assert len(served.study()["trials"]) == len(before)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    reason = "headless Chromium is not installed (Debian: apt-get install chromium)"
    if os.environ.get("OPTUNA_NAS_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason + "; OPTUNA_NAS_REQUIRE_CHROMIUM=1 makes it required")
    pytest.skip(reason)


def _browse(tmp_path: Path, url: str, *args: str) -> str:
    run = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            "--virtual-time-budget=15000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_renders_the_study_and_its_trials(served: Served, tmp_path: Path) -> None:
    study_id = served.study()["study_id"]
    # The study's trial page: the list of its trials, and trial 0 in detail.
    page = f"{served.url}/dashboard/studies/{study_id}/trials?numbers=0"
    dom = _browse(tmp_path, page, "--dump-dom")
    assert f"{STUDY} (id={study_id})" in dom
    for number in range(TRIALS):
        assert f"Trial {number}" in dom
    # The selected trial previews its drawing as an image from the artifact route.
    assert 'alt="architecture.svg"' in dom
    assert f'src="/artifacts/{study_id}/' in dom

    shot = tmp_path / "study.png"
    _browse(tmp_path, page, f"--screenshot={shot}", "--window-size=1400,1000")
    assert _png_size(shot) == (1400, 1000)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
