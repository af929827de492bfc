"""The package's shape: a torch-free front door, a lazy public API, the dependency rule (checked
by import-linter), one table of block kinds, and the README's code run as written."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import effnet_lab

ROOT = Path(__file__).resolve().parents[1]


def _fresh_python(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


HEAVY = ("torch", "numpy", "torchvision", "PIL")
LOADED = f"import json, sys; print(json.dumps({{m: m in sys.modules for m in {HEAVY!r}}}))"


def test_paper_imports_no_torch_or_numpy():
    loaded = _fresh_python("import effnet_lab.paper.scaling, effnet_lab.paper.architecture, effnet_lab.paper.cost\n"
                           "c = effnet_lab.paper.cost.count_cost(effnet_lab.paper.architecture.EfficientNetConfig())\n"
                           + LOADED)
    assert loaded == dict.fromkeys(HEAVY, False)


def test_import_effnet_lab_is_lazy():
    loaded = _fresh_python("import effnet_lab\nassert effnet_lab.EfficientNetConfig().width == 1.0\n" + LOADED)
    assert loaded == dict.fromkeys(HEAVY, False)  # a torch-free name does not load torch
    loaded = _fresh_python("import effnet_lab\neffnet_lab.create_model\n" + LOADED)
    assert loaded["torch"]


def test_every_public_name_resolves():
    for name in effnet_lab.__all__:
        assert getattr(effnet_lab, name) is not None, name
        assert name in dir(effnet_lab)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        effnet_lab.nope  # noqa: B018


def test_dependency_rule_holds():
    """import-linter's contracts in pyproject.toml: paper torch-free and alone, the core free of
    teaching/UI libraries, onnx only in deploy, layers lab > deploy > train > model > weights | data > paper."""
    exe = Path(sys.executable).with_name("lint-imports")
    cmd = [str(exe)] if exe.exists() else [shutil.which("lint-imports") or "lint-imports"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "4 kept, 0 broken" in out.stdout


# ------------------------------------------------------------------------------ block kinds
def test_an_unknown_block_kind_is_refused_everywhere():
    from effnet_lab.model.blocks import block_class
    from effnet_lab.paper.architecture import StageSpec
    from effnet_lab.paper.blocks import block_kind

    for attempt in (lambda: StageSpec("mbcnv", 3, 1, 1, 16, 1), lambda: block_class("mbcnv"),
                    lambda: block_kind("mbcnv")):
        with pytest.raises(ValueError, match=r"unknown block kind 'mbcnv'; known kinds: \['fused', 'mbconv'\]"):
            attempt()


def _v2_s():
    """EfficientNetV2-S's stage table (paper Table 4; torchvision's efficientnet_v2_s), whose first
    stage is FusedMBConv with expand ratio 1: one 3×3 conv, no projection."""
    from effnet_lab.paper.architecture import EfficientNetConfig, StageSpec

    stages = (StageSpec("fused", 3, 1, 1, 24, 2, se=0.0), StageSpec("fused", 3, 2, 4, 48, 4, se=0.0),
              StageSpec("fused", 3, 2, 4, 64, 4, se=0.0), StageSpec("mbconv", 3, 2, 4, 128, 6),
              StageSpec("mbconv", 3, 1, 6, 160, 9), StageSpec("mbconv", 3, 2, 6, 256, 15))
    return EfficientNetConfig(stages, stem_channels=24, head_channels=1280, bn_eps=1e-3)


def test_fused_mbconv_with_expand_1_matches_torchvision_v2():
    """Built from the one block table, V2-S has torchvision's exact parameter count, its weights
    export into torchvision's model, and both compute the same logits; the analytic cost agrees."""
    import torchvision

    from effnet_lab.model.blocks import FusedMBConv
    from effnet_lab.paper.cost import count_cost
    from effnet_lab.weights.layouts import export_state_dict

    torch.manual_seed(0)
    ours = effnet_lab.EfficientNet(_v2_s()).eval()
    first = ours.stages[0][0]
    assert isinstance(first, FusedMBConv) and first.project is None and first.parts() == ("expand",)
    assert sum(p.numel() for p in ours.parameters()) == 21_458_488  # torchvision efficientnet_v2_s
    assert count_cost(_v2_s()).params == 21_458_488
    theirs = torchvision.models.efficientnet_v2_s().eval()
    theirs.load_state_dict(export_state_dict(ours, "torchvision"), strict=True)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), atol=1e-5)


# ------------------------------------------------------------------------------ the README
def _readme_blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_readme_python_blocks_run_as_written(tmp_path):
    """Every ```python block of the README, in order, in one fresh interpreter, from a folder
    laid out like a clone (data/ linked in), so their relative paths work as written."""
    (tmp_path / "data").symlink_to(ROOT / "data")
    blocks = _readme_blocks("python")
    assert len(blocks) >= 2
    script = tmp_path / "readme.py"
    script.write_text("\n\n".join(blocks))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, env=env,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "espresso" in out.stdout  # the model-card example's top-1 for the coffee photo
    assert (tmp_path / "runs" / "mine" / "best.pth").exists()


def test_readme_shell_commands_parse():
    """The README's command lines name only flags the CLI has (optional parts in [...] included)."""
    from effnet_lab.train import build_parser

    parser = build_parser()
    commands = [line for block in _readme_blocks("bash") for line in block.replace("\\\n", " ").splitlines()
                if "effnet_lab.train" in line]
    assert len(commands) >= 2
    for command in commands:
        args = command.split("effnet_lab.train", 1)[1].split("#")[0].replace("[", " ").replace("]", " ").split()
        parser.parse_args(args)  # exits (fails the test) on an unknown flag
