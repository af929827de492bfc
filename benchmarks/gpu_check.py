"""GPU check of the training engine (CI has no GPU; run this wherever one is available).

    python benchmarks/gpu_check.py            # about 2-4 minutes on one GPU

Each check prints one line and PASS/FAIL; the exit status is the number of failures.

* fine-tune Lite0 (partial) on data/demo with the CUDA defaults: bf16 autocast where supported,
  channels_last, loader workers; reports val accuracy and images/s;
* the same with fp16 autocast and a grad scaler (what GPUs without bf16 get);
* resume on CUDA: a run interrupted after epoch 1 and resumed ends close to an uninterrupted
  run (CUDA kernels are not bit-deterministic, so close rather than identical);
* torch.compile: one epoch compiled, the checkpoint reloads;
* out of memory: a batch far too large for the card gives TrainingError naming a batch size.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch
from benchlib import ROOT  # also puts the checkout on sys.path

import effnet_lab
from effnet_lab.train import TrainConfig, Trainer, TrainingError

DEMO = ROOT / "data" / "demo"
FAILURES: list[str] = []


def check(name: str, ok: bool, detail: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)
    if not ok:
        FAILURES.append(name)


def trainer(**kw) -> Trainer:
    opts = dict(data=str(DEMO), model="efficientnet_lite0", pretrained=True, strategy="partial", epochs=4,
                batch_size=32, lr=3e-3, progress=False)
    opts.update(kw)
    return Trainer(TrainConfig(**opts))


def fit(t: Trainer, until: int | None = None) -> tuple[float, float]:
    start = time.perf_counter()
    t.fit(until_epoch=until)
    return t.history[-1].val_acc, time.perf_counter() - start


CHECKS = ("defaults", "fp16", "resume", "compile", "oom")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=CHECKS, default=list(CHECKS))
    only = set(parser.parse_args().only)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check")
        return 0
    dev = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}, bf16 supported "
          f"{torch.cuda.is_bf16_supported()}")

    if "defaults" in only:
        defaults_on_cuda()
    if "fp16" in only:
        fp16_with_scaler()
    with tempfile.TemporaryDirectory() as tmp:
        if "resume" in only:
            resume(tmp)
        if "compile" in only:
            compiled(tmp, dev)
    if "oom" in only:
        out_of_memory()
    print(f"{len(FAILURES)} failure(s)" + (f": {', '.join(FAILURES)}" if FAILURES else ""))
    return len(FAILURES)


def defaults_on_cuda() -> None:
    t = trainer()
    acc, wall = fit(t)
    ips = max(h.images_per_s for h in t.history)
    check("defaults on CUDA", t.device.type == "cuda" and t.amp and t.channels_last
          and t.train_loader.num_workers > 0 and acc >= 0.85,
          f"amp {t.amp} ({t.autocast_dtype}), channels_last {t.channels_last}, {t.train_loader.num_workers} "
          f"workers, scaler {t.scaler.is_enabled()}; val acc {acc:.3f} after 4 epochs at 224 px, "
          f"{wall:.1f} s, best {ips:.0f} img/s")


def fp16_with_scaler() -> None:
    t16 = trainer()
    t16.autocast_dtype = torch.float16
    t16.scaler = torch.amp.GradScaler("cuda", enabled=True)
    acc16, _ = fit(t16)
    check("fp16 + grad scaler", acc16 >= 0.85 and t16.scaler.get_scale() > 0,
          f"val acc {acc16:.3f}, final loss scale {t16.scaler.get_scale():g}")


def resume(tmp: str) -> None:
    straight = trainer(epochs=3, seed=1, output=f"{tmp}/a")
    fit(straight)
    first = trainer(epochs=3, seed=1, output=f"{tmp}/b")
    fit(first, until=1)
    resumed = trainer(epochs=3, seed=1, output=f"{tmp}/b", resume=f"{tmp}/b/last.pth")
    fit(resumed)
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    diff = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    accs = (straight.history[-1].val_acc, resumed.history[-1].val_acc)
    check("resume on CUDA", resumed.epoch == 3 and diff < 0.05 and abs(accs[0] - accs[1]) <= 0.06,
          f"max |weight diff| vs uninterrupted {diff:.1e}; val acc {accs[0]:.3f} vs {accs[1]:.3f}")


def compiled(tmp: str, dev: torch.device) -> None:
    tc = trainer(epochs=1, compile=True, output=f"{tmp}/c")
    accc, wallc = fit(tc)
    back = effnet_lab.create_model("efficientnet_lite0", checkpoint_path=f"{tmp}/c/last.pth").to(dev).eval()
    back.to(memory_format=torch.channels_last)  # as the trained model; and full fp32 (no TF32) to compare
    x = torch.randn(2, 3, 224, 224, device=dev).contiguous(memory_format=torch.channels_last)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    with torch.no_grad():
        diff = (back(x) - tc.model.eval()(x)).abs().max().item()
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32
    check("torch.compile", diff < 1e-4 and accc > 0.5, f"1 epoch {wallc:.0f} s incl. compiling, val acc "
          f"{accc:.3f}; reloaded checkpoint vs trained model: max |logit diff| {diff:.1e}")


def out_of_memory() -> None:
    try:
        big = trainer(model="efficientnet_b7", pretrained=False, strategy="full", batch_size=110, img_size=1024,
                      epochs=1, amp=False)
        fit(big)
        check("out of memory", False, "no OOM at batch 110 × 1024² on B7: the card is larger than expected")
    except TrainingError as e:
        check("out of memory", "--batch-size 55" in str(e), str(e))
    finally:
        torch.cuda.empty_cache()


if __name__ == "__main__":
    sys.exit(main())
