"""Fine-tune step: effnet_lab's `Trainer.train_step` vs timm's model under the same settings.

One run measures images/s and peak memory of one optimisation step (forward under autocast,
label-smoothed cross-entropy, backward, AdamW step) for each strategy (linear probe, last k
stages, full fine-tune):

* **effnet_lab**: a `Trainer` built exactly as `finetune()` builds it (pretrained backbone, new
  head for the demo dataset's classes, frozen parts in eval mode, BatchNorm statistics frozen,
  AdamW param groups with the backbone at lr / 10), timed through `Trainer.train_step`;
* **timm**: `timm.create_model` of the same architecture (its `tf_` twin when the weights are a
  TF port with "same" padding, as Lite0-2 are) with the same dropout / drop-path rates, given
  the effnet_lab model's weights (`export_state_dict(..., "timm")`, loaded strictly), the same
  parameters frozen, the same modules in eval mode, an AdamW with the same grouping rule
  (`optimizer_param_groups`), and stepped by the very same loop function the Trainer steps
  with (`effnet_lab.train.train_step`, with the trainer's autocast and smoothing). Only the
  model differs.

The batch is a fixed in-memory tensor, so data loading is not timed. On CUDA (picked
automatically when present) autocast (bf16, else fp16 with a grad scaler) and channels_last
are on, as in the trainer; on CPU both are off. Timing is interleaved one step at a time;
ratios are ratios of medians. Peak memory: on CPU the RSS high-water mark added by three
steps, each candidate in a fresh subprocess; on CUDA `torch.cuda.max_memory_allocated` over
three steps, minus what was allocated before them (gradients, optimizer state, activations).

Usage: python benchmarks/bench_finetune_step.py [--model efficientnet_lite0] [--batch 16]
       [--strategies linear partial full] [--rounds 5] [--device cuda] [--compile] [--quick]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
from benchlib import ROOT, RssPeak, add_timing_arguments, interleaved, ratio_line, run_worker, warmup_steps
from torch import nn

from effnet_lab.model.network import optimizer_param_groups
from effnet_lab.train import STRATEGIES, TrainConfig, Trainer, train_step
from effnet_lab.train.loop import to_device
from effnet_lab.weights.layouts import export_state_dict, key_map, module_names

TARGET = 1.0  # effnet_lab / timm, fine-tune step images/s
CANDIDATES = ("effnet_lab", "timm")


@dataclass
class Candidate:
    model: nn.Module
    step: Callable[[torch.Tensor, torch.Tensor], object]  # one optimisation step on (images, labels)


def build_trainer(a: argparse.Namespace, strategy: str) -> Trainer:
    return Trainer(TrainConfig(data=str(ROOT / "data" / "demo"), model=a.model, pretrained=a.pretrained,
                               strategy=strategy, train_stages=a.train_stages, batch_size=a.batch, img_size=a.size,
                               device=a.device, epochs=1, progress=False, check_images=False, lr=1e-3,
                               compile=a.compile))


def timm_twin(trainer: Trainer) -> Candidate:
    """timm's model stepped like the trainer's: same weights, frozen set, modes, optimizer rule."""
    import timm

    ours, cfg = trainer.model, trainer.config
    name = cfg.model  # pretrained TF ports (Lite0-2) run with "same" padding: timm's tf_ models
    if ours.config.tf_same_padding and not name.startswith("tf_"):
        name = "tf_" + name
    theirs = timm.create_model(name, num_classes=ours.num_classes, drop_rate=ours.head_drop.p,
                               drop_path_rate=ours.config.drop_path_rate)
    theirs.load_state_dict(export_state_dict(ours, "timm"), strict=True)
    theirs.to(trainer.device)
    if trainer.channels_last:
        theirs.to(memory_format=torch.channels_last)

    keys = key_map(ours, "timm")
    their_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        their_params[keys[name]].requires_grad_(p.requires_grad)
    # modes: blocks carry drop path; conv / BatchNorm modules carry BatchNorm statistics
    pairs = {**{f"stages.{i}.{j}": f"blocks.{i}.{j}" for i, s in enumerate(ours.stages) for j in range(len(s))},
             **module_names(ours, "timm")}
    trainer.set_train_mode()
    theirs.train()
    their_modules = dict(theirs.named_modules())
    for our_name, their_name in pairs.items():  # blocks first, then their parts
        if not ours.get_submodule(our_name).training:
            their_modules[their_name].eval()
    backbone_lr = cfg.backbone_lr if cfg.backbone_lr is not None else cfg.lr / 10
    optimizer = torch.optim.AdamW(optimizer_param_groups(theirs, cfg.lr, cfg.weight_decay, backbone_lr), lr=cfg.lr)
    scaler = torch.amp.GradScaler(trainer.device.type, enabled=trainer.scaler.is_enabled())
    net = torch.compile(theirs) if cfg.compile else theirs
    return Candidate(theirs, lambda images, labels: train_step(
        net, images, labels, optimizer, label_smoothing=cfg.label_smoothing, autocast=trainer.autocast,
        scaler=scaler))


def make_batch(trainer: Trainer, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    images = torch.randn(batch, 3, size, size, generator=g)
    labels = torch.arange(batch) % len(trainer.class_names)
    return to_device(images, labels, trainer.device, trainer.channels_last)


def candidates(a: argparse.Namespace, strategy: str) -> tuple[Trainer, dict[str, Candidate]]:
    trainer = build_trainer(a, strategy)
    twin = timm_twin(trainer)  # sets both models' modes
    return trainer, {"effnet_lab": Candidate(trainer.model, trainer.train_step), "timm": twin}


def sync_fn(device: torch.device):
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)


def eval_logit_diff(cands: dict[str, Candidate], images: torch.Tensor) -> float:
    """Max |logit difference| of the two models in eval mode: the weight transfer is exact."""
    out = []
    for c in cands.values():
        modes = {m: m.training for m in c.model.modules()}
        c.model.eval()
        with torch.no_grad():
            out.append(c.model(images).float())
        for m, training in modes.items():  # back to the fine-tuning modes
            m.training = training
    return (out[0] - out[1]).abs().max().item()


def trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def memory_worker(a: argparse.Namespace, strategy: str, cand: str) -> None:
    """Inside a fresh subprocess (CPU): peak RSS added by three train steps of one candidate.
    Both workers build both models (the twin needs the effnet_lab weights), so they start alike."""
    trainer, cands = candidates(a, strategy)
    images, labels = make_batch(trainer, a.batch, a.size)
    peak = RssPeak().start()
    for _ in range(3):
        cands[cand].step(images, labels)
    print(json.dumps({"peak_mib": peak.stop(), "method": peak.method}))


def cuda_memory(cand: Candidate, device: torch.device, images: torch.Tensor, labels: torch.Tensor) -> float:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        cand.step(images, labels)
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def measure(a: argparse.Namespace, strategy: str, warmup: int, worker_args: list[str], header: bool
            ) -> tuple[tuple, bool]:
    """Time (and measure the memory of) one strategy for both candidates: (table row, whether
    the timm twin holds the same weights and trainable parameters). Its models are freed on return."""
    import timm

    ref, cands = candidates(a, strategy)
    images, labels = make_batch(ref, a.batch, a.size)
    if header:
        dev = ref.device
        print(f"{a.model}, batch {a.batch}, {a.size}x{a.size}, device {dev}"
              f"{f' ({torch.cuda.get_device_name(dev)})' if dev.type == 'cuda' else ''}, "
              f"{torch.get_num_threads()} threads, amp {ref.amp}"
              f"{f' ({ref.autocast_dtype})' if ref.amp else ''}, channels_last {ref.channels_last}, "
              f"compile {ref.config.compile}; torch {torch.__version__}, timm {timm.__version__}")
        print(f"AdamW, label smoothing {ref.config.label_smoothing}, drop path {ref.model.config.drop_path_rate}, "
              f"BatchNorm statistics frozen {ref.config.freeze_bn_stats}; {a.rounds * a.iters} timed steps "
              f"per candidate, interleaved, after {warmup} warm-up steps")
    diff = eval_logit_diff(cands, images)
    n_ours, n_theirs = trainable(ref.model), trainable(cands["timm"].model)
    print(f"{strategy}: trainable parameters {n_ours:,} (timm twin {n_theirs:,}); eval logits max |diff| "
          f"{diff:.1e}", file=sys.stderr if a.quick else sys.stdout)
    rates = interleaved({name: functools.partial(c.step, images, labels) for name, c in cands.items()}, a.iters,
                        a.rounds, warmup, a.batch, sync_fn(ref.device))
    mem: dict[str, float | None] = {c: None for c in CANDIDATES}
    if not a.no_memory:
        for c, cand in cands.items():
            if ref.device.type == "cuda":
                mem[c] = cuda_memory(cand, ref.device, images, labels)
            else:  # the same command line, run as a memory worker for this strategy and candidate
                mem[c] = run_worker(__file__, [*worker_args, "--mem-worker", strategy, c])["peak_mib"]
    return (strategy, n_ours, rates, mem), diff <= 1e-4 and n_ours == n_theirs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="efficientnet_lite0")
    p.add_argument("--no-pretrained", dest="pretrained", action="store_false",
                   help="random weights (speed does not depend on them; Lite0-2 load offline)")
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    p.add_argument("--train-stages", type=int, default=2, help="stages trained by 'partial'")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--device", default=None, help="default: cuda, then mps, then cpu")
    p.add_argument("--compile", action="store_true", help="torch.compile both models (as --compile in training)")
    add_timing_arguments(p, worker=("STRATEGY", "CANDIDATE"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    if a.mem_worker:
        memory_worker(a, *a.mem_worker)
        return 0
    warmup = warmup_steps(a)

    rows, ok = [], True
    worker_args = list(sys.argv[1:] if argv is None else argv)
    for strategy in a.strategies:
        row, same = measure(a, strategy, warmup, worker_args, header=strategy == a.strategies[0])
        rows.append(row)
        ok &= same

    print()
    print(f"{'strategy':<9} {'trainable':>11} {'candidate':<11} {'median img/s':>12} {'best img/s':>11} "
          f"{'peak memory added':>18}")
    for strategy, n, rates, mem in rows:
        for c in CANDIDATES:
            m = f"{mem[c]:14.0f} MiB" if mem[c] is not None else f"{'-':>18}"
            print(f"{strategy:<9} {n:>11,} {c:<11} {statistics.median(rates[c]):12.1f} {max(rates[c]):11.1f} {m}")
    print()
    for strategy, _, rates, _ in rows:
        print(ratio_line(f"effnet_lab / timm, fine-tune step, {strategy}", rates["effnet_lab"], rates["timm"],
                         TARGET))
    if not ok:
        print("FAIL: the timm twin does not have the same weights or the same trainable parameters")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
