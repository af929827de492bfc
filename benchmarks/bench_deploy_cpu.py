"""CPU deployment benchmark: what exporting and quantizing buy, as ratios to timm eager fp32.

For efficientnet_lite0 (real weights) and efficientnet_b0 (random weights, BN statistics
randomised), at batch 1 (latency) and batch 8 (throughput), in one run:

  timm eager fp32 (the same weights, loaded through export_state_dict), effnet_lab eager,
  effnet_lab fuse() + channels_last, torch.compile (inductor; --compile, slow to build on 2 cores),
  ONNX Runtime fp32 (effnet_lab.deploy.export_onnx) and ONNX Runtime int8 (quantize_int8, static
  QDQ, calibrated on data/demo/train); for Lite0 also the mixed file with the stem and stages 0-2
  in fp32 (float_until="stages.2", notebook 08).

Timing is interleaved after a warm-up (benchlib.interleaved, as the other benchmarks), medians
reported. ONNX Runtime's sessions run without thread spinning: with it, their idle threads keep
2 cores busy after each run and slow down whichever PyTorch candidate is timed next (timm eager
Lite0 at batch 1 measured 65-105 ms with spinning, 23 ms without, here).

Targets (issue 11): int8 Lite0 ≥ 3× timm at batch 8 and ≥ 2× at batch 1; ONNX Runtime fp32 ≥ 1.5×.
The script also prints the top-1 agreement of each candidate with timm on the batch it timed, so a
fast wrong answer shows.

Usage: python benchmarks/bench_deploy_cpu.py [--threads 2] [--rounds 5] [--models efficientnet_lite0 ...]
       [--compile] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import torch
from benchlib import interleaved, ratio_line

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PEERS = {"efficientnet_lite0": "tf_efficientnet_lite0", "efficientnet_b0": "efficientnet_b0"}


def _randomize_bn(model: torch.nn.Module) -> None:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def candidates(name: str, tmp: Path, use_compile: bool, calibration_images: int) -> dict[str, torch.nn.Module]:
    import timm

    import effnet_lab
    from effnet_lab.deploy import export_onnx, load_onnx, quantize_int8

    ours = effnet_lab.create_model(name, pretrained=name == "efficientnet_lite0").eval()
    if name != "efficientnet_lite0":
        _randomize_bn(ours)
    peer = timm.create_model(PEERS[name]).eval()
    peer.load_state_dict(effnet_lab.export_state_dict(ours, "timm"))
    fused = effnet_lab.create_model(name).eval()
    fused.load_state_dict(ours.state_dict())
    fused = fused.fuse().to(memory_format=torch.channels_last)
    onnx_path = export_onnx(ours, tmp / f"{name}.onnx")
    int8_path = quantize_int8(onnx_path, tmp / f"{name}.int8.onnx", ROOT / "data" / "demo" / "train",
                              max_images=calibration_images)
    threads = torch.get_num_threads()
    mixed = {}
    if name == "efficientnet_lite0":  # notebook 08's mixed precision: stem and stages 0-2 in fp32
        path = quantize_int8(onnx_path, tmp / f"{name}.mixed.onnx", ROOT / "data" / "demo" / "train",
                             max_images=calibration_images, float_until="stages.2")
        mixed["ONNX int8, fp32 to st.2"] = load_onnx(path, threads=threads, spinning=False)
    out = {"timm eager": peer, "effnet_lab eager": ours, "effnet_lab fused+CL": fused,
           "ONNX Runtime fp32": load_onnx(onnx_path, threads=threads, spinning=False),
           "ONNX Runtime int8": load_onnx(int8_path, threads=threads, spinning=False), **mixed}
    if use_compile:
        out["torch.compile"] = torch.compile(ours)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--models", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--compile", action="store_true", help="also time torch.compile (builds for minutes on 2 cores)")
    p.add_argument("--quick", action="store_true", help="one model, few steps, small calibration: a smoke run")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = args.models[:1] if args.quick else args.models
    rounds, iters, warmup = (1, 2, 1) if args.quick else (args.rounds, 4, 3)
    print(f"torch {torch.__version__}, {args.threads} threads, fp32 unless said, 224×224; rates are medians")
    with tempfile.TemporaryDirectory() as tmpdir:
        for name in models:
            cands = candidates(name, Path(tmpdir), args.compile, 8 if args.quick else 64)
            for batch in (1, 8):
                x = torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(batch))
                x_cl = x.contiguous(memory_format=torch.channels_last)

                with torch.inference_mode():
                    ref = cands["timm eager"](x).argmax(1)
                    agree = {k: int((m(x_cl if "CL" in k else x).argmax(1) == ref).sum()) for k, m in cands.items()}
                    steps = {k: (lambda m=m, inp=(x_cl if "CL" in k else x): m(inp)) for k, m in cands.items()}
                    rates = interleaved(steps, iters, rounds, warmup, batch)
                print(f"\n{name}, batch {batch}:")
                for k, r in rates.items():
                    med = statistics.median(r)
                    print(f"  {k:<22} {med:8.1f} img/s  {1000 * batch / med:7.2f} ms/batch  "
                          f"top-1 = timm on {agree[k]}/{batch}")
                base = rates["timm eager"]
                for k in cands:
                    if k == "timm eager":
                        continue
                    target = None
                    if name == "efficientnet_lite0" and k == "ONNX Runtime int8":
                        target = 3.0 if batch == 8 else 2.0
                    elif k == "ONNX Runtime fp32":
                        target = 1.5
                    print(ratio_line(f"{k} / timm eager, {name} b{batch}", rates[k], base, target))
    return 0


if __name__ == "__main__":
    sys.exit(main())
