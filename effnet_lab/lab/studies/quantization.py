"""Does the Lite design survive int8 better? Google's EfficientNet-Lite release says it swapped
SiLU for ReLU6 and removed squeeze-excitation because both hurt post-training quantization. This
study tests that on Fashion-MNIST: two networks of one shape, the study baseline at its native
28 px, one B0-style (SiLU, SE 0.25) and one Lite-style (ReLU6, no SE), trained with the scaling
study's recipe and seeds, exported to ONNX and quantized to int8 the same way (static QDQ,
per-channel weights, the same 256 training images for calibration); accuracy on all 10,000 test
images before and after.

    python -m effnet_lab.lab.studies.quantization --preset reduced --out results/quantization
"""

from __future__ import annotations

import logging
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ...data.fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_MEAN, FASHION_MNIST_STD
from ...data.resources import data_path
from ...data.tensor_batches import TensorBatches
from ...deploy import export_onnx, load_onnx, quantize_int8
from ...model.network import EfficientNet
from ...paper.architecture import B0_28PX, EfficientNetConfig, config_from_dict
from ...paper.budget import Scaling
from ...train.config import OneLineParser
from ...weights.checkpoint import read_checkpoint
from .scaling import IN_CHANS, NUM_CLASSES, PRESETS, RESULTS, Point, Run, _data, append_result, read_results, train_run

log = logging.getLogger(__name__)

COMMITTED = ("studies", "quantization-cpu-reduced")
CALIBRATION_IMAGES = 256


def lite_style(config: EfficientNetConfig) -> EfficientNetConfig:
    """The same network with Lite's two changes: ReLU6 for SiLU, no squeeze-excitation."""
    return replace(config, act="relu6", stages=tuple(replace(s, se=0.0) for s in config.stages))


NATIVE = B0_28PX.scaled(resolution=28)  # Fashion-MNIST's own size: no resampling
DESIGNS: dict[str, EfficientNetConfig] = {"B0-style (SiLU, SE)": NATIVE,
                                          "Lite-style (ReLU6, no SE)": lite_style(NATIVE)}


def _batches(split, config: EfficientNetConfig, batch_size: int = 1024) -> TensorBatches:
    return TensorBatches(split.images, split.labels, batch_size=batch_size, resolution=config.resolution,
                         mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD)


def quantization_run(run: Run, weights: Path) -> dict[str, Any]:
    """Train one network (its weights written to `weights`), then its accuracy as fp32 eager, fp32 ONNX
    and int8 ONNX on the whole test split."""
    row = train_run(run, "cpu", save_to=weights)
    config = run.point.config
    saved = read_checkpoint(weights)
    model = EfficientNet(config_from_dict(saved["config"]), NUM_CLASSES, IN_CHANS)
    model.load_state_dict(saved["state_dict"])
    model.eval()
    train, test = _data(run.recipe)
    calibration = next(iter(_batches(train, config, CALIBRATION_IMAGES)))[0]  # the first 256, unaugmented
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", example=calibration[:2], labels=list(FASHION_MNIST_CLASSES))
        int8 = quantize_int8(fp32, Path(tmp) / "int8.onnx", calibration, max_images=CALIBRATION_IMAGES)
        sizes = {"fp32_mb": fp32.stat().st_size / 1e6, "int8_mb": int8.stat().st_size / 1e6}
        runtimes = {"fp32": load_onnx(fp32), "int8": load_onnx(int8)}
        correct = dict.fromkeys(runtimes, 0)
        same = 0
        with torch.inference_mode():
            for x, y in _batches(test, config):
                preds = {kind: rt(x).argmax(1) for kind, rt in runtimes.items()}
                for kind, p in preds.items():
                    correct[kind] += int((p == y).sum())
                same += int((preds["fp32"] == preds["int8"]).sum())
    n = len(test)
    row.update({"experiment": "quantization", "design": run.point.label, "onnx_fp32_accuracy": correct["fp32"] / n,
                "int8_accuracy": correct["int8"] / n, "int8_agreement": same / n,
                "calibration_images": CALIBRATION_IMAGES, **sizes})
    return row


def runs(preset: str = "reduced", seeds: int | None = None) -> list[Run]:
    p = PRESETS[preset]
    return [Run(Point("quantization", label, "baseline", Scaling(), base=config), seed, p.recipe)
            for label, config in DESIGNS.items() for seed in range(p.seeds if seeds is None else seeds)]


def run_quantization_study(out: str | Path, preset: str = "reduced", seeds: int | None = None) -> list[dict]:
    """Every run not yet in `out/results.jsonl`, appended as it finishes (a killed study resumes)."""
    out = Path(out)
    path = out / RESULTS
    done = {r["key"] for r in read_results(path)}
    rows = []
    for run in runs(preset, seeds):
        if run.key() in done:
            continue
        with tempfile.TemporaryDirectory() as tmp:  # the weights are not kept: the results are the point
            row = quantization_run(run, Path(tmp) / "weights.pth")
        row["preset"] = preset
        append_result(path, row)
        rows.append(row)
        log.info("%s seed %d: fp32 %.4f, int8 %.4f", row["design"], row["seed"], row["accuracy"], row["int8_accuracy"])
    return rows


def committed_results() -> Path:
    return data_path(*COMMITTED, RESULTS)


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m effnet_lab.lab.studies.quantization", description=__doc__.split("\n")[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    p.add_argument("--seeds", type=int, help="seeds per design (default: the preset's)")
    p.add_argument("--out", type=Path, required=True, help="folder for results.jsonl")
    args = p.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        p.error("--seeds must be a positive integer")
    if not args.out.parent.is_dir():
        p.error(f"--out {args.out}: its folder {args.out.parent} does not exist")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_quantization_study(args.out, args.preset, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
