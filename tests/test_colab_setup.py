"""The "Open in Colab" header of every notebook, short of running Colab itself (no network).

* every notebook carries the badge and set-up cell stamped from pyproject's one Repository URL;
* the set-up cell, turned into Python by IPython exactly as a kernel would, runs nothing
  outside Colab, and under a stand-in `google.colab` module issues the clone, the editable
  install and the `cd` into notebooks/, in that order, with that URL;
* the cell works, run in a fresh interpreter against a local copy of this repository (a
  file:// clone standing in for GitHub): the clone is a pip-installable project, `import
  effnet_lab` then comes from the clone without a restart, and from its notebooks/ folder
  `effnet_lab.data_path` finds the clone's photos, demo dataset and SE weights.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest
from IPython.core.inputtransformer2 import TransformerManager

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
NEEDS_EXTRA = {"08_deployment.ipynb": '"/content/effnet_lab[deploy]"'}  # Colab has no onnxruntime


def _repository_url() -> str:
    return re.search(r'^Repository\s*=\s*"([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)


def _setup_source(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    assert "colab-badge" in cells[0]["metadata"].get("tags", []), f"{path.name}: no Colab badge first"
    assert "colab-setup" in cells[1]["metadata"].get("tags", []), f"{path.name}: no Colab set-up cell second"
    return "".join(cells[1]["source"])


class _RecordingShell:
    """Stands in for IPython's shell: records `!cmd` and `%magic` calls instead of running them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def system(self, cmd: str) -> None:
        self.calls.append(("system", cmd))

    def run_line_magic(self, name: str, line: str, _stack_depth: int = 1) -> None:
        self.calls.append((name, line))


def _run_setup(source: str, in_colab: bool, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    shell = _RecordingShell()
    if in_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the cell may extend it; undone after the test
    exec(compile(_as_python(source), "<colab-setup>", "exec"), {"get_ipython": lambda: shell})
    return shell.calls


def _as_python(source: str) -> str:
    return TransformerManager().transform_cell(source)  # `!` and `%` lines → get_ipython() calls


# Runs in a fresh interpreter: the set-up cell for real, "/content" moved into a temporary folder
# and GitHub replaced by a file:// clone of this checkout; then what the notebooks read.
_COLAB_PROBE = """
import json, os, subprocess, sys, types
code, url, local_url, content = sys.argv[1:5]
sys.modules["google.colab"] = types.ModuleType("google.colab")

class Shell:
    def system(self, cmd):
        subprocess.run(cmd.replace(url, local_url), shell=True, check=True)
    def run_line_magic(self, name, line, _stack_depth=1):
        if name == "pip":  # resolve against what is installed, offline, and change nothing
            args = [*line.split(), "--dry-run", "--no-index", "--no-build-isolation"]
            subprocess.run([sys.executable, "-m", "pip", *args], check=True, stdout=subprocess.DEVNULL)
        elif name == "cd":
            os.chdir(line)
        else:
            raise AssertionError(f"unexpected magic %{name}")

exec(code.replace("/content", content), {"get_ipython": Shell})
import effnet_lab
d = effnet_lab.data_path
print(json.dumps([os.getcwd(), effnet_lab.__file__, str(d("images")), str(d("demo", "train")), str(d("weights"))]))
"""


def test_header_is_up_to_date() -> None:
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "notebook_header.py"), "--check"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badge_points_at_this_notebook(path: Path) -> None:
    badge = "".join(json.loads(path.read_text())["cells"][0]["source"])
    repo = _repository_url().split("github.com/", 1)[1]
    assert f"https://colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}" in badge


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_runs_only_in_colab(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _setup_source(path)
    assert _run_setup(source, in_colab=False, monkeypatch=monkeypatch) == []
    calls = _run_setup(source, in_colab=True, monkeypatch=monkeypatch)
    assert sys.path[0] == "/content/effnet_lab", "the clone must be importable without a restart"
    assert calls == [("system", f"git clone -q --depth 1 {_repository_url()} /content/effnet_lab"),
                     ("pip", f"install -q -e {NEEDS_EXTRA.get(path.name, '/content/effnet_lab')}"),
                     ("cd", "/content/effnet_lab/notebooks")]


@pytest.mark.skipif(shutil.which("git") is None or not (ROOT / ".git").exists(), reason="needs a git checkout")
def test_setup_cell_works_on_a_local_clone(tmp_path: Path) -> None:
    """The whole cell in a fresh interpreter: clone, `pip install -e` (dry run), sys.path, `cd`;
    then `import effnet_lab` must come from the clone, as in Colab's running kernel (where the
    editable install's .pth file is not read until a restart), and find the clone's data."""
    content = tmp_path / "content"
    content.mkdir()
    code = _as_python(_setup_source(NOTEBOOKS[0]))
    res = subprocess.run([sys.executable, "-c", _COLAB_PROBE, code, _repository_url(), ROOT.as_uri(), str(content)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    cwd, package, images, demo_train, weights = map(Path, json.loads(res.stdout.strip().splitlines()[-1]))
    clone = content / "effnet_lab"
    assert cwd == clone / "notebooks"
    assert sorted(p.name for p in cwd.glob("[0-9][0-9]_*.ipynb")) == [p.name for p in NOTEBOOKS]
    assert package.is_relative_to(clone), f"effnet_lab imported from {package}, not from the clone"
    assert images.is_relative_to(clone) and len(list(images.glob("*.jpg"))) + len(list(images.glob("*.png"))) >= 5
    assert sorted(p.name for p in demo_train.iterdir()) == ["birds", "flowers", "fruit", "mammals"]
    assert list(weights.glob("*.pth")), f"no shipped weights in {weights}"
