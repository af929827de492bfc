"""Time-to-accuracy: fine-tune EfficientNet-Lite0 (offline ImageNet weights) on the shipped
demo dataset and report the training time until validation accuracy first reaches the target.

    python benchmarks/bench_finetune_demo.py                 # target: ≥ 95% within 60 s
    python benchmarks/bench_finetune_demo.py --strategy full --epochs 8

Training time counts the training epochs only (forward, backward, optimizer); evaluation
after each epoch is reported separately. Prints one line per epoch and a PASS/MISS verdict.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from effnet_lab.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "data" / "demo"))
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--strategy", default="partial", choices=["linear", "partial", "full"])
    p.add_argument("--train-stages", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--backbone-lr", type=float, default=1e-3)
    p.add_argument("--img-size", type=int, default=None)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--budget-s", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    trainer = Trainer(TrainConfig(
        data=args.data, model=args.model, pretrained=True, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, backbone_lr=args.backbone_lr, strategy=args.strategy, train_stages=args.train_stages,
        img_size=args.img_size, seed=args.seed, progress=False, device="cpu"))
    print(f"{args.model}, strategy {args.strategy}, batch {args.batch_size}, lr {args.lr:g}/{args.backbone_lr:g}, "
          f"{torch.get_num_threads()} threads, input {trainer.data_config['input_size'][1]} px")

    train_s = eval_s = 0.0
    reached = None
    for _ in range(args.epochs):
        stats = trainer.train_one_epoch()
        train_s += stats["time_s"]
        t = time.perf_counter()
        result = trainer.evaluate()
        eval_s += time.perf_counter() - t
        trainer.epoch += 1
        print(f"epoch {trainer.epoch}: train {stats['time_s']:5.1f}s ({stats['images_per_s']:.1f} img/s), "
              f"loss {stats['loss']:.3f} | val acc {result.accuracy:.3f} | cumulative training {train_s:5.1f}s")
        if reached is None and result.accuracy >= args.target:
            reached = train_s
            break
    if reached is None:
        print(f"MISS: val accuracy never reached {args.target:.0%} in {args.epochs} epochs ({train_s:.1f}s training)")
    else:
        verdict = "PASS" if reached <= args.budget_s else "MISS"
        print(f"{verdict}: {args.target:.0%} val accuracy after {reached:.1f}s of training "
              f"(target ≤ {args.budget_s:.0f}s; evaluation took another {eval_s:.1f}s)")


if __name__ == "__main__":
    main()
