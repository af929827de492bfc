"""The training engine on small copies of the shipped demo dataset (real photos)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import effnet_lab
from effnet_lab.train import TrainConfig, Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"


def small_copy(dst: Path, per_class: int = 4, classes=("birds", "flowers", "fruit", "mammals")) -> Path:
    for split, n in (("train", per_class), ("val", max(1, per_class // 2))):
        for c in classes:
            (dst / split / c).mkdir(parents=True)
            for f in sorted((DEMO / split / c).iterdir())[:n]:
                shutil.copy(f, dst / split / c / f.name)
    return dst


def quick(data: Path, **kw) -> TrainConfig:
    opts = dict(data=str(data), model="efficientnet_lite0", pretrained=False, epochs=2, batch_size=4,
                img_size=64, deterministic=True, progress=False, workers=0)
    opts.update(kw)
    return TrainConfig(**opts)


@pytest.fixture
def tiny(tmp_path) -> Path:
    return small_copy(tmp_path / "data")


@pytest.mark.parametrize("workers", [0, 2], ids=["in-process", "2-loader-workers"])
def test_resume_after_interruption_gives_identical_weights(tiny, tmp_path, workers):
    straight = Trainer(quick(tiny, epochs=3, output=str(tmp_path / "a"), workers=workers))
    straight.fit()

    interrupted = Trainer(quick(tiny, epochs=3, output=str(tmp_path / "b"), workers=workers))
    interrupted.fit(until_epoch=1)  # "killed" after epoch 1
    del interrupted
    resumed = Trainer(quick(tiny, epochs=3, output=str(tmp_path / "b"), resume=str(tmp_path / "b" / "last.pth"),
                            workers=workers))
    assert resumed.epoch == 1
    resumed.fit()

    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h.val_loss for h in straight.history] == [h.val_loss for h in resumed.history]


def test_checkpoint_contents_and_reload_for_inference(tiny, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(quick(tiny, epochs=1, output=str(out), pretrained=True))
    trainer.fit()
    ckpt = torch.load(out / "best.pth", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "scaler", "epoch", "rng", "class_names", "model_config",
                "data_config", "train_config", "history"):
        assert key in ckpt, key
    assert ckpt["class_names"] == ["birds", "flowers", "fruit", "mammals"]

    # the TF-port options of the pretrained Lite0 travel with the checkpoint
    model = effnet_lab.create_model("efficientnet_lite0", checkpoint_path=out / "best.pth").eval()
    assert model.config.tf_same_padding and model.config.bn_eps == 1e-3
    assert model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
    x = torch.randn(2, 3, 64, 64)
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), trainer.model(x))
    image = next((tiny / "val" / "fruit").iterdir())
    labels = [label for label, _ in effnet_lab.predict(model, image, topk=4)]
    assert sorted(labels) == ["birds", "flowers", "fruit", "mammals"]

    rows = json.loads((out / "history.json").read_text())
    assert rows[0]["epoch"] == 1 and (out / "history.csv").read_text().startswith("epoch,train_loss")


@pytest.mark.parametrize("strategy", ["linear", "partial"])
def test_frozen_parts_do_not_change(tiny, strategy):
    trainer = Trainer(quick(tiny, epochs=1, strategy=strategy, train_stages=2, pretrained=True))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert "classifier.weight" in changed
    if strategy == "linear":
        assert changed <= {"classifier.weight", "classifier.bias"}
    else:  # the last two of seven stages, the head conv and the classifier
        assert any(k.startswith("stages.6.") for k in changed) and any(k.startswith("stages.5.") for k in changed)
        assert not any(k.startswith(("stem.", "stages.0.", "stages.4.")) for k in changed)  # BN stats frozen too


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tiny, tmp_path):
    out = tmp_path / "run"
    trainer = Trainer(quick(tiny, epochs=3, output=str(out)))
    trainer.fit(until_epoch=1)
    trainer.net = lambda x: torch.full((x.shape[0], 4), float("nan"), requires_grad=True)
    with pytest.raises(TrainingError, match=r"loss became nan at epoch 2.*last good checkpoint.*last.pth"):
        trainer.fit()
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == 1


def test_out_of_memory_names_a_batch_size(tiny):
    trainer = Trainer(quick(tiny, epochs=1, batch_size=8))

    def oom(x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    trainer.net = oom
    with pytest.raises(TrainingError, match="batch size 8: try --batch-size 4"):
        trainer.fit()


def test_resume_with_other_classes_is_refused(tiny, tmp_path):
    out = tmp_path / "run"
    Trainer(quick(tiny, epochs=1, output=str(out))).fit()
    other = small_copy(tmp_path / "other", classes=("birds", "fruit", "mammals"))
    with pytest.raises(TrainingError, match=r"trained on classes \['birds', 'flowers'"):
        Trainer(quick(other, resume=str(out / "last.pth")))


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
def test_lr_schedule_warms_up_then_decays(tiny):
    trainer = Trainer(quick(tiny, epochs=4, warmup_epochs=1, lr=1e-2))
    lrs = []
    for _ in range(4 * len(trainer.train_loader)):
        lrs.append(trainer.optimizer.param_groups[-1]["lr"])
        trainer.scheduler.step()
    peak = lrs.index(max(lrs))
    assert 0 < peak <= len(trainer.train_loader)
    assert all(a <= b for a, b in zip(lrs[:peak], lrs[1:peak + 1], strict=True))
    assert all(a >= b for a, b in zip(lrs[peak:], lrs[peak + 1:], strict=False))
    assert max(lrs) == pytest.approx(1e-2, rel=0.05)
    # written out: linear warm-up over W steps, then SGDR's cosine from lr down to lr · min_lr_ratio
    steps, warm, m = len(lrs), len(trainer.train_loader), trainer.config.min_lr_ratio
    expected = [1e-2 * (t + 1) / (warm + 1) if t < warm else
                1e-2 * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - warm))))
                for t in range(steps)]
    assert lrs == pytest.approx(expected, rel=1e-9)


def test_cli_writes_checkpoints_and_history(tiny, tmp_path):
    out = tmp_path / "cli"
    cmd = [sys.executable, "-m", "effnet_lab.train", "--data", str(tiny), "--model", "efficientnet_lite0",
           "--epochs", "1", "--batch-size", "4", "--img-size", "64", "--output", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "done: 1 epochs" in proc.stdout and (out / "last.pth").exists() and (out / "history.csv").exists()

    bad_cmd = cmd[:4] + [str(tmp_path / "nope")] + cmd[5:]
    bad_cmd[bad_cmd.index("--output") + 1] = str(tmp_path / "other")  # `out` holds a run now: that is refused too
    bad = subprocess.run(bad_cmd, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "error:" in bad.stderr and "nope" in bad.stderr


def test_cli_reaches_every_setting():
    """Each TrainConfig field has a command-line flag (timm's name where timm has one)."""
    from effnet_lab.train import build_parser, config_from_args

    argv = ["--data", "d", "--model", "efficientnet_b0", "--pretrained", "--epochs", "3", "-b", "8", "--lr", "0.02",
            "--backbone-lr", "0.001", "--weight-decay", "0.05", "--warmup-epochs", "1", "--min-lr-ratio", "0.1",
            "--smoothing", "0.2", "--drop", "0.3", "--drop-path", "0.05", "--strategy", "partial",
            "--train-stages", "3", "--no-freeze-bn-stats", "--img-size", "160", "--scale", "0.5", "0.9",
            "--hflip", "0", "--color-jitter", "0.4", "--aa", "randaugment", "--val-fraction", "0.3", "--seed", "7",
            "--progressive", "96:160", "--progressive-stages", "3", "--progressive-reg", "0.5", "--device", "cpu",
            "--no-amp", "--no-channels-last", "--compile", "--grad-checkpointing", "-j", "2",
            "--output", "o", "--resume", "r.pth", "--overwrite", "--deterministic", "--no-progress",
            "--no-check-images"]
    got = dataclasses.asdict(config_from_args(build_parser().parse_args(argv)))
    want = dict(data="d", model="efficientnet_b0", pretrained=True, epochs=3, batch_size=8, lr=0.02,
                backbone_lr=0.001, weight_decay=0.05, warmup_epochs=1.0, min_lr_ratio=0.1, label_smoothing=0.2,
                drop_rate=0.3, drop_path_rate=0.05, strategy="partial", train_stages=3, freeze_bn_stats=False,
                img_size=160, scale=(0.5, 0.9), hflip=0.0, color_jitter=0.4, auto_augment="randaugment",
                progressive="96:160", progressive_stages=3, progressive_reg=0.5, val_fraction=0.3, seed=7,
                device="cpu", amp=False, channels_last=False, compile=True,
                grad_checkpointing=True, workers=2, output="o", resume="r.pth", overwrite=True, deterministic=True,
                progress=False,
                check_images=False)
    assert got == want  # `want` names every TrainConfig field: a new field without a flag fails here


def test_plots(tiny):
    import matplotlib

    matplotlib.use("Agg")
    from effnet_lab.lab.plots import plot_confusion_matrix, plot_history

    trainer = Trainer(quick(tiny, epochs=2))
    trainer.fit()
    axes = plot_history(trainer.history)
    assert len(axes[0].lines) == 2
    result = trainer.evaluate()
    # the same numbers, one image at a time: rows are true classes, columns predictions
    k = len(trainer.class_names)
    expected = torch.zeros(k, k, dtype=torch.long)
    loss = 0.0
    trainer.model.eval()
    with torch.no_grad():
        for image, label in trainer.val_set:
            logits = trainer.model(image[None])
            expected[label, logits.argmax(1).item()] += 1
            loss += torch.nn.functional.cross_entropy(logits, torch.tensor([label])).item()
    assert torch.equal(result.confusion, expected)
    assert result.accuracy == pytest.approx(expected.trace().item() / expected.sum().item())
    assert result.loss == pytest.approx(loss / len(trainer.val_set), rel=1e-5)
    per_class = result.per_class_accuracy()
    for i, name in enumerate(trainer.class_names):
        assert per_class[name] == pytest.approx(expected[i, i].item() / expected[i].sum().item())
    ax = plot_confusion_matrix(result.confusion, trainer.class_names)
    assert len(ax.texts) == 16


@pytest.mark.skipif(not shutil.which("torchrun", path=os.path.dirname(sys.executable)), reason="torchrun missing")
@pytest.mark.parametrize("port, extra", [(29517, []), (29518, ["--progressive", "64:96", "--progressive-stages", "2"])],
                         ids=["fixed-size", "progressive"])
def test_torchrun_two_processes_matches_single_process(tmp_path, port, extra):
    """2 gloo processes × batch 8 take the same steps as one process × batch 16: DDP averages
    the two half-batch gradients into the full-batch one, and rank r gets every other image of
    the same shuffled order. Made exact by a deterministic input pipeline (square photos, crop
    area 100 %, no flip or jitter) and no dropout; the linear probe keeps BatchNorm in eval.
    With progressive learning every rank rebuilds its pipeline at each stage's size alike."""
    from PIL import Image

    data = small_copy(tmp_path / "photos", per_class=8)
    for path in data.rglob("*.jpg"):  # square: a full-area RandomResizedCrop is then the whole image
        Image.open(path).convert("RGB").resize((112, 112)).save(path)
    common = ["--data", str(data), "--model", "efficientnet_lite0", "--pretrained", "--epochs", "2",
              "--img-size", "96", "--no-progress", "--lr", "1e-2", "--strategy", "linear", "--drop", "0",
              "--scale", "1", "1", "--hflip", "0", "--color-jitter", "0", *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    ddp = subprocess.run([torchrun, "--nproc_per_node", "2", "--master_port", str(port), "-m", "effnet_lab.train",
                          *common, "--batch-size", "8", "--output", str(tmp_path / "ddp")], capture_output=True,
                         text=True, timeout=600, env=env)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert ddp.stdout.count("done:") == 1 and "x2" in ddp.stdout  # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "ddp").glob("*.pth")) == ["best.pth", "last.pth"]
    single = subprocess.run([sys.executable, "-m", "effnet_lab.train", *common, "--batch-size", "16",
                             "--output", str(tmp_path / "one")], capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]

    a, b = (effnet_lab.create_model("efficientnet_lite0", checkpoint_path=tmp_path / d / "last.pth").classifier
            for d in ("ddp", "one"))
    assert torch.allclose(a.weight, b.weight, atol=1e-5) and torch.allclose(a.bias, b.bias, atol=1e-5)
    hist = [json.loads((tmp_path / d / "history.json").read_text()) for d in ("ddp", "one")]
    assert hist[1][1]["train_loss"] < hist[1][0]["train_loss"] and hist[1][1]["val_acc"] > 0.5  # it learns
    assert [h["val_acc"] for h in hist[0]] == [h["val_acc"] for h in hist[1]]
    assert [h["train_loss"] for h in hist[0]] == pytest.approx([h["train_loss"] for h in hist[1]], rel=1e-5)
    sizes = [[h["train_size"] for h in run] for run in hist]
    assert sizes == [[64, 96]] * 2 if extra else sizes == [[96, 96]] * 2


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step")
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_step_on_cpu(tiny, dtype):
    """The AMP path (autocast, and a grad scaler for fp16) takes the step fp32 takes: same loss
    to the precision of the dtype, the classifier moved the same way. On CUDA the same code
    picks bf16 when supported, else fp16 with the scaler."""
    def one_step(amp: bool) -> tuple[float, torch.Tensor]:
        trainer = Trainer(quick(tiny, epochs=1, amp=amp, channels_last=amp, drop_rate=0.0, drop_path_rate=0.0))
        if amp:
            trainer.autocast_dtype = dtype
            if dtype == torch.float16:
                trainer.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8, enabled=True)
        trainer.set_train_mode()
        samples = list(trainer.val_set)  # a fixed batch: validation images have no augmentation
        images, labels = torch.stack([x for x, _ in samples]), torch.tensor([y for _, y in samples])
        before = trainer.model.classifier.weight.detach().clone()
        _, loss = trainer.train_step(*trainer._to_device(images, labels))
        if amp and dtype == torch.float16:
            assert trainer.scaler.get_scale() > 0
        return loss.item(), trainer.model.classifier.weight.detach() - before

    loss32, step32 = one_step(amp=False)
    loss_amp, step_amp = one_step(amp=True)
    assert math.isfinite(loss_amp) and loss_amp == pytest.approx(loss32, rel=2e-2)
    assert step_amp.abs().sum() > 0
    agree = (torch.sign(step_amp) == torch.sign(step32)).float().mean().item()
    assert agree > 0.9, f"only {agree:.0%} of the classifier's updates have fp32's sign"


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on CPU needs a C compiler")
def test_torch_compile_trains_like_eager(tiny, tmp_path):
    """--compile on CPU (inductor, about a minute to compile): with no dropout or drop path the
    compiled run takes the same steps as the eager one, and its checkpoint (saved from the
    uncompiled module, no `_orig_mod.` prefixes) loads for inference."""
    settings = dict(epochs=1, drop_rate=0.0, drop_path_rate=0.0, deterministic=False)
    eager = Trainer(quick(tiny, **settings))
    eager.fit()
    compiled = Trainer(quick(tiny, compile=True, output=str(tmp_path / "c"), **settings))
    compiled.fit()
    assert compiled.net is not compiled.model
    e, c = eager.history[0], compiled.history[0]
    assert math.isclose(c.train_loss, e.train_loss, rel_tol=1e-3) and math.isclose(c.val_loss, e.val_loss, rel_tol=1e-3)
    a, b = eager.model.state_dict(), compiled.model.state_dict()
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-3
    reloaded = effnet_lab.create_model("efficientnet_lite0", checkpoint_path=tmp_path / "c" / "last.pth").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(reloaded(x), compiled.model.eval()(x), atol=1e-5)


def test_device_choice(monkeypatch):
    from effnet_lab import pick_device

    assert pick_device("cpu").type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"  # cuda first when there is one
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device().type == "mps"
