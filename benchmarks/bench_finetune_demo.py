"""Time-to-accuracy: fine-tune EfficientNet-Lite0 (offline ImageNet weights) on the shipped
demo dataset and report the training time until validation accuracy first reaches the target.

    python benchmarks/bench_finetune_demo.py                 # target: ≥ 95% within 60 s
    python benchmarks/bench_finetune_demo.py --strategy partial --img-size 128 --seeds 0 1 2 3 4

Training time counts the training epochs only (forward, backward, optimizer), not the
evaluation after each epoch. A run stops once its training time passes the budget. One run
per seed; PASS only when every seed reaches the target within the budget. The validation
split has 37 images, so 95% means 36 right, and one image either way is 2.7 points; the
summary also gives each seed's accuracy after its last epoch, which can be lower: it moves by
an image or two from epoch to epoch (the Trainer's best checkpoint keeps the best epoch).

The defaults (linear probe at 256 px, head lr 1e-2, 10 epochs) were chosen on an earlier
split of this data (38 val images, before two non-photo stamps, a whale render and an orca
illustration, were taken out and the seeded split was redrawn); they were not retuned on the
current split. Recipes tried then (1–3 seeds each), val images right out of 38: partial (last
2 or 3 stages) at 128/160/224/256 px with lr 3e-3/3e-4 or 1e-2/1e-3: plateau 34–36; full at
128 px: ≤ 31; linear at 256 px: plateau 36, 37 at some epochs; linear at 288 px: 35–37.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from effnet_lab.train import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT / "data" / "demo"))
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--strategy", default="linear", choices=["linear", "partial", "full"])
    p.add_argument("--train-stages", type=int, default=3)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--backbone-lr", type=float, default=1e-3)
    p.add_argument("--img-size", type=int, default=256)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument("--budget-s", type=float, default=60.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="one run per seed (shuffling, augmentation, head init); the split is data/demo's own")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    results = {seed: run(args, seed) for seed in args.seeds}
    hits = [t for t, _ in results.values() if t is not None and t <= args.budget_s]
    verdict = "PASS" if len(hits) == len(results) else "MISS"
    print(f"{verdict}: {len(hits)} of {len(results)} seeds reached {args.target:.0%} val accuracy within "
          f"{args.budget_s:.0f} s of training (" + ", ".join(
              f"seed {s}: {'never' if t is None else f'{t:.1f} s'}, last epoch {last:.1%}"
              for s, (t, last) in results.items()) + ")")


def run(args: argparse.Namespace, seed: int) -> tuple[float | None, float]:
    """One fine-tuning run: the training time at which val accuracy first reached the target
    (None if never) and the val accuracy after the last epoch run."""
    trainer = Trainer(TrainConfig(
        data=args.data, model=args.model, pretrained=True, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, backbone_lr=args.backbone_lr, strategy=args.strategy, train_stages=args.train_stages,
        img_size=args.img_size, seed=seed, progress=False, device="cpu",
        check_images=seed == args.seeds[0]))  # the folder does not change between seeds
    n_val = len(trainer.val_set)
    print(f"seed {seed}: {args.model}, strategy {args.strategy}, batch {args.batch_size}, lr {args.lr:g}"
          f"{'' if args.strategy == 'linear' else f'/{args.backbone_lr:g}'}, {torch.get_num_threads()} threads, "
          f"input {trainer.data_config['input_size'][1]} px, {len(trainer.train_set)} train / {n_val} val images")
    train_s = 0.0
    reached = None
    for _ in range(args.epochs):
        stats = trainer.train_one_epoch()
        train_s += stats["time_s"]
        result = trainer.evaluate()
        trainer.epoch += 1
        correct = round(result.accuracy * n_val)
        print(f"  epoch {trainer.epoch}: train {stats['time_s']:5.1f}s ({stats['images_per_s']:.1f} img/s), "
              f"loss {stats['loss']:.3f} | val acc {result.accuracy:.3f} ({correct}/{n_val}) | "
              f"cumulative training {train_s:5.1f}s")
        if reached is None and result.accuracy >= args.target:
            reached = train_s
        if train_s > args.budget_s:
            break
    return reached, result.accuracy


if __name__ == "__main__":
    main()
