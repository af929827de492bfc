#!/usr/bin/env python3
"""Train the SE gates studied in notebooks/02_squeeze_excitation.ipynb and save them.

    python data/weights/build_se_lite0_demo.py            # writes data/weights/se_lite0_demo.pth

What is trained (see effnet_lab/se_study.py): EfficientNet-Lite0's ImageNet trunk, frozen,
with one squeeze-excitation module added to every MBConv block (B0's ratio 0.25 and SiLU
inside, each starting as an almost open gate, σ(3) ≈ 0.95) and a new 4-class classifier.
Only the SE modules and the classifier learn, on the demo dataset (data/demo: 109 training
photos of birds, flowers, fruit and mammals; the 37 validation photos are only evaluated,
and the last epoch is kept, not the best). For a fair baseline the same recipe also trains a
classifier alone on plain Lite0 (no SE).

Runs on CPU in about 2–15 minutes (2 cores, idle to busy); a rerun on the same machine gives
bitwise the same weights (checked). Saved in float16 (~1.4 MB): the SE parameters, both
classifiers, each gate's average over the training photos, the class names, the recipe and
the training history.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from effnet_lab import create_model  # noqa: E402
from effnet_lab.lab.se_study import (  # noqa: E402
    GATE_INIT_BIAS,
    build_se_lite0,
    collect_gates,
    demo_datasets,
    evaluate_tensors,
    load_se_lite0,
    save_trained,
    stack,
    train_trainable,
)
from effnet_lab.weights.checkpoint import read_checkpoint, save_atomic  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=str(Path(__file__).with_name("se_lite0_demo.pth")))
    parser.add_argument("--gate-bias", type=float, default=GATE_INIT_BIAS)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    recipe = dict(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, weight_decay=0.01,
                  label_smoothing=0.1, seed=args.seed)

    se_model = build_se_lite0(num_classes=4, gate_init_bias=args.gate_bias, seed=args.seed)
    train_set, val_set, summary = demo_datasets(se_model)
    val = stack(val_set)
    print(summary)

    print("== SE modules + classifier on the frozen Lite0 trunk")
    start = time.perf_counter()
    fast = se_model.fuse()  # BatchNorm folded into the frozen convs: the same function, faster
    history = train_trainable(fast, train_set, train_se=True, val=val, channels_last=True, **recipe)
    se_time = time.perf_counter() - start

    no_se = None
    no_se_history: list = []
    if not args.skip_baseline:
        print("== baseline: classifier only on plain Lite0 (no SE), same recipe")
        torch.manual_seed(args.seed)
        no_se = create_model("efficientnet_lite0", pretrained=True, num_classes=4)
        no_se_history = train_trainable(no_se.fuse(), train_set, train_se=False, val=val, channels_last=True, **recipe)

    meta = dict(
        class_names=list(summary.classes),
        trained_on=f"data/demo train split ({len(train_set)} photos, {len(summary.classes)} classes); trunk: "
                   "efficientnet_lite0 ImageNet weights, frozen (BatchNorm statistics included)",
        trained=["SE modules (reduce + expand convs) in all 16 blocks", "classifier"],
        gate_init_bias=args.gate_bias,
        se_act="silu",
        recipe=recipe,
        augmentation="RandomResizedCrop(224, scale=(0.25, 1)), hflip 0.5, colour jitter 0.2",
        history=history,
        no_se_history=no_se_history,
        train_time_s=round(se_time, 1),
        built_with=f"torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}",
        script="data/weights/build_se_lite0_demo.py",
    )
    path = save_trained(args.output, se_model, no_se, meta)

    # Each gate's average over the training photos (no augmentation), measured on the saved
    # float16 weights: the notebook's "gates frozen to their average" ablation uses it.
    reloaded = load_se_lite0(path)
    train_eval, _, _ = demo_datasets(reloaded, train_augment=False)
    average = {k: v.mean(0) for k, v in collect_gates(reloaded, stack(train_eval)[0]).items()}
    obj = dict(read_checkpoint(path))
    obj["average_gates"] = average
    save_atomic(obj, path)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB)")
    result = evaluate_tensors(reloaded, *val)
    print(f"reloaded (float16 weights, unfused): acc {result.accuracy:.4f} loss {result.loss:.4f} "
          f"p_true {result.p_true:.4f}")

if __name__ == "__main__":
    main()
