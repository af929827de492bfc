"""Progressive learning (EfficientNetV2's Algorithm 1) in the trainer: the schedule the paper
states, the sizes the network really sees, regularisation growing with them, exact resume
across a stage boundary, and the command line."""

from __future__ import annotations

import pytest
import torch
from test_train import quick, small_copy
from torch.utils.data import TensorDataset

from effnet_lab.train import Trainer
from effnet_lab.train.__main__ import main
from effnet_lab.train.progressive import parse_sizes, progressive_schedule


@pytest.fixture
def tiny(tmp_path):
    return small_copy(tmp_path / "data")


def test_schedule_is_the_papers_for_v2_s():
    """Table 6 of the V2 paper, V2-S: 4 stages from 128 to 300 px, dropout 0.1 → 0.3, RandAugment
    magnitude 5 → 15; linear in between (Algorithm 1): 128, 185.3, 242.7, 300 px."""
    stages = progressive_schedule(epochs=8, stages=4, start_size=128, end_size=300, start_strength=1 / 3)
    assert [s.size for s in stages] == [128, 185, 243, 300]
    assert [0.3 * s.strength for s in stages] == pytest.approx([0.1, 0.1667, 0.2333, 0.3], abs=1e-4)
    assert [15 * s.strength for s in stages] == pytest.approx([5, 8.33, 11.67, 15], abs=0.01)
    assert [(s.first_epoch, s.last_epoch) for s in stages] == [(0, 1), (2, 3), (4, 5), (6, 7)]
    # uneven: 10 epochs in 4 stages, every epoch in exactly one stage
    uneven = progressive_schedule(10, 4, 128, 300)
    assert [s.last_epoch - s.first_epoch + 1 for s in uneven] == [3, 2, 3, 2]


def test_auto_starts_at_half_the_size():
    assert parse_sizes("auto", end_default=224) == (112, 224)
    assert parse_sizes("auto:300") == (144, 300)  # 150 rounded down to a multiple of 8
    assert parse_sizes("auto", end_default=28) == (14, 28)  # tiny inputs: no rounding
    assert parse_sizes("128:224") == (128, 224)


def _record_sizes(trainer: Trainer) -> list[tuple[bool, int]]:
    seen: list[tuple[bool, int]] = []
    trainer.model.stem.register_forward_pre_hook(lambda m, a: seen.append((m.training, a[0].shape[-1])))
    return seen


def test_folder_run_trains_at_the_stage_sizes_and_evaluates_at_the_end_size(tiny):
    trainer = Trainer(quick(tiny, epochs=4, img_size=None, progressive="32:64", progressive_stages=2,
                            auto_augment="randaugment", drop_rate=0.3))
    seen = _record_sizes(trainer)
    magnitudes, dropouts = [], []
    for _ in range(4):
        trainer.fit(until_epoch=trainer.epoch + 1)
        ra = [t for t in trainer.train_set.transform.transforms if type(t).__name__ == "RandAugment"]
        magnitudes.append(ra[0].magnitude)
        dropouts.append(trainer.model.head_drop.p)
    assert {s for train, s in seen if train} == {32, 64}
    assert {s for train, s in seen if not train} == {64}  # validation: always the final size
    assert [h.train_size for h in trainer.history] == [32, 32, 64, 64]
    assert trainer.data_config["input_size"] == (3, 64, 64)  # what the checkpoint says to preprocess with
    assert magnitudes == [3, 3, 9, 9]  # a third of torchvision's default magnitude 9, then all of it
    assert dropouts == pytest.approx([0.1, 0.1, 0.3, 0.3])


def test_datasets_of_tensors_are_resized_batch_by_batch():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(24, 3, 48, 48, generator=g), torch.arange(24) % 3
    train, val = TensorDataset(x[:16], y[:16]), TensorDataset(x[16:], y[16:])
    trainer = Trainer(model="efficientnet_lite0", data=(train, val), class_names=["a", "b", "c"], pretrained=False,
                      epochs=3, batch_size=8, img_size=48, progressive="16:48", progressive_stages=3,
                      progress=False, workers=0)
    seen = _record_sizes(trainer)
    trainer.fit()
    assert [s for train, s in seen if train] == [16, 16, 32, 32, 48, 48]  # 2 batches per epoch
    assert {s for train, s in seen if not train} == {48}


def test_resume_across_a_stage_boundary_gives_identical_weights(tiny, tmp_path):
    opts = dict(epochs=4, img_size=None, progressive="32:64", progressive_stages=2, drop_rate=0.3)
    straight = Trainer(quick(tiny, output=str(tmp_path / "a"), **opts))
    straight.fit()
    interrupted = Trainer(quick(tiny, output=str(tmp_path / "b"), **opts))
    interrupted.fit(until_epoch=2)  # killed at the end of stage 1
    del interrupted
    resumed = Trainer(quick(tiny, output=str(tmp_path / "b"), resume=str(tmp_path / "b" / "last.pth"), **opts))
    assert resumed.epoch == 2 and resumed.progressive_stage().size == 64
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h.val_loss for h in straight.history] == [h.val_loss for h in resumed.history]
    assert [h.train_size for h in resumed.history] == [32, 32, 64, 64]


def test_command_line_runs_progressively(tiny, tmp_path, capsys):
    rc = main(["--data", str(tiny), "--epochs", "2", "--progressive", "auto", "--progressive-stages", "2",
               "--img-size", "64", "--no-progress", "--output", str(tmp_path / "run"), "-b", "8"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "stage 1/2: epochs 1-1 at 32 px" in out and "stage 2/2: epochs 2-2 at 64 px" in out, out


# ------------------------------------------------------------------------------ the study (notebook 09)
def test_study_arms_differ_only_in_the_image_sizes():
    from effnet_lab.lab.studies.progressive import EXPERIMENTS, build_trainer

    exp = EXPERIMENTS["fashion"]
    fixed, prog = (build_trainer(exp, arm, seed=1) for arm in ("fixed", "progressive"))
    a, b = fixed.config.to_dict(), prog.config.to_dict()
    assert {k for k in a if a[k] != b[k]} == {"progressive"}  # (4 stages: the default)
    longer = build_trainer(exp, "progressive-same-time", seed=1)
    assert longer.config.epochs == 12 and longer.config.progressive == "14:28"
    assert fixed.progressive is None and [s.size for s in prog.progressive] == [14, 19, 23, 28]
    assert all(torch.equal(x, y) for x, y in zip(fixed.model.state_dict().values(),
                                                  prog.model.state_dict().values(), strict=True))  # same init
    assert len(prog.val_set) == 10_000 and len(prog.train_set) == 5_000


def test_study_command_line_runs_resumes_and_summarizes(tmp_path, capsys):
    from effnet_lab.lab.studies.progressive import main, summarize
    from effnet_lab.lab.studies.scaling import read_results

    out = tmp_path / "progressive.jsonl"
    args = ["--experiment", "demo", "--seeds", "1", "--epochs", "2", "--arms", "fixed", "progressive",
            "--out", str(out)]
    assert main(args) == 0
    rows = read_results(out)
    assert [r["key"] for r in rows] == ["demo/fixed/seed0", "demo/progressive/seed0"]
    assert [h["train_size"] for h in rows[1]["history"]] == [64, 128]
    assert [h["train_size"] for h in rows[0]["history"]] == [128, 128]
    assert rows[0]["val_images"] == 37 and rows[0]["hardware"]["cpu"]
    capsys.readouterr()
    assert main(args) == 0
    assert len(read_results(out)) == 2 and "seed0:" not in capsys.readouterr().out  # nothing rerun
    (prog,) = [s for s in summarize(rows) if s["arm"] == "progressive"]
    assert prog["speedup"] == pytest.approx(rows[0]["train_time_s"] / rows[1]["train_time_s"])
