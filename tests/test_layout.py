"""The shape of the package: private names in one adapter, small modules, no import cycle."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "optuna_nas"

# Pure numerical cores may be longer than 500 lines; each says why in its docstring.
LONG_NUMERICAL_CORES = {"pruners/_curves.py", "samplers/_gp_model.py"}

PRIVATE_USE = re.compile(
    r"(?<!optuna_nas)\._(?:trial_id|study_id|storage|get_trials|backend|cached)\b"
    r"|\b(?:optuna|botorch|gpytorch)(?:\.\w+)*\._\w+"
    r"|from (?:optuna|botorch|gpytorch)(?:\.[\w.]+)? import _\w+"
    r"|\"fixed_params\"|\"failed_trial\"|\"retry_history\""
    r"|_log_ei_helper|_process_constraints_after_trial|is_heartbeat_enabled|_load_attempted"
)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def test_private_names_of_optuna_and_botorch_appear_only_in_the_adapter() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "_compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if PRIVATE_USE.search(line.split("#")[0]):
                offenders.append(f"{path.relative_to(PACKAGE)}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_no_module_exceeds_500_lines_but_the_numerical_cores() -> None:
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 500
    }
    assert set(long) <= LONG_NUMERICAL_CORES, long
    for core in LONG_NUMERICAL_CORES:
        assert "pure numerical" in (PACKAGE / core).read_text()[:1500].lower(), core


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports, lazily or not, outside ``TYPE_CHECKING``."""
    found: set[str] = set()
    is_package = path.name == "__init__.py"

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if (
                getattr(test, "id", None) == "TYPE_CHECKING"
                or getattr(test, "attr", None) == "TYPE_CHECKING"
            ):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.update(a.name for a in node.names if a.name.startswith("optuna_nas"))

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            module = node.module or ""
            if node.level:
                base = name if is_package else name.rsplit(".", 1)[0]
                for _ in range(node.level - 1):
                    base = base.rsplit(".", 1)[0]
                module = f"{base}.{module}" if module else base
            if module.startswith("optuna_nas"):
                for alias in node.names:
                    full = f"{module}.{alias.name}"
                    found.add(full if full in modules else module)

    Visitor().visit(ast.parse(path.read_text()))
    resolved = set()
    for target in found:
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        # Importing a submodule runs its packages' __init__ first.
        parts = target.split(".")
        for i in range(2, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in modules and prefix != name and not name.startswith(prefix + "."):
                resolved.add(prefix)
    return resolved


def test_no_import_cycle() -> None:
    modules = _modules()
    graph = {name: _imports(name, path, modules) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_imports_run_one_way() -> None:
    """Spaces, nn and data know nothing of samplers, pruners, workers or the CLI; training
    knows no pruner; the study layer knows no worker or CLI."""
    modules = _modules()
    forbidden = {
        "optuna_nas.spaces": ("samplers", "pruners", "workers", "cli", "study", "training"),
        "optuna_nas.nn": ("samplers", "pruners", "workers", "cli", "study", "spaces"),
        "optuna_nas.data": ("samplers", "pruners", "workers", "cli", "study", "spaces"),
        "optuna_nas.training": ("samplers", "pruners", "workers", "cli", "study"),
        "optuna_nas.samplers": ("pruners", "workers", "cli", "study", "training"),
        "optuna_nas.pruners": ("samplers", "workers", "cli", "study", "training"),
        "optuna_nas.study": ("workers", "cli"),
        "optuna_nas.workers": ("cli",),
    }
    wrong = []
    for name, path in modules.items():
        for layer, banned in forbidden.items():
            if name == layer or name.startswith(layer + "."):
                for target in _imports(name, path, modules):
                    if any(target.startswith(f"optuna_nas.{b}") for b in banned):
                        wrong.append(f"{name} -> {target}")
    assert not wrong, wrong


def test_cli_help_does_not_import_torch_or_optuna() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from optuna_nas.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules, 'optuna' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


# Per-run fields that copy NAS-Bench-201 table values from ../shared into a results file.
TABLE_VALUE_FIELDS = {"best_value", "test_of_best", "test_acc", "best_reward", "best_so_far"}


def _tracked_results() -> list[Path]:
    import shutil
    import subprocess

    root = PACKAGE.parent
    if shutil.which("git") is None or not (root / ".git").exists():
        return sorted((root / "benchmarks" / "results").glob("*.json*"))
    names = subprocess.run(
        ["git", "ls-files", "benchmarks/results"], cwd=root, capture_output=True, text=True
    ).stdout.split()
    return [root / n for n in names if n.endswith((".json", ".jsonl"))]


def test_no_committed_results_file_holds_per_run_table_values() -> None:
    import json

    offending = []
    for path in _tracked_results():
        text = path.read_text()
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            data = json.loads(text)
            rows = data.get("runs", []) if isinstance(data, dict) else []
        for row in rows:
            if isinstance(row, dict) and TABLE_VALUE_FIELDS & set(row):
                offending.append(f"{path.name}: {sorted(TABLE_VALUE_FIELDS & set(row))}")
                break
    assert not offending, offending
