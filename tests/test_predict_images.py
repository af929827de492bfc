"""Tests for effnet_lab.predict on the bundled photos.

The weights here are random, so label correctness is checked by comparing with a
pipeline built only from timm (transform, model, softmax); the real pretrained
check lives with the weights tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import timm.data
import torch
from PIL import Image
from torchvision.models._meta import _IMAGENET_CATEGORIES

from effnet_lab.data.config import INCEPTION_MEAN, INCEPTION_STD
from effnet_lab.model.predict import predict

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
PHOTOS = [IMAGES / name for name in ("chelsea.png", "coffee.png", "rocket.jpg")]
CHELSEA = PHOTOS[0]
BASE_CFG = {
    "input_size": (3, 224, 224),
    "crop_pct": 0.875,
    "interpolation": "bicubic",
    "mean": timm.data.IMAGENET_DEFAULT_MEAN,
    "std": timm.data.IMAGENET_DEFAULT_STD,
}


def _model(num_classes: int = 1000, **cfg: object) -> torch.nn.Module:
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", pretrained=False, num_classes=num_classes)
    model.pretrained_cfg = {**BASE_CFG, **cfg}
    return model.eval()


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return _model()


@pytest.fixture(scope="module")
def small() -> torch.nn.Module:
    return _model(num_classes=7)


def _timm_reference(model: torch.nn.Module, path: Path, k: int) -> tuple[list[int], list[float]]:
    """Top-k via timm's own transform, the model and softmax: no effnet_lab code."""
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    with Image.open(path) as img:
        x = transform(img.convert("RGB")).unsqueeze(0)
    model.eval()
    with torch.no_grad():
        probs = model(x).softmax(dim=-1)[0]
    values, indices = probs.topk(k)
    return indices.tolist(), values.tolist()


@pytest.mark.parametrize(
    "cfg",
    [
        {},
        {
            "input_size": (3, 240, 240),
            "crop_pct": 0.882,
            "interpolation": "bilinear",
            "mean": INCEPTION_MEAN,
            "std": INCEPTION_STD,
        },
    ],
    ids=["b0-224", "240-inception"],
)
def test_matches_manual_timm_pipeline(cfg: dict) -> None:
    model = _model(**cfg)
    indices, probs = _timm_reference(model, CHELSEA, 5)
    result = predict(model, CHELSEA, topk=5)
    assert [label for label, _ in result] == [_IMAGENET_CATEGORIES[i] for i in indices]
    assert [p for _, p in result] == pytest.approx(probs, abs=1e-5)


def test_single_image_result_shape(model: torch.nn.Module) -> None:
    result = predict(model, CHELSEA)
    assert isinstance(result, list) and len(result) == 5
    assert all(isinstance(label, str) and type(p) is float for label, p in result)
    probs = [p for _, p in result]
    assert probs == sorted(probs, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probs) and sum(probs) <= 1.0 + 1e-6
    assert all(label in _IMAGENET_CATEGORIES for label, _ in result)


def test_sequence_and_batching(model: torch.nn.Module) -> None:
    singles = [predict(model, path, topk=3) for path in PHOTOS]
    batched = predict(model, PHOTOS, topk=3, batch_size=2)
    assert len(batched) == 3
    for one, many in zip(singles, batched, strict=True):
        assert [label for label, _ in one] == [label for label, _ in many]
        assert [p for _, p in one] == pytest.approx([p for _, p in many], abs=1e-5)
    nested = predict(model, [CHELSEA])
    assert len(nested) == 1 and isinstance(nested[0], list) and isinstance(nested[0][0], tuple)


def test_pil_and_str_inputs(model: torch.nn.Module) -> None:
    from_path = predict(model, str(CHELSEA), topk=2)
    with Image.open(CHELSEA) as img:
        from_pil = predict(model, img, topk=2)
    assert [label for label, _ in from_path] == [label for label, _ in from_pil]
    assert [p for _, p in from_path] == pytest.approx([p for _, p in from_pil], abs=1e-6)


def test_topk_clipped_to_number_of_classes(small: torch.nn.Module) -> None:
    result = predict(small, CHELSEA, topk=50)
    assert len(result) == 7
    assert sum(p for _, p in result) == pytest.approx(1.0, abs=1e-5)
    assert sorted(label for label, _ in result) == sorted(f"class_{i}" for i in range(7))


def test_label_sources(small: torch.nn.Module) -> None:
    names = [f"thing {chr(65 + i)}" for i in range(7)]
    indices, probs = _timm_reference(small, CHELSEA, 3)
    given = predict(small, CHELSEA, topk=3, labels=names)
    assert [label for label, _ in given] == [names[i] for i in indices]
    assert [p for _, p in given] == pytest.approx(probs, abs=1e-5)

    small.pretrained_cfg = {**small.pretrained_cfg, "label_names": names[::-1]}
    try:
        from_cfg = predict(small, CHELSEA, topk=3)
        assert [label for label, _ in from_cfg] == [names[::-1][i] for i in indices]
        assert predict(small, CHELSEA, topk=3, labels=names) == given  # the argument wins
    finally:
        small.pretrained_cfg = {k: v for k, v in small.pretrained_cfg.items() if k != "label_names"}

    with pytest.raises(ValueError, match="labels"):
        predict(small, CHELSEA, labels=names[:3])


def test_model_mode_restored(small: torch.nn.Module) -> None:
    expected = predict(small, CHELSEA, topk=3)
    small.train()
    try:
        # Mixed modes survive too: a frozen (eval) block inside a training model.
        small.blocks[0].eval()
        during = predict(small, CHELSEA, topk=3)
        assert small.training and small.conv_head.training
        assert not small.blocks[0].training and not small.blocks[0][0].bn1.training
    finally:
        small.eval()
    # BatchNorm ran in eval mode during predict: train mode did not change the answer.
    assert [label for label, _ in during] == [label for label, _ in expected]
    assert [p for _, p in during] == pytest.approx([p for _, p in expected], abs=1e-6)
    predict(small, CHELSEA, topk=1, device="cpu")
    assert not small.training


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_rejects_bad_topk(small: torch.nn.Module, bad: object) -> None:
    with pytest.raises(ValueError, match="topk"):
        predict(small, CHELSEA, topk=bad)


def test_rejects_empty_input(small: torch.nn.Module) -> None:
    with pytest.raises(ValueError, match="empty"):
        predict(small, [])
