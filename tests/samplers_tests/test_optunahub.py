from __future__ import annotations

import runpy
from pathlib import Path

import optuna
import optunahub
import pytest

from optuna_nas import samplers, spaces

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {
    "regularized_evolution": samplers.RegularizedEvolutionSampler,
    "reinforce": samplers.REINFORCESampler,
    "dedup_random": samplers.DeduplicatingRandomSampler,
    "conditional_gp": samplers.ConditionalGPSampler,
}


def test_every_package_directory_is_covered() -> None:
    found = {p.name for p in (REPO_ROOT / "samplers").iterdir() if (p / "__init__.py").is_file()}
    assert found == set(PACKAGES)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_package_has_registry_files(name: str) -> None:
    root = REPO_ROOT / "samplers" / name
    for required in ("__init__.py", "README.md", "LICENSE", "example.py"):
        assert (root / required).is_file(), required
    front = (root / "README.md").read_text().split("---")[1]
    fields = dict(line.split(":", 1) for line in front.strip().splitlines())
    assert {"author", "title", "description", "tags", "optuna_versions", "license"} <= set(fields)
    assert "sampler" in fields["tags"]


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_load_local_module_and_run_a_study(name: str) -> None:
    module = optunahub.load_local_module(package=f"samplers/{name}", registry_root=str(REPO_ROOT))
    cls = getattr(module, PACKAGES[name].__name__)
    assert cls is PACKAGES[name]
    space = spaces.create("nb201")
    study = optuna.create_study(direction="maximize", sampler=cls(seed=0))

    def objective(trial: optuna.Trial) -> float:
        return float(sum(op == "nor_conv_3x3" for op in space.suggest(trial).genotype))

    study.optimize(objective, n_trials=14)
    assert len(study.trials) == 14
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)


@pytest.mark.parametrize("name", sorted(PACKAGES))
def test_example_runs(name: str) -> None:
    example = runpy.run_path(str(REPO_ROOT / "samplers" / name / "example.py"))
    study = example["main"](n_trials=12, seed=1)
    assert len(study.trials) == 12
    assert study.best_value >= 1.0
