"""Smoke tests of the benchmark scripts: they run, check what they compare and print their
ratio lines. No timing is asserted (the machines are noisy); the numbers live in the scripts'
output."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"


def _run(script: str, *args: str) -> str:
    res = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, cwd=ROOT,
                         timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def _ratio_labels(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("ratio ")]


def test_b0_cpu_quick() -> None:
    out = _run("bench_b0_cpu.py", "--quick", "--batch", "2", "--size", "64", "--threads", "1")
    lines = _ratio_labels(out)
    for label in ("effnet_lab / timm, inference", "effnet_lab / timm, train step",
                  "effnet_lab fused+CL / timm default, inference"):
        assert any(line.startswith("ratio " + label) for line in lines), out
    assert "max abs diff" in out and "(OK," in out


def test_b0_cpu_memory_worker() -> None:
    out = _run("bench_b0_cpu.py", "--mem-worker", "infer", "effnet_lab fused+CL", "--batch", "1", "--size", "64",
               "--threads", "1")
    report = json.loads(out.strip().splitlines()[-1])
    assert report["peak_mib"] > 0 and report["method"]


def test_finetune_step_quick() -> None:
    """The timm twin must hold the same weights (eval logits equal) and the same trainable
    parameters as effnet_lab's trainer, or the script exits non-zero."""
    out = _run("bench_finetune_step.py", "--quick", "--batch", "2", "--size", "64", "--threads", "1",
               "--strategies", "linear", "partial")
    lines = _ratio_labels(out)
    assert [line.split(",")[-1].split()[0] for line in lines] == ["linear", "partial"], out


def test_finetune_step_memory_worker() -> None:
    out = _run("bench_finetune_step.py", "--mem-worker", "full", "timm", "--batch", "2", "--size", "64",
               "--threads", "1")
    report = json.loads(out.strip().splitlines()[-1])
    assert report["peak_mib"] > 0


def test_finetune_demo_one_short_run() -> None:
    out = _run("bench_finetune_demo.py", "--strategy", "linear", "--epochs", "1", "--img-size", "64", "--seeds", "0",
               "--threads", "1")
    assert "109 train / 37 val images" in out, out
    # one epoch of a linear probe at 64 px on pretrained Lite0 is already far above chance (25 %)
    correct = int(re.search(r"epoch 1: .*val acc [0-9.]+ \((\d+)/37\)", out).group(1))
    assert correct >= 19, out
    verdict = out.strip().splitlines()[-1]
    assert verdict.startswith(("PASS: 1 of 1 seeds", "MISS: 0 of 1 seeds")), out


def test_study_pipeline_quick() -> None:
    out = _run("bench_study_pipeline.py", "--quick", "--batch", "32", "--data", "subset", "--workers", "1",
               "--threads", "1")
    labels = [line.split("  ")[0] for line in _ratio_labels(out)]
    assert len(labels) == 4 and "Fashion-MNIST train (subset, 5000 images)" in out, out


def test_deploy_cpu_quick() -> None:
    pytest.importorskip("onnxruntime")
    out = _run("bench_deploy_cpu.py", "--quick", "--threads", "1")
    lines = _ratio_labels(out)
    for label in ("ONNX Runtime fp32 / timm eager, efficientnet_lite0 b1", "ONNX Runtime int8 / timm eager, "
                  "efficientnet_lite0 b8", "effnet_lab fused+CL / timm eager, efficientnet_lite0 b8"):
        assert any(line.startswith("ratio " + label) for line in lines), out
    assert re.search(r"ONNX Runtime fp32 .* top-1 = timm on 1/1", out), out


def test_v2_step_quick() -> None:
    """The three V2-S builds must hold the same weights (eval logits equal), or the script fails."""
    out = _run("bench_v2_step.py", "--quick", "--batch", "2", "--size", "64", "--threads", "1")
    labels = [line.split(",")[0].split("ratio ")[1].strip() for line in _ratio_labels(out)]
    assert labels == ["effnet_lab / timm", "effnet_lab / torchvision"] * 2, out
    assert "parameters effnet_lab 21,458,488, timm 21,458,488, torchvision 21,458,488" in out


def test_v2_step_memory_worker() -> None:
    out = _run("bench_v2_step.py", "--mem-worker", "train", "torchvision", "--batch", "2", "--size", "64",
               "--threads", "1")
    assert json.loads(out.strip().splitlines()[-1])["peak_mib"] > 0
