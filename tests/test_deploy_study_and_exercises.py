"""Notebook 08's exercises (checked against ONNX Runtime's scale/zero-point rule and torch's fake
quantization) and the quantization-sensitivity study (its two designs built as torch modules, a
smoke run through export and int8, the committed results)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from conftest import said

from effnet_lab.lab.exercises import check, get, solution  # noqa: E402
from effnet_lab.model.blocks import SqueezeExcite  # noqa: E402
from effnet_lab.model.network import EfficientNet  # noqa: E402


def _learner_scale_zero_point(rmin, rmax):
    rmin, rmax = min(rmin, 0.0), max(rmax, 0.0)
    scale = (rmax - rmin) / 255
    return scale, int(np.round(-rmin / scale))


def _learner_fake_quant(x, scale, zero_point):
    return (torch.clamp(torch.round(x / scale) + zero_point, 0, 255) - zero_point) * scale


def test_scale_zero_point_exercise_accepts_the_rule_and_refuses_near_misses(capsys):
    check("deploy.scale_zero_point", _learner_scale_zero_point)
    assert "✔ right" in capsys.readouterr().out
    # forgetting to include 0 in the range: right for ranges that straddle 0, wrong for ReLU6-like ones
    check("deploy.scale_zero_point", lambda a, b: ((b - a) / 255, int(np.round(-a / ((b - a) / 255)))))
    out = capsys.readouterr().out
    assert "✘ not quite (your function)" in out and said(get("deploy.scale_zero_point").hint) in said(out)

    def stub(rmin, rmax):
        ...

    check("deploy.scale_zero_point", stub)
    assert "not answered yet" in capsys.readouterr().out


def test_fake_quant_exercise_needs_the_clamp(capsys):
    check("deploy.fake_quant", _learner_fake_quant)
    assert "✔ right" in capsys.readouterr().out
    check("deploy.fake_quant", lambda x, s, z: (torch.round(x / s) + z - z) * s)  # no clipping
    assert "✘ not quite" in capsys.readouterr().out
    solution("deploy.fake_quant")
    out = capsys.readouterr().out
    assert "fake_quantize_per_tensor_affine" in out and "Answer:" not in out  # the code is the answer


def test_pasted_solutions_pass_their_own_checks(capsys):
    """The code `solution()` prints runs as pasted into a notebook that has only torch imported."""
    for key, name in (("deploy.scale_zero_point", "scale_zero_point"), ("deploy.fake_quant", "fake_quant")):
        code = get(key).solution.split("\n(")[0].split("\ntorch.")[0]  # the code, without the remark after it
        scope = {"torch": torch}
        exec(code, scope)
        check(key, scope[name])
        assert "✔ right" in capsys.readouterr().out, code


def test_an_error_in_the_learners_function_is_shown(capsys):
    check("deploy.fake_quant", lambda x, s, z: torch.clamp(torch.round(x / s) + z, 0, "255"))
    out = capsys.readouterr().out
    assert "✘ your function raised TypeError" in out and said(get("deploy.fake_quant").hint) in said(out)


def test_lite_changes_exercise(capsys):
    for right in ({"a", "b"}, "a, b", ["B", "a"], "(a) and (b)"):
        check("deploy.lite_changes", right)
        assert "✔ right" in capsys.readouterr().out
    for wrong in ({"a"}, {"a", "b", "c"}, "d"):
        check("deploy.lite_changes", wrong)
        assert "✘ not quite" in capsys.readouterr().out


def _convs(net: nn.Module) -> list[tuple]:
    in_se = {id(m) for s in net.modules() if isinstance(s, SqueezeExcite) for m in s.modules()}
    return [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.groups) for m in net.modules()
            if isinstance(m, nn.Conv2d) and id(m) not in in_se]


def test_the_two_designs_differ_only_in_activation_and_se():
    from effnet_lab.lab.studies import quantization as q

    b0, lite = (EfficientNet(c, 10, 1) for c in q.DESIGNS.values())
    kinds = [{type(m) for m in net.modules()} for net in (b0, lite)]
    assert nn.SiLU in kinds[0] and SqueezeExcite in kinds[0] and nn.ReLU6 not in kinds[0]
    assert nn.ReLU6 in kinds[1] and SqueezeExcite not in kinds[1] and nn.SiLU not in kinds[1]
    assert _convs(b0) == _convs(lite)  # the same convolutions, once SE's are set aside
    assert all(r["resolution"] == 28 for r in q.read_results(q.committed_results()))


def test_smoke_run_exports_and_quantizes_and_the_onnx_file_scores_like_eager(tmp_path):
    from effnet_lab.lab.studies import quantization as q

    run = q.runs("smoke", seeds=1)[1]  # Lite-style
    row = q.quantization_run(run, tmp_path / "w.pth")
    assert row["design"] == "Lite-style (ReLU6, no SE)" and row["data"]["test"] == 10_000
    assert abs(row["onnx_fp32_accuracy"] - row["accuracy"]) < 1e-3
    assert 0 <= row["int8_accuracy"] <= 1 and row["int8_mb"] < row["fp32_mb"]


def test_committed_study_has_three_seeds_per_design_and_exact_exports():
    from effnet_lab.lab.studies import quantization as q

    rows = q.read_results(q.committed_results())
    for design in q.DESIGNS:
        mine = [r for r in rows if r["design"] == design]
        assert sorted(r["seed"] for r in mine) == [0, 1, 2]
        assert all(abs(r["onnx_fp32_accuracy"] - r["accuracy"]) < 1e-3 for r in mine)
        assert all(r["calibration_images"] == 256 and r["data"]["test"] == 10_000 for r in mine)
