"""effnet_lab.deploy against ONNX Runtime (a runtime we did not write), on real weights and photos."""

from __future__ import annotations

import copy
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
import onnx  # noqa: E402
from conftest import max_diff, randomize_bn  # noqa: E402
from torch import nn  # noqa: E402

import effnet_lab  # noqa: E402
from effnet_lab.data.config import resolve_data_config  # noqa: E402
from effnet_lab.data.folders import is_image_file  # noqa: E402
from effnet_lab.data.images import load_image  # noqa: E402
from effnet_lab.data.transforms import create_transform  # noqa: E402
from effnet_lab.deploy import (  # noqa: E402
    agreement,
    export_onnx,
    folder_accuracy,
    load_onnx,
    onnx_metadata,
    quantize_int8,
)

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = sorted(p for p in (ROOT / "data" / "images").iterdir() if is_image_file(p))
DEMO = sorted(p for p in (ROOT / "data" / "demo").rglob("*") if is_image_file(p))


def _batch(model, paths, size=None):
    cfg = resolve_data_config(model) if size is None else resolve_data_config(model, input_size=size)
    t = create_transform(**cfg)
    return torch.stack([t(load_image(p)) for p in paths])


def bn_statistics_from(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Random weights, but each BatchNorm's running statistics measured on the batch `x` (real
    photos): with default statistics a random B0's logits barely depend on the image, so an
    export that ignored its input would pass a logit comparison."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


@pytest.fixture(scope="module")
def lite0_onnx(lite0, tmp_path_factory) -> Path:
    return export_onnx(lite0, tmp_path_factory.mktemp("lite0") / "lite0.onnx")


def test_lite0_real_weights_match_eager_at_batch_1_and_8_on_real_photos(lite0, lite0_onnx):
    runtime = load_onnx(lite0_onnx)
    x = _batch(lite0, (PHOTOS + DEMO)[:8])
    with torch.no_grad():
        for batch in (x[:1], x):
            assert max_diff(runtime(batch), lite0(batch)) < 1e-4
    # predict treats the ONNX file like the model: same labels, same probabilities
    eager, exported = effnet_lab.predict(lite0, PHOTOS), effnet_lab.predict(runtime, PHOTOS)
    for a, b in zip(eager, exported, strict=True):
        assert [label for label, _ in a] == [label for label, _ in b]
        assert max(abs(pa - pb) for (_, pa), (_, pb) in zip(a, b, strict=True)) < 1e-5


def test_the_file_carries_the_data_config_and_class_names(lite0, lite0_onnx):
    meta = onnx_metadata(lite0_onnx)
    runtime = load_onnx(lite0_onnx)
    assert runtime.pretrained_cfg["label_names"] == effnet_lab.imagenet_class_names()
    assert resolve_data_config(runtime) == resolve_data_config(lite0)
    assert meta["effnet_lab.architecture"] == "efficientnet_lite0"
    # the graph is a valid ONNX model by the onnx package's own checker
    onnx.checker.check_model(onnx.load(lite0_onnx))


@pytest.mark.parametrize("name, other_size", [("efficientnet_b0", (3, 256, 192)), ("tf_efficientnet_b0", None),
                                              ("efficientnet_es", (3, 160, 160))])
def test_random_weight_models_match_eager(name, other_size, tmp_path):
    torch.manual_seed(0)
    model = effnet_lab.create_model(name)
    x = _batch(model, PHOTOS + DEMO[::12])
    bn_statistics_from(model, x)
    path = export_onnx(model, tmp_path / f"{name}.onnx")
    runtime = load_onnx(path)
    x = x[:8]
    with torch.no_grad():
        ref = model(x)
        assert (ref - ref.mean(0)).abs().max() > 0.1  # the logits depend on the image
        for batch in (slice(0, 1), slice(0, 8)):
            assert max_diff(runtime(x[batch]), ref[batch]) < 1e-4
        if other_size is None:  # TF "same" padding: exported at one size, and says so for another
            with pytest.raises(ValueError, match=r"expects an input of shape \(N, 3, 224, 224\)"):
                runtime(_batch(model, PHOTOS[:1], (3, 256, 256)))
        else:
            y = _batch(model, PHOTOS[:2], other_size)
            assert max_diff(runtime(y), model(y)) < 1e-4


_EXPORTED_ABOVE = {"efficientnet_lite0", "efficientnet_b0", "tf_efficientnet_b0", "efficientnet_es"}


@pytest.mark.parametrize("name", sorted(set(effnet_lab.list_models()) - _EXPORTED_ABOVE))
def test_every_registered_architecture_exports_and_matches_eager(name, tmp_path):
    """Every other registered model (B1-B7, the TF ports, EdgeTPU M/L, Lite1-4, V2 S/M/L) at 64 px
    with a 10-class head (the graph is the same at any size; small keeps this test in minutes):
    random weights, BatchNorm statistics measured on real photos. A deep random network amplifies
    every summation-order difference (tf_efficientnetv2_l: PyTorch's own fp32 logits are 0.26 from
    float64's on logits of 149, channels_last's 0.34), so ONNX Runtime is held to 1e-3 relative
    to the logits' scale, or to 4× PyTorch fp32's own distance from the float64 result where that
    is larger; the four models above are held to 1e-4 absolute."""
    torch.manual_seed(0)
    model = effnet_lab.create_model(name, num_classes=10)
    x = _batch(model, PHOTOS + DEMO[::12], (3, 64, 64))
    bn_statistics_from(model, x)
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_size=(3, 64, 64))
    x = x[:3]
    with torch.no_grad():
        ref = model(x)
        exact = copy.deepcopy(model).double()(x.double())
    assert (ref - ref.mean(0)).abs().max() > 1e-3  # the logits depend on the image
    out = load_onnx(path)(x)
    fp32_noise = max_diff(ref.double(), exact)
    assert max_diff(out.double(), exact) <= max(1e-3 * max(1.0, ref.abs().max().item()), 4 * fp32_noise)
    assert torch.equal(out.argmax(1), ref.argmax(1))


def test_int8_lite0_agrees_with_fp32_on_every_real_photo(lite0, lite0_onnx, tmp_path):
    calibration = ROOT / "data" / "demo" / "train"  # 109 photos
    photos = PHOTOS + DEMO
    results = {}
    for float_until in (None, "stages.2"):
        int8 = quantize_int8(lite0_onnx, tmp_path / f"lite0.{float_until}.onnx", calibration, float_until=float_until)
        assert int8.stat().st_size < lite0_onnx.stat().st_size / 3  # int8 weights: under a third of fp32
        runtime = load_onnx(int8)
        assert runtime.pretrained_cfg["label_names"][:2] == ["tench", "goldfish"]
        a = results[float_until] = agreement(lite0, runtime, photos)
        print(f"int8 Lite0, fp32 up to {float_until}: top-1 agrees with fp32 on {a.top1_same}/{a.count} photos "
              f"({a.rate:.1%}); largest fp32 lead among the flips {a.worst_flip_margin:.3f}")
    assert results[None].count == len(photos) > 100
    # Measured here: all int8 136/151 (90.1 %); with the stem and stages 0-2 in fp32 (30 % of the
    # FLOPs) 147/151 (97.4 %), issue 11's ≥ 95 %, and the 4 photos that still flip are near-ties
    # (fp32's top two classes within 0.021 in probability). int8 arithmetic differs a little
    # between CPUs (VNNI or not), hence floors rather than the exact counts.
    assert results[None].rate >= 0.85
    assert results["stages.2"].rate >= 0.95 and results["stages.2"].worst_flip_margin < 0.05
    ops = {n.op_type for n in onnx.load(tmp_path / "lite0.None.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops


def test_fine_tuned_demo_model_keeps_its_validation_accuracy_through_export_and_int8(tmp_path):
    """Notebook 06's fine-tune (Lite0, partial, 2 epochs at 128 px on data/demo/train), shipped:
    the ONNX file alone (its metadata: 128-px preprocessing, the 4 class names) scores exactly the
    eager model's validation accuracy; int8 is printed beside it."""
    from effnet_lab.train import finetune

    demo = ROOT / "data" / "demo"
    trainer = finetune(demo, "efficientnet_lite0", pretrained=True, strategy="partial", epochs=2, batch_size=16,
                       img_size=128, lr=3e-3, freeze_bn_stats=True, seed=0, output=str(tmp_path / "run"))
    model = trainer.model.eval()
    fp32 = export_onnx(model, tmp_path / "demo.onnx")
    int8 = quantize_int8(fp32, tmp_path / "demo.int8.onnx", demo / "train")
    val = demo / "val"
    results = {kind: folder_accuracy(m, val) for kind, m in
               (("eager", model), ("onnx fp32", load_onnx(fp32)), ("onnx int8", load_onnx(int8)))}
    print("fine-tuned demo model, validation accuracy: " +
          ", ".join(f"{k} {c}/{n} = {c / n:.1%}" for k, (c, n) in results.items()))
    assert load_onnx(fp32).pretrained_cfg["input_size"] == (3, 128, 128)
    assert results["onnx fp32"] == results["eager"] and results["eager"][1] == 37
    assert results["eager"][0] / 37 > 0.5  # 4 classes: well above chance, or the fine-tune failed
    assert results["onnx int8"][0] >= results["eager"][0] - 4  # at most 4 of 37 lost to int8


def test_float_until_must_name_a_module(lite0_onnx, tmp_path):
    with pytest.raises(ValueError, match="float_until='stages.9' names no module.*stem, stages.0"):
        quantize_int8(lite0_onnx, tmp_path / "q.onnx", ROOT / "data" / "demo" / "train", float_until="stages.9")
    assert not (tmp_path / "q.onnx").exists()


def test_training_mode_is_exported_in_eval_mode_and_restored(tmp_path, caplog):
    model = randomize_bn(effnet_lab.create_model("efficientnet_b0", drop_rate=0.5))
    model.train()
    with caplog.at_level(logging.WARNING):
        path = export_onnx(model, tmp_path / "b0.onnx", size="static")
    assert "training mode" in caplog.text and model.training
    x = _batch(model, PHOTOS[:2])
    with torch.no_grad():
        assert max_diff(load_onnx(path)(x), model.eval()(x)) < 1e-4


def test_existing_files_are_kept_unless_overwrite(lite0, lite0_onnx, tmp_path):
    target = tmp_path / "mine.onnx"
    target.write_text("precious")
    with pytest.raises(FileExistsError, match="mine.onnx exists"):
        export_onnx(lite0, target)
    with pytest.raises(FileExistsError, match="mine.onnx exists"):
        quantize_int8(lite0_onnx, target, ROOT / "data" / "demo" / "train")
    assert target.read_text() == "precious"
    with pytest.raises(FileNotFoundError, match="no_such_folder"):
        export_onnx(lite0, tmp_path / "no_such_folder" / "x.onnx")


def test_bad_calibration_is_refused_naming_it(lite0_onnx, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="empty holds no images"):
        quantize_int8(lite0_onnx, tmp_path / "q.onnx", empty)
    with pytest.raises(FileNotFoundError, match="missing"):
        quantize_int8(lite0_onnx, tmp_path / "q.onnx", tmp_path / "missing")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "cat.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="cat.jpg"):
        quantize_int8(lite0_onnx, tmp_path / "q.onnx", broken)
    assert not (tmp_path / "q.onnx").exists()


def test_a_file_without_our_metadata_needs_a_data_config(lite0_onnx, tmp_path):
    proto = onnx.load(lite0_onnx)
    del proto.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(proto, bare)
    with pytest.raises(ValueError, match="no effnet_lab metadata.*data_config"):
        load_onnx(bare)
    runtime = load_onnx(bare, data_config={"input_size": (3, 224, 224), "mean": (0.5,) * 3, "std": (0.5,) * 3})
    assert resolve_data_config(runtime)["mean"] == (0.5, 0.5, 0.5)
    assert runtime.num_classes == 1000
    with pytest.raises(ValueError, match=r"expects an input of shape \(batch, 3, 224, 224\)|\(N, 3, 224, 224\)"):
        runtime(torch.zeros(1, 1, 224, 224))
    with pytest.raises(FileNotFoundError, match="nothing.onnx"):
        load_onnx(tmp_path / "nothing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.onnx: ONNX Runtime cannot load it"):
        load_onnx(junk)


def test_missing_extra_says_which_to_install(monkeypatch):
    import importlib.util

    from effnet_lab import deploy

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ImportError, match=r"needs onnxruntime.*effnet-lab\[deploy\]"):
        deploy.require_deploy_extra()


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "effnet_lab.deploy", *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT)


def test_cli_exports_quantizes_and_reports_agreement(tmp_path):
    out = tmp_path / "lite0.onnx"
    r = _cli("--model", "efficientnet_lite0", "--pretrained", "--onnx", out, "--int8",
             "--calibration", ROOT / "data" / "demo" / "val", "--check", *PHOTOS)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0].startswith(f"fp32: {out}") and f"agrees with eager on {len(PHOTOS)}/{len(PHOTOS)}" in lines[0]
    assert lines[1].startswith(f"int8: {tmp_path / 'lite0.int8.onnx'}")
    # a second run refuses to overwrite, in one line, before exporting anything
    r = _cli("--model", "efficientnet_lite0", "--onnx", out)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "exists" in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "efficientnet_b0", "--onnx", "x.onnx", "--int8"], "--int8 needs --calibration"),
    (["--model", "efficientnet_b0", "--onnx", "x.onnx", "--batch", "two"], "--batch must be"),
    (["--model", "nope", "--onnx", "x.onnx"], "'nope' is not registered"),
    (["--model", "efficientnet_b0", "--onnx", "x.onnx", "--float-until", "stem"], "--float-until is only used with"),
    (["--model", "efficientnet_b0", "--onnx", "x.onnx", "--int8", "--calibration", str(ROOT / "data" / "demo" / "val"),
      "--float-until", "stage.1"],
     "'stage.1' is not a module"),
    (["--model", "efficientnet_b0", "--onnx", "x.onnx", "--check", "missing.jpg"], "missing.jpg: no such file"),
])
def test_cli_errors_are_one_line(args, message, tmp_path):
    r = subprocess.run([sys.executable, "-m", "effnet_lab.deploy", *args], capture_output=True, text=True,
                       cwd=tmp_path)
    assert r.returncode != 0 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "x.onnx").exists()
