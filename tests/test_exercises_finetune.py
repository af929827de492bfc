"""Notebook 06's exercises: each registered answer equals an independent computation (files
counted on disk, timm's own Lite0, the schedule's closed form), and `check` answers right /
not quite + hint / not answered."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
from conftest import assert_check_messages

from effnet_lab.lab.exercises import all_exercises, get, solution

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
KEYS = ("finetune.steps_per_epoch", "finetune.partial_params", "finetune.last_lr")


def _train_images() -> int:
    suffixes = {".png", ".jpg", ".jpeg"}
    return sum(1 for p in (DEMO / "train").rglob("*") if p.suffix.lower() in suffixes)


def _timm_partial_params(num_classes: int = 4) -> int:
    """Lite0 in timm: the last stage (blocks[-1]), conv_head + bn2 and the classifier."""
    m = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=num_classes)
    return sum(p.numel() for part in (m.blocks[-1], m.conv_head, m.bn2, m.classifier) for p in part.parameters())


def _closed_form_last_lr(lr=3e-3, epochs=2, batch=16, warmup_epochs=0.5, m=0.01) -> float:
    per_epoch = -(-_train_images() // batch)
    total, warmup = epochs * per_epoch, int(warmup_epochs * per_epoch)
    p = (total - 1 - warmup) / (total - warmup)
    return lr * (m + (1 - m) * 0.5 * (1 + math.cos(math.pi * p)))


INDEPENDENT = {
    "finetune.steps_per_epoch": lambda: (math.ceil(_train_images() / 16), 7),
    "finetune.partial_params": lambda: (_timm_partial_params(), 605_440 + 412_160 + 5_124),
    "finetune.last_lr": lambda: (_closed_form_last_lr(),),
}


def test_all_keys_registered():
    keys = {k for k in all_exercises() if k.startswith("finetune.")}
    assert keys == set(KEYS) == set(INDEPENDENT)
    for key in KEYS:
        ex = get(key)
        assert ex.question and ex.hint and ex.solution


def test_demo_has_109_training_images():
    assert _train_images() == 109


@pytest.mark.parametrize("key", KEYS)
def test_answer_matches_an_independent_computation(key):
    answer = get(key).answer()
    for reference in INDEPENDENT[key]():
        assert answer == pytest.approx(reference, rel=1e-9)


@pytest.mark.parametrize("key", KEYS)
def test_check_says_right_wrong_and_not_answered(key, capsys):
    assert_check_messages(key, capsys)


def test_rounded_answers():
    assert get("finetune.last_lr").is_right(9.02e-5)  # 3 significant digits
    assert not get("finetune.last_lr").is_right(3e-5)  # lr · min_lr_ratio: the step after the last
    assert not get("finetune.steps_per_epoch").is_right(6)  # 109 // 16 drops the last batch
    assert not get("finetune.partial_params").is_right(5_124)  # the classifier alone (linear probe)


def test_solution_shows_the_answer(capsys):
    solution("finetune.partial_params")
    assert "1022724" in capsys.readouterr().out
