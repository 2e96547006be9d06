"""Every Python block of the README and the documentation runs, as a reader would run it.

A block preceded by ``<!-- not run: REASON -->`` is only compiled: it needs something the
tests do not have (a database host, say), and the comment says what.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"(<!-- not run: [^>]*-->\n)?```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str, bool]]:
    """Each block once: the quick start appears in the README and in the guide."""
    found, seen = [], set()
    for page in PAGES:
        for number, match in enumerate(BLOCK.finditer(page.read_text()), start=1):
            if match.group(2) in seen:
                continue
            seen.add(match.group(2))
            name = f"{page.relative_to(ROOT)}#{number}"
            found.append((name, match.group(2), match.group(1) is None))
    return found


BLOCKS = _blocks()


def test_the_pages_have_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize(("name", "code", "runs"), BLOCKS, ids=[b[0] for b in BLOCKS])
def test_block_runs(name: str, code: str, runs: bool, tmp_path: Path) -> None:
    compile(code, name, "exec")
    if not runs:
        return
    # The OptunaHub example loads the packages under samplers/ by a path from the root.
    cwd = ROOT if "optunahub" in code else tmp_path
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**__import__("os").environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stderr[-3000:]}"


def _docstring_examples(text: str) -> list[str]:
    """The ``.. code-block:: python`` bodies in ``text``, dedented."""
    lines = text.splitlines()
    examples = []
    for i, line in enumerate(lines):
        if line.strip() != ".. code-block:: python":
            continue
        body: list[str] = []
        indent = None
        for following in lines[i + 1 :]:
            if not following.strip():
                body.append("")
                continue
            width = len(following) - len(following.lstrip())
            if indent is None:
                indent = width
            if width < indent or '"""' in following:
                break
            body.append(following[indent:])
        examples.append("\n".join(body))
    return examples


def _all_docstring_examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted((ROOT / "optuna_nas").rglob("*.py")):
        for i, code in enumerate(_docstring_examples(path.read_text())):
            found.append((f"{path.relative_to(ROOT)}#{i}", code))
    return found


def test_docstring_examples_compile() -> None:
    """Every ``.. code-block:: python`` in the package's docstrings is valid Python."""
    examples = _all_docstring_examples()
    for name, code in examples:
        compile(code, name, "exec")
    assert len(examples) >= 20


@pytest.mark.parametrize(
    "name",
    [
        name
        for name, code in _all_docstring_examples()
        if not code.lstrip().startswith("# not run:")
    ],
)
def test_docstring_example_runs(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    """Each docstring example runs as written, in a fresh folder, except those whose first
    line says ``# not run: REASON`` (they need hardware or data this machine lacks)."""
    code = dict(_all_docstring_examples())[name]
    monkeypatch.chdir(tmp_path)
    if "benchmarks" in name:
        monkeypatch.setenv("OPTUNA_NAS_NB201_DIR", str(request.getfixturevalue("nb201_dir")))
    exec(compile(code, name, "exec"), {"__name__": "__example__"})
