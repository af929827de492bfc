"""EfficientNetV2-S: effnet_lab vs timm and torchvision, train step and inference, in one run.

Three builds of the same network (torchvision's `efficientnet_v2_s`, timm's `efficientnetv2_s`,
effnet_lab's `efficientnetv2_s`), all with BatchNorm eps 1e-3 and the *same weights*
(effnet_lab's, exported to each layout and loaded strictly; the eval logits are compared
before timing, and the script fails if they differ by more than 1e-4):

* **train step**: forward, cross-entropy, backward, SGD with momentum; dropout and drop path at
  their defaults for torchvision (0.2 / 0.2), the same rates for the other two;
* **inference**: forward in eval mode under `torch.inference_mode()`.

Images/s are medians of interleaved steps (the candidates take turns, one step at a time);
ratios are effnet_lab / peer. Peak memory: on CPU the RSS high-water mark added by three steps,
each candidate in a fresh subprocess; on CUDA `torch.cuda.max_memory_allocated` over three steps.
On CUDA (`--device cuda`, the default when a GPU is present) bf16 autocast and channels_last are
used for every candidate; on CPU fp32, contiguous.

Usage: python benchmarks/bench_v2_step.py [--batch 8] [--size 128] [--threads N] [--rounds 5]
       [--device cpu|cuda] [--quick] [--no-memory]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import statistics
import sys

import torch
from benchlib import RssPeak, add_timing_arguments, interleaved, ratio_line, run_worker, warmup_steps
from torch import nn

import effnet_lab
from effnet_lab.weights.layouts import export_state_dict

TARGET = 1.0  # effnet_lab / each peer, train step and inference images/s
CANDIDATES = ("effnet_lab", "timm", "torchvision")
DROP, DROP_PATH = 0.2, 0.2  # torchvision's V2-S defaults (dropout, stochastic depth)


def build(device: torch.device, channels_last: bool) -> dict[str, nn.Module]:
    import timm
    import torchvision

    torch.manual_seed(0)
    ours = effnet_lab.create_model("efficientnetv2_s", bn_eps=1e-3, drop_rate=DROP, drop_path_rate=DROP_PATH)
    tv = torchvision.models.efficientnet_v2_s(dropout=DROP, stochastic_depth_prob=DROP_PATH)
    tv.load_state_dict(export_state_dict(ours, "torchvision"))
    tm = timm.create_model("efficientnetv2_s", bn_eps=1e-3, drop_rate=DROP, drop_path_rate=DROP_PATH)
    tm.load_state_dict(export_state_dict(ours, "timm"))
    models = {"effnet_lab": ours, "timm": tm, "torchvision": tv}
    for m in models.values():
        m.to(device)
        if channels_last:
            m.to(memory_format=torch.channels_last)
    return models


def batch(a: argparse.Namespace, device: torch.device, channels_last: bool) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(a.batch, 3, a.size, a.size, generator=g).to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, (torch.arange(a.batch) % 1000).to(device)


def steps(models: dict[str, nn.Module], x: torch.Tensor, y: torch.Tensor, amp: torch.dtype | None
          ) -> tuple[dict, dict]:
    """One train-step and one inference closure per candidate."""
    def autocast():
        return torch.autocast(x.device.type, dtype=amp) if amp else contextlib.nullcontext()

    def train(model: nn.Module, opt: torch.optim.Optimizer) -> None:
        model.train()
        with autocast():
            loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer(model: nn.Module) -> None:
        model.eval()
        with torch.inference_mode(), autocast():
            model(x)

    train_steps = {n: functools.partial(train, m, torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9))
                   for n, m in models.items()}
    return train_steps, {n: functools.partial(infer, m) for n, m in models.items()}


def logit_diffs(models: dict[str, nn.Module], x: torch.Tensor) -> dict[str, float]:
    with torch.no_grad():
        out = {n: m.eval()(x).float() for n, m in models.items()}
    return {n: (out["effnet_lab"] - out[n]).abs().max().item() for n in CANDIDATES[1:]}


def setup(a: argparse.Namespace):
    device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    cuda = device.type == "cuda"
    models = build(device, channels_last=cuda)
    x, y = batch(a, device, channels_last=cuda)
    return device, models, x, y, (torch.bfloat16 if cuda else None)


def memory_worker(a: argparse.Namespace, kind: str, cand: str) -> None:
    """In a fresh subprocess (CPU): the peak RSS three steps of one candidate add."""
    device, models, x, y, amp = setup(a)
    train_steps, infer_steps = steps({cand: models[cand]}, x, y, amp)
    step = (train_steps if kind == "train" else infer_steps)[cand]
    peak = RssPeak().start()
    for _ in range(3):
        step()
    print(json.dumps({"peak_mib": peak.stop(), "method": peak.method}))


def cuda_peak(step, device: torch.device) -> float:
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    for _ in range(3):
        step()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--device", default=None, help="default: cuda when present, else cpu")
    add_timing_arguments(p, worker=("KIND", "CANDIDATE"))
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    if a.mem_worker:
        memory_worker(a, *a.mem_worker)
        return 0
    warmup = warmup_steps(a)

    import timm
    import torchvision

    device, models, x, y, amp = setup(a)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"EfficientNetV2-S, batch {a.batch}, {a.size}x{a.size}, {device} ({name}), "
          f"{'bf16 autocast, channels_last' if amp else 'fp32, contiguous'}; torch {torch.__version__}, "
          f"timm {timm.__version__}, torchvision {torchvision.__version__}")
    n = {c: sum(q.numel() for q in m.parameters()) for c, m in models.items()}
    diffs = logit_diffs(models, x)
    print("parameters " + ", ".join(f"{c} {k:,}" for c, k in n.items()) + "; eval logits max |diff| vs effnet_lab: "
          + ", ".join(f"{c} {d:.1e}" for c, d in diffs.items()))
    same = len(set(n.values())) == 1 and max(diffs.values()) <= (1e-4 if amp is None else 1e-2)
    print(f"SGD (momentum 0.9), cross-entropy, dropout {DROP}, drop path {DROP_PATH}; {a.rounds * a.iters} timed "
          f"steps per candidate, interleaved, after {warmup} warm-up steps")

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    train_steps, infer_steps = steps(models, x, y, amp)
    rates = {"train": interleaved(train_steps, a.iters, a.rounds, warmup, a.batch, sync),
             "infer": interleaved(infer_steps, a.iters, a.rounds, warmup, a.batch, sync)}
    mem: dict[tuple[str, str], float | None] = {}
    worker_args = list(sys.argv[1:] if argv is None else argv)
    for kind, kind_steps in (("train", train_steps), ("infer", infer_steps)):
        for c in CANDIDATES:
            if a.no_memory:
                mem[kind, c] = None
            elif device.type == "cuda":
                mem[kind, c] = cuda_peak(kind_steps[c], device)
            else:
                mem[kind, c] = run_worker(__file__, [*worker_args, "--mem-worker", kind, c])["peak_mib"]

    print()
    print(f"{'':<11} {'candidate':<12} {'median img/s':>12} {'best img/s':>11} {'peak memory added':>18}")
    for kind in ("train", "infer"):
        for c in CANDIDATES:
            m = mem[kind, c]
            shown = f"{m:14.0f} MiB" if m is not None else f"{'-':>18}"
            print(f"{kind:<11} {c:<12} {statistics.median(rates[kind][c]):12.1f} {max(rates[kind][c]):11.1f} {shown}")
    print()
    for kind, label in (("train", "train step"), ("infer", "inference")):
        for peer in CANDIDATES[1:]:
            print(ratio_line(f"effnet_lab / {peer}, {label}", rates[kind]["effnet_lab"], rates[kind][peer], TARGET))
    if not same:
        print("FAIL: the three models do not hold the same weights (parameter counts or eval logits differ)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
