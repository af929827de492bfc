"""CPU benchmark: efficientnet_b0 from effnet_lab vs timm vs torchvision.

One run measures, at batch 8 and 224×224 in fp32 on CPU:

* inference images/s (eval mode, torch.inference_mode), default eager NCHW, for all three;
* the inference fast path: effnet_lab `model.fuse()` + channels_last (input too), and, for
  fairness, timm with channels_last (unfused);
* train-step images/s (forward + cross-entropy + backward + SGD step, train mode);
* peak memory of each configuration: every configuration runs in a fresh subprocess that
  imports the same libraries, records its RSS, resets the kernel's RSS high-water mark
  (`/proc/self/clear_refs`), builds the model, input (and optimizer), runs two steps, and
  reports VmHWM − RSS(before): the peak resident memory the configuration added (weights,
  activations, gradients, optimizer state, allocator slack). This sees every allocation torch
  makes, unlike tracemalloc. Where clear_refs is unavailable it falls back to ru_maxrss.

Timing is interleaved: after a warm-up, the candidates take turns one step at a time, in a
rotating order, so background load hits all of them alike; the table reports the median (and
best) over the timed steps, and the ratios are ratios of medians. The script also checks that
the fused channels_last model gives the same logits as the unfused one (BN statistics
randomized so that folding is not trivial).

Usage: python benchmarks/bench_b0_cpu.py [--rounds 7] [--batch 8] [--threads N] [--quick]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch
from benchlib import RssPeak, interleaved, ratio_line, run_worker
from torch import nn

TARGET_PARITY = 1.0  # effnet_lab default eager vs timm default eager, inference and train step
TARGET_FAST = 1.5  # effnet_lab fused + channels_last vs timm default eager, inference
ATOL = 1e-4

INFER_CANDIDATES = ["effnet_lab", "timm", "torchvision", "effnet_lab fused+CL", "timm CL"]
TRAIN_CANDIDATES = ["effnet_lab", "timm", "torchvision"]


# -- models ---------------------------------------------------------------------------------

def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters (deterministically)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.3)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


def build(name: str) -> nn.Module:
    """A freshly initialised efficientnet_b0 of the given family (eval mode, NCHW)."""
    torch.manual_seed(0)
    if name == "effnet_lab":
        import effnet_lab
        # drop_rate 0 as timm's default: the effnet_lab/timm comparison runs identical settings
        return randomize_bn(effnet_lab.create_model("efficientnet_b0", drop_rate=0.0)).eval()
    if name == "timm":
        import timm
        return timm.create_model("efficientnet_b0").eval()
    if name == "torchvision":
        import torchvision
        return torchvision.models.efficientnet_b0().eval()
    raise ValueError(name)


def fast_path(model: nn.Module) -> nn.Module:
    """effnet_lab's inference fast path: fold BN into the convs, then channels_last (in place)."""
    return model.fuse().to(memory_format=torch.channels_last)


# -- workloads ------------------------------------------------------------------------------

def make_input(batch: int, size: int, channels_last: bool) -> torch.Tensor:
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1))
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def infer_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        with torch.inference_mode():
            model(x)
    return step


def train_fn(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    target = torch.arange(x.shape[0]) % 1000
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), target)
        loss.backward()
        opt.step()
    return step


def make_workload(kind: str, cand: str, batch: int, size: int) -> Callable[[], None]:
    """Build the model for one (kind, candidate) pair and return its zero-argument step."""
    if kind == "train":
        return train_fn(build(cand), make_input(batch, size, channels_last=False))
    if cand == "effnet_lab fused+CL":
        return infer_fn(fast_path(build("effnet_lab")), make_input(batch, size, channels_last=True))
    if cand == "timm CL":
        return infer_fn(build("timm").to(memory_format=torch.channels_last), make_input(batch, size, True))
    return infer_fn(build(cand), make_input(batch, size, channels_last=False))


# -- memory (one fresh subprocess per configuration) ----------------------------------------

def memory_worker(kind: str, cand: str, batch: int, size: int, threads: int) -> None:
    """Runs inside the subprocess; prints JSON: peak RSS growth over the after-imports baseline
    (model + input + optimizer + the run itself)."""
    import timm  # noqa: F401  every worker imports the same libraries before the baseline
    import torchvision  # noqa: F401

    import effnet_lab  # noqa: F401
    torch.set_num_threads(threads)
    peak = RssPeak().start()
    step = make_workload(kind, cand, batch, size)
    for _ in range(2):  # the second train step also holds the optimizer's momentum buffers
        step()
    print(json.dumps({"peak_mib": peak.stop(), "method": peak.method}))


def measure_memory(kind: str, cand: str, batch: int, size: int, threads: int) -> dict:
    return run_worker(__file__, ["--mem-worker", kind, cand, "--batch", str(batch), "--size", str(size),
                                 "--threads", str(threads)])


# -- correctness ----------------------------------------------------------------------------

def fused_max_diff(batch: int, size: int) -> tuple[float, float]:
    """Max abs logit difference fused+channels_last vs unfused, and max |logit| for scale."""
    model = build("effnet_lab")
    fast = fast_path(copy.deepcopy(model))
    x = make_input(batch, size, channels_last=False)
    with torch.inference_mode():
        ref = model(x)
        out = fast(x.contiguous(memory_format=torch.channels_last))
    return (ref - out).abs().max().item(), ref.abs().max().item()


# -- report ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=7, help="timing rounds (rounds x iters timed steps each)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--infer-iters", type=int, default=5, help="timed forwards per candidate per round")
    p.add_argument("--train-iters", type=int, default=2, help="timed train steps per candidate per round")
    p.add_argument("--quick", action="store_true", help="smoke test: 1 round, 1 iteration, no memory")
    p.add_argument("--no-memory", action="store_true", help="skip the per-configuration memory subprocesses")
    p.add_argument("--mem-worker", nargs=2, metavar=("KIND", "CANDIDATE"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    if a.mem_worker:
        memory_worker(a.mem_worker[0], a.mem_worker[1], a.batch, a.size, a.threads)
        return 0

    warmup = 2
    if a.quick:
        a.rounds, a.infer_iters, a.train_iters, warmup = 1, 1, 1, 1
        a.no_memory = True
    torch.set_num_threads(a.threads)
    import timm
    import torchvision

    print(f"efficientnet_b0, batch {a.batch}, {a.size}x{a.size}, fp32 CPU, {torch.get_num_threads()} threads; "
          f"torch {torch.__version__}, timm {timm.__version__}, torchvision {torchvision.__version__}")
    print(f"interleaved one step at a time after {warmup} warm-up steps: {a.rounds * a.infer_iters} timed "
          f"forwards and {a.rounds * a.train_iters} timed train steps (SGD momentum 0.9, cross-entropy) "
          f"per candidate")

    diff, ref_max = fused_max_diff(a.batch, a.size)
    ok = diff <= ATOL
    print(f"fused+channels_last vs unfused logits (randomized BN stats, max |logit| {ref_max:.2f}): "
          f"max abs diff {diff:.2e} ({'OK' if ok else 'FAIL'}, tol {ATOL:.0e})")

    print("timing inference ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    infer = interleaved({c: make_workload("infer", c, a.batch, a.size) for c in INFER_CANDIDATES},
                        a.infer_iters, a.rounds, warmup, a.batch)
    print("timing train steps ...", file=sys.stderr, flush=True)
    train = interleaved({c: make_workload("train", c, a.batch, a.size) for c in TRAIN_CANDIDATES},
                        a.train_iters, a.rounds, warmup, a.batch)
    t_timing = time.perf_counter() - t0

    mem: dict[tuple[str, str], dict] = {}
    if not a.no_memory:
        print("measuring memory (one subprocess per configuration) ...", file=sys.stderr, flush=True)
        for kind, names in (("infer", INFER_CANDIDATES), ("train", TRAIN_CANDIDATES)):
            for c in names:
                mem[kind, c] = measure_memory(kind, c, a.batch, a.size, a.threads)

    print()
    print(f"{'mode':<6} {'candidate':<32} {'median img/s':>12} {'best img/s':>11} {'peak RSS added':>16}")
    for kind, rates in (("infer", infer), ("train", train)):
        for c, rs in rates.items():
            m = mem.get((kind, c))
            mtxt = f"{m['peak_mib']:11.0f} MiB" if m else f"{'-':>15}"
            print(f"{kind:<6} {c:<32} {statistics.median(rs):12.1f} {max(rs):11.1f} {mtxt:>16}")
    if mem:
        print(f"(memory: fresh subprocess per row; peak RSS ({next(iter(mem.values()))['method']}) minus RSS "
              f"after imports, over building model+input and 2 forwards / 2 train steps)")
    print("(train mode: effnet_lab and timm without dropout or drop path (identical settings); "
          "torchvision with its defaults, dropout 0.2 + stochastic depth)")
    print(f"(timing took {t_timing:.0f} s)")
    print()

    print(ratio_line("effnet_lab / timm, inference (eager NCHW)", infer["effnet_lab"], infer["timm"],
                    TARGET_PARITY))
    print(ratio_line("effnet_lab / timm, train step", train["effnet_lab"], train["timm"], TARGET_PARITY))
    print(ratio_line("effnet_lab fused+CL / timm default, inference", infer["effnet_lab fused+CL"],
                    infer["timm"], TARGET_FAST))
    cl = statistics.median(infer["effnet_lab fused+CL"]) / statistics.median(infer["timm CL"])
    print(f"info  effnet_lab fused+CL / timm CL, inference       {cl:5.2f}x  (both channels_last)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
