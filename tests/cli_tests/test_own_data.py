"""The loop a user walks: own data -> search -> a bigger final network -> an exported file.

An image folder, a .npz and a .csv, each made here, are searched, retrained and exported
through the CLI; the exported files are loaded back and their outputs compared; an
interrupted retraining resumes; the report is written.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from PIL import Image

import optuna_nas
from optuna_nas import data, export
from optuna_nas.cli import main
from optuna_nas.study import retrained

pytestmark = pytest.mark.e2e

NB201 = ["--space", "nb201", "--space-arg", "channels=4", "--space-arg", "cells_per_stage=1"]
QUICK = ["--n-trials", "2", "--epochs", "1", "--sampler", "random", "--no-progress"]


def _images(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for k, name in enumerate(("circle", "square", "stripe")):
        (root / name).mkdir(parents=True)
        for i in range(12):
            side = (10, 14)[i % 2]  # mixed sizes: --resolution makes them one
            pixels = (rng.random((side, side, 3)) * 80 + 60 * k).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _npz(path: Path) -> Path:
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 1, 24)).astype(np.float32) + y[:, None, None]
    np.savez(path, x=x, y=np.array(["a", "b", "c"])[y])
    return path


def _csv(path: Path) -> Path:
    rng = np.random.default_rng(2)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["height", "colour", "weight", "species"])
        for i in range(80):
            label = i % 2
            writer.writerow(
                [
                    rng.normal() + 2 * label,
                    ("red", "green", "blue")[i % 3],
                    rng.normal(),
                    ("ant", "bee")[label],
                ]
            )
    return path


def _study(folder: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{folder / 'optuna_nas.db'}")


@pytest.mark.parametrize("kind", ["folder", "npz", "csv"])
def test_own_data_search_retrain_export(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    if kind == "folder":
        dataset, extra, space = str(_images(tmp_path / "shapes")), ["--resolution", "12"], NB201
    elif kind == "npz":
        dataset, extra, space = str(_npz(tmp_path / "waves.npz")), [], NB201
    else:
        dataset, extra = str(_csv(tmp_path / "insects.csv")), ["--target", "species"]
        space = ["--space", "chain", "--space-arg", "filters=[4,8]", "--space-arg", "max_layers=2"]
    assert main(["search", "--dataset", dataset, *extra, *space, *QUICK]) == 0
    name = f"{space[1]}-{Path(dataset).stem}"
    study = _study(tmp_path, name)
    stored = study.user_attrs["optuna_nas:dataset"]
    assert stored["name"] == str(Path(dataset).resolve())

    scale = ["--cells", "2", "--channels", "8"] if space is NB201 else ["--width-multiplier", "2"]
    formats = ["--export-program", "--onnx"] if kind == "folder" else []
    assert (
        main(
            [
                "train-best",
                "--epochs",
                "2",
                *scale,
                "--export",
                "bundle",
                *formats,
                "--no-progress",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "Test accuracy:" in out and "Exported to bundle/" in out

    (record,) = retrained(_study(tmp_path, name))
    assert record["dataset"] == str(Path(dataset).resolve())
    assert 0.0 <= record["test_accuracy"] <= 1.0 and record["n_params"] > 0
    assert record["command"].startswith("optuna-nas train-best")
    if space is NB201:
        assert record["architecture"]["config"] == {"cells_per_stage": 2, "channels": 8}

    loaded = optuna_nas.load_model("bundle")
    bundle = export.read_bundle("bundle")
    assert bundle.metadata["test_accuracy"] == record["test_accuracy"]
    served = data.load(stored["name"], **stored["options"])
    assert bundle.classes == served.classes
    x = served.test.decode(served.test.x[:5])
    if served.test.x.dtype == torch.uint8:
        as_read = served.test.x[:5]
    else:  # float data are standardised in place when loaded: undo it
        view = (1, -1) + (1,) * (x.dim() - 2)
        mean, std = (torch.tensor(s).view(view) for s in (served.input_mean, served.input_std))
        as_read = x * std + mean
    with torch.no_grad():
        logits = loaded(x)
        # The bundle's statistics take the data as read: the same logits from raw inputs.
        raw = optuna_nas.load_model("bundle", raw_inputs=True)(as_read)
    assert torch.allclose(raw, logits, atol=1e-4)
    # Its test accuracy is the one recorded (the model is the one trained).
    test_x = served.test.decode(served.test.x)
    with torch.no_grad():
        accuracy = float((loaded(test_x).argmax(1) == served.test.y).float().mean())
    assert accuracy == pytest.approx(record["test_accuracy"], abs=1e-6)
    if formats:
        program = torch.export.load("bundle/model.pt2").module()
        import onnxruntime

        (onnx_logits,) = onnxruntime.InferenceSession("bundle/model.onnx").run(
            None, {"input": x.numpy()}
        )
        with torch.no_grad():
            assert torch.allclose(program(x), logits, atol=1e-4)
        assert np.allclose(onnx_logits, logits.numpy(), atol=1e-4)
        manifest = json.loads(Path("bundle/bundle.json").read_text())
        assert manifest["files"] == {"export": "model.pt2", "onnx": "model.onnx"}

    # The report shows the search and the retraining.
    assert main(["report", "--output", "report", "--format", "svg"]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Retrained" in text and "best_over_trials.svg" in text
    assert (tmp_path / "report" / "accuracy_vs_params.svg").is_file()


def test_interrupted_retraining_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    dataset = str(_npz(tmp_path / "waves.npz"))
    assert main(["search", "--dataset", dataset, *NB201, *QUICK]) == 0
    command = ["train-best", "--epochs", "3", "--no-progress", "--checkpoint", "run.pt"]

    original = torch.optim.AdamW.step
    calls = {"n": 0}

    def stop_in_the_second_epoch(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # 81 examples at batch 128: one step per epoch
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", stop_in_the_second_epoch)
    assert main(command) == 130
    assert "run the same command to resume from run.pt" in capsys.readouterr().err
    assert Path("run.pt").is_file() and not retrained(_study(tmp_path, "nb201-waves"))
    monkeypatch.setattr(torch.optim.AdamW, "step", original)

    assert main(command) == 0
    out = capsys.readouterr().out
    assert "resuming from run.pt" in out
    resumed = retrained(_study(tmp_path, "nb201-waves"))[0]
    assert not Path("run.pt").exists()  # removed once the result is recorded
    assert main([*command[:-2], "--checkpoint", "again.pt"]) == 0
    whole = retrained(_study(tmp_path, "nb201-waves"))[1]
    assert resumed["test_accuracy"] == whole["test_accuracy"]


def _bad_cases(tmp: Path) -> list[tuple[list[str], str]]:
    """(arguments of search, what its error line must say), one per kind of bad data."""
    empty = _images(tmp / "empty")
    (empty / "void").mkdir()
    single = tmp / "single"
    (single / "only").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(single / "only" / "a.png")
    broken = _images(tmp / "broken")
    (broken / "square" / "zz.png").write_bytes(b"not an image")
    nan_table = tmp / "nan.csv"
    nan_table.write_text("a,b,label\n1,2,x\nnan,3,y\n4,5,x\n")
    no_label = tmp / "nolabel.csv"
    no_label.write_text("a,label\n1,x\n2,\n3,y\n")
    nan_npz = tmp / "nan.npz"
    x = np.ones((20, 3))
    x[7, 0] = np.inf
    np.savez(nan_npz, x=x, y=np.arange(20) % 2)
    no_y = tmp / "noy.npz"
    np.savez(no_y, x=np.ones((20, 3)))
    return [
        (["--dataset", str(empty), "--resolution", "8"], "'void' has no images"),
        (["--dataset", str(single)], "at least two class folders (only 'only')"),
        (["--dataset", str(broken), "--resolution", "8"], "zz.png: cannot read the image"),
        (["--dataset", str(nan_table), "--target", "label"], "'a' has NaN or infinite"),
        (["--dataset", str(no_label), "--target", "label"], "'label' is empty in 1 rows"),
        (["--dataset", str(nan_table)], "needs --target COLUMN"),
        (["--dataset", str(nan_npz)], "NaN or infinite inputs in 1 examples"),
        (["--dataset", str(no_y)], "no 'y' array"),
    ]


def test_bad_data_exits_2_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    # A study already stored must stay as it is.
    assert main(["search", "--dataset", str(_npz(tmp_path / "ok.npz")), *NB201, *QUICK]) == 0
    before = (tmp_path / "optuna_nas.db").read_bytes()
    capsys.readouterr()
    for arguments, message in _bad_cases(tmp_path / "bad"):
        assert main(["search", *arguments, *QUICK]) == 2, arguments
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (arguments, err)
        assert main(["train-best", *arguments, "--no-progress"]) == 2, arguments
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (arguments, err)
    assert (tmp_path / "optuna_nas.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "bad",
        "ok.npz",
        "optuna_nas.db",
        "optuna_nas_artifacts",
    ]
