"""Fused-MBConv in the early stages (EfficientNetV2 paper, Table 3): what it costs and what it buys.

The V2 paper replaces the MBConv blocks of EfficientNet-B4's first three block stages (its "stages
1-3", stem = 0; stages 2-4 in Table 1's numbering, which the workbook uses) by Fused-MBConv (one full
k×k conv instead of 1×1 expand + k×k depthwise) and reports more parameters and FLOPs but faster
training on TPU and GPU; fused blocks in every stage are slower again. This module builds those
variants of any EfficientNetConfig and measures, on the machine at hand, for each: parameters and
multiply-adds (the cost module, exact), train-step and inference images/s (interleaved, medians),
and the activation memory a train step keeps for backward (every tensor autograd saves, counted by
`torch.autograd.graph.saved_tensors_hooks`: the same number on any device).

    python -m effnet_lab.lab.studies.fused --size 224 --batch 8 --out results/fused.json

In the paper's variants only the block kind changes: kernels, strides, expansion ratios, channels,
repeats and SE stay as in the table ("replace MBConv by Fused-MBConv"). A fourth variant is not in
the paper: stages 2-4 fused as V2 builds them (3×3, no SE) with the expansion lowered until the
network's FLOPs are within 5 % of the original's, the comparison at similar FLOPs.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from ...data.resources import data_path
from ...model.network import EfficientNet
from ...paper.architecture import B0_STAGES, EfficientNetConfig
from ...paper.cost import count_cost
from ...train.config import OneLineParser
from ...weights.checkpoint import write_text_atomic
from ..measure import interleaved
from .scaling import hardware

COMMITTED = ("studies", "fused-cpu.json")  # data/studies/…: the run notebook 09 shows


def committed_results() -> dict:
    """The record of the run notebook 09 shows: its command, machine, settings and rows."""
    return json.loads(data_path(*COMMITTED).read_text(encoding="utf-8"))


def with_fused_stages(config: EfficientNetConfig, stages: Sequence[int]) -> EfficientNetConfig:
    """`config` with the blocks of `stages` (0-based indices into `config.stages`: 0 is stage 2 of
    Table 1, B0's MBConv1) made Fused-MBConv; everything else as it was."""
    bad = [i for i in stages if not 0 <= i < len(config.stages)]
    if bad:
        raise ValueError(f"stages {bad} out of range: the table has stages 0 … {len(config.stages) - 1}")
    return replace(config, stages=tuple(replace(s, block="fused") if i in stages else s
                                        for i, s in enumerate(config.stages)))


def equal_flops_fused(config: EfficientNetConfig, stages: Sequence[int], tolerance: float = 0.05,
                      expansions: Sequence[float] = (6, 5, 4, 3, 2, 1.5, 1)) -> EfficientNetConfig:
    """`stages` made Fused-MBConv the way V2 builds them (3×3 kernels, no SE) with the largest of
    `expansions` (for the stages that expand at all) that keeps the network's multiply-adds at
    `config.resolution` within `tolerance` of `config`'s: the comparison at similar FLOPs."""
    target = count_cost(config).macs
    fused = with_fused_stages(config, stages)
    for expand in expansions:
        candidate = replace(fused, stages=tuple(
            replace(s, kernel=3, se=0.0, expand=s.expand if s.expand == 1 else expand) if i in stages else s
            for i, s in enumerate(fused.stages)))
        if abs(count_cost(candidate).macs / target - 1) <= tolerance:
            return candidate
    raise ValueError(f"no expansion ratio in {tuple(expansions)} brings fused stages {tuple(stages)} within "
                     f"{tolerance:.0%} of the network's FLOPs")


def variants(config: EfficientNetConfig) -> dict[str, EfficientNetConfig]:
    """The three networks of the paper's Table 3 from `config`'s table, and a fourth with fused
    stages 2-4 at the same FLOPs (V2's 3×3, no-SE fused blocks, expansion lowered to fit)."""
    everything = range(len(config.stages))
    return {"MBConv everywhere": config, "Fused stages 2-4": with_fused_stages(config, (0, 1, 2)),
            "Fused 2-4, equal FLOPs": equal_flops_fused(config, (0, 1, 2)),
            "Fused everywhere": with_fused_stages(config, everything)}


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of every tensor autograd keeps for the backward pass of one forward (each storage
    once, the parameters left out): the activation memory of a train step."""
    storages: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(storages.values())


@dataclass
class Measured:
    name: str
    params: int
    gmacs: float  # at the measured size
    train_images_per_s: float
    infer_images_per_s: float
    saved_activation_mb: float  # one train step's batch


def measure(configs: dict[str, EfficientNetConfig], size: int = 224, batch: int = 8, rounds: int = 6,
            warmup: int = 1, seed: int = 0) -> list[Measured]:
    """Build every network (random weights), then time one SGD train step and one inference pass of
    each on the same random batch, interleaved; count their cost and saved activations."""
    torch.manual_seed(seed)
    x = torch.randn(batch, 3, size, size)
    y = torch.arange(batch) % 1000
    models = {n: EfficientNet(c) for n, c in configs.items()}
    opts = {n: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for n, m in models.items()}

    def train(name: str) -> None:
        m, opt = models[name], opts[name]
        m.train()
        loss = nn.functional.cross_entropy(m(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def infer(name: str) -> None:
        m = models[name]
        m.eval()
        with torch.inference_mode():
            m(x)

    train_rates = interleaved({n: (lambda n=n: train(n)) for n in models}, 1, rounds, warmup, batch)
    infer_rates = interleaved({n: (lambda n=n: infer(n)) for n in models}, 1, rounds, warmup, batch)
    out = []
    for name, config in configs.items():
        cost = count_cost(config, size)
        out.append(Measured(name, cost.params, cost.gmacs, statistics.median(train_rates[name]),
                            statistics.median(infer_rates[name]),
                            saved_activation_bytes(models[name], x) / 1e6))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = OneLineParser(prog="python -m effnet_lab.lab.studies.fused", description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rounds", type=int, default=6, help="timed steps per network (interleaved)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier of B0's table")
    p.add_argument("--depth", type=float, default=1.0, help="depth multiplier of B0's table")
    p.add_argument("--out", type=Path, help="write the results as JSON (refused if the file exists)")
    a = p.parse_args(argv)
    if a.out is not None and a.out.exists():
        print(f"error: --out {a.out} exists; choose another file (nothing is overwritten)", file=sys.stderr)
        return 1
    for flag in ("size", "batch", "rounds"):
        if getattr(a, flag) < 1:
            print(f"error: --{flag} must be at least 1", file=sys.stderr)
            return 1
    base = EfficientNetConfig(B0_STAGES, width=a.width, depth=a.depth, resolution=a.size)
    rows = measure(variants(base), a.size, a.batch, a.rounds)
    ref = rows[0]
    machine = hardware(torch.device("cpu"))  # the study's record of the machine (CPU model, threads, versions)
    print(f"B0's table (width {a.width}, depth {a.depth}) at {a.size} px, batch {a.batch}; {machine['cpu']}, "
          f"{machine['threads']} threads, torch {machine['torch']}")
    print(f"{'network':<24}{'params':>12}{'GFLOPs':>8}{'train img/s':>13}{'×':>6}{'infer img/s':>13}{'×':>6}"
          f"{'saved MB':>10}")
    for r in rows:
        print(f"{r.name:<24}{r.params:>12,}{r.gmacs:8.3f}{r.train_images_per_s:13.1f}"
              f"{r.train_images_per_s / ref.train_images_per_s:6.2f}{r.infer_images_per_s:13.1f}"
              f"{r.infer_images_per_s / ref.infer_images_per_s:6.2f}{r.saved_activation_mb:10.1f}")
    if a.out is not None:
        record = dict(command=" ".join(["python -m effnet_lab.lab.studies.fused", *(argv or sys.argv[1:])]),
                      hardware=machine, size=a.size, batch=a.batch, rounds=a.rounds, width=a.width,
                      depth=a.depth, rows=[asdict(r) for r in rows])
        write_text_atomic(a.out, json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
