"""effnet_lab.lab.se_study (notebook 02's tools), its exercises, and the shipped SE weights."""

from __future__ import annotations

from functools import cache

import pytest
import torch
import torchvision
from torch import nn

from effnet_lab import create_model
from effnet_lab.lab import measure, se_study
from effnet_lab.lab.exercises import check, get


@cache
def tv_b0() -> nn.Module:
    """torchvision's EfficientNet-B0 (random weights: only its structure is compared)."""
    return torchvision.models.efficientnet_b0()


def tv_se_modules() -> list[nn.Module]:
    return [m for m in tv_b0().modules() if isinstance(m, torchvision.ops.SqueezeExcitation)]


@pytest.fixture(scope="module")
def b0() -> nn.Module:
    torch.manual_seed(0)
    return create_model("efficientnet_b0").eval()


@pytest.fixture(scope="module")
def se_lite0() -> nn.Module:
    return se_study.build_se_lite0(num_classes=4).eval()


def test_se_modules_in_forward_order(b0):
    names = [n for n, _ in se_study.se_modules(b0)]
    assert len(names) == 16 and names[0] == "stages.0.0.se" and names[-1] == "stages.6.0.se"
    assert se_study.short_name("stages.3.1.se") == "s3.1"


def test_se_lite0_is_b0_shaped_and_starts_as_the_pretrained_lite0(se_lite0):
    lite = create_model("efficientnet_lite0", pretrained=True).eval()
    # Lite0 + B0's SE modules: exactly B0's layers (1000-class head: 5,288,548 parameters)
    trunk = measure.count_params(se_lite0) - measure.count_params(se_lite0.classifier)
    assert trunk + 1280 * 1000 + 1000 == 5_288_548
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), se_study.override_gates(se_lite0, "ones"):
        assert torch.allclose(se_lite0.forward_features(x), lite.forward_features(x), atol=1e-5)
    # every gate starts open and constant: sigma(bias) for every channel of every image
    gates = se_study.collect_gates(se_lite0, torch.cat([x, -x]))
    expected = torch.sigmoid(torch.tensor(se_study.GATE_INIT_BIAS))
    assert all(torch.allclose(g, expected.expand_as(g)) for g in gates.values())
    assert all(isinstance(m.act, nn.SiLU) for _, m in se_study.se_modules(se_lite0))  # B0's SE activation


def test_record_gates_sees_what_the_module_computes(b0):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    seen = {}
    first = b0.stages[0][0].se
    handle = first.register_forward_hook(lambda m, i, o: seen.setdefault("in", i[0]))
    gates = se_study.collect_gates(b0, x)
    handle.remove()
    assert gates["stages.0.0.se"].shape == (3, 32)
    assert torch.allclose(gates["stages.0.0.se"], first.gate(seen["in"]).flatten(1))
    assert not first._forward_hooks  # hooks removed afterwards


def test_record_keeps_pooled_inputs_and_random_control(b0):
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    rec = se_study.record(b0, x)
    name, se = se_study.se_modules(b0)[5]
    z = rec.squeezed[name]
    assert z.shape == rec.gates[name].shape == (3, se.reduce.in_channels) and rec.logits.shape == (3, 1000)
    assert torch.allclose(se.gate(z.view(*z.shape, 1, 1)).flatten(1), rec.gates[name], atol=1e-6)
    control = se_study.random_gates(b0, rec.squeezed, seed=0)
    assert torch.equal(control[name], se_study.random_gates(b0, rec.squeezed, seed=0)[name])
    assert control[name].shape == z.shape and not torch.allclose(control[name], rec.gates[name])


def test_gates_forced_to_one_equal_removing_se(b0):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    removed = se_study.remove_se(b0)
    assert not se_study.se_modules(removed) and se_study.se_modules(b0)  # the original keeps its SE
    with torch.no_grad():
        with se_study.override_gates(b0, "ones"):
            ones = b0(x)
        assert torch.allclose(ones, removed(x), atol=1e-6)
        assert not torch.allclose(ones, b0(x), atol=1e-3)  # the override is gone after the block


def test_override_with_values_and_only(b0):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    name, se = se_study.se_modules(b0)[3]
    value = torch.linspace(0, 1, se.expand.out_channels)
    out = {}
    with torch.no_grad(), se_study.override_gates(b0, "values", {name: value}, only=[name]):
        # registered after the override's hook, so it sees the overridden output
        handle = se.register_forward_hook(lambda m, i, o: out.update(i=i[0], o=o))
        b0(x)
    handle.remove()
    others = [m for n, m in se_study.se_modules(b0) if n != name]
    assert not se._forward_hooks and not any(m._forward_hooks for m in others)
    assert torch.allclose(out["o"], out["i"] * value.view(1, -1, 1, 1))
    with pytest.raises(ValueError):
        with se_study.override_gates(b0, "zeros"):
            pass


def test_class_specificity():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    by_class = torch.tensor([[0.1], [0.1], [0.5], [0.5], [0.9], [0.9]])
    assert se_study.class_specificity(by_class, labels) == pytest.approx(1.0)
    within = torch.tensor([[0.1], [0.9], [0.1], [0.9], [0.1], [0.9]])
    assert se_study.class_specificity(within, labels) == pytest.approx(0.0)
    means = se_study.class_mean_gates(by_class, labels, 3)
    assert means.flatten().tolist() == pytest.approx([0.1, 0.5, 0.9])


def test_se_cost_table_against_torchvision(b0):
    rows = se_study.se_cost_table(b0)
    assert [r["se_params"] for r in rows] == [measure.count_params(m) for m in tv_se_modules()]
    for r in rows:  # two 1x1 convs on the pooled vector: 2 FLOPs per multiply-add, C*C' each
        assert r["se_flops"] == 2 * 2 * r["channels"] * r["squeeze"]
    assert rows[-1]["map"] == 7 and rows[0]["map"] == 112
    total = measure.count_flops(b0, torch.zeros(1, 3, 224, 224))
    assert total / 2e9 == pytest.approx(0.386, abs=0.001)  # torchvision's published GFLOPS for B0


def test_training_touches_only_se_and_classifier():
    model = se_study.build_se_lite0(num_classes=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(3, 64, 64, generator=g), i % 2) for i in range(4)]
    se_study.train_trainable(model, data, epochs=1, batch_size=4, log=None)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(".se." in k or k.startswith("classifier.") for k in changed)
    assert any(".se.reduce." in k for k in changed) or any(".se.expand." in k for k in changed)
    assert not any(p.requires_grad for p in model.parameters())


INDEPENDENT = {
    # torchvision's B0: features[5][0] is paper stage 6's first block, features[7][0] the last one
    "se.squeeze_width": lambda: [
        (tv_b0().features[5][0].block[2].fc1.in_channels, tv_b0().features[5][0].block[2].fc1.out_channels),
        (480, 20)],
    "se.params": lambda: [measure.count_params(tv_b0().features[7][0].block[2]),
                          2 * 1152 * 48 + 1152 + 48],
    # FLOPs = 2 x multiply-adds; SE: two 1x1 convs on the pooled vector; block: + expand, depthwise, project on 7x7
    "se.flops_share": lambda: [100 * (4 * 1152 * 48) / (4 * 1152 * 48 + 2 * 49 * (192 * 1152 + 9 * 1152 + 1152 * 320))],
}


@pytest.mark.parametrize("key", sorted(INDEPENDENT))
def test_exercise_answers_match_an_independent_computation(key, capsys):
    answer = get(key).answer()
    for reference in INDEPENDENT[key]():
        if isinstance(reference, tuple):
            assert answer == reference
        else:
            assert answer == pytest.approx(reference, rel=1e-3)
    check(key, answer)
    assert "✔ right" in capsys.readouterr().out
    check(key, 12345)
    assert "not quite" in capsys.readouterr().out


# ------------------------------------------------------------------ the shipped weights
def test_shipped_weights_file():
    path = se_study.weights_path()
    assert path.is_file(), "run data/weights/build_se_lite0_demo.py"
    assert path.stat().st_size < 2_000_000
    state = torch.load(path, map_location="cpu", weights_only=True)
    tensors = state["state_dict"]
    assert all(v.dtype == torch.float16 for v in tensors.values())
    assert sum(v.numel() for k, v in tensors.items() if ".se." in k) == sum(
        p.numel() for m in tv_se_modules() for p in m.parameters())  # B0's SE parameters (636,540)
    assert {"no_se.classifier.weight", "classifier.weight"} <= set(tensors)
    assert state["class_names"] == ["birds", "flowers", "fruit", "mammals"]
    assert len(state["history"]) == state["recipe"]["epochs"]


def test_shipped_weights_reproduce_the_logged_validation_accuracy():
    model = se_study.load_se_lite0()
    train_set, val_set, _ = se_study.demo_datasets(model, train_augment=False)
    x, y = se_study.stack(val_set)
    result = se_study.evaluate_tensors(model, x, y)
    logged = model.fine_tune["history"][-1]
    assert abs(result.accuracy - logged["val_acc"]) * len(y) <= 1  # float16 storage: at most one photo flips
    assert result.loss == pytest.approx(logged["val_loss"], abs=0.02)
    average = se_study.collect_gates(model, se_study.stack(train_set)[0])
    for name, stored in model.fine_tune["average_gates"].items():
        assert torch.allclose(stored.float(), average[name].mean(0), atol=1e-4)
    baseline = se_study.load_se_lite0(head="no_se")
    assert not se_study.se_modules(baseline)
    assert se_study.evaluate_tensors(baseline, x, y).accuracy == pytest.approx(
        model.fine_tune["no_se_history"][-1]["val_acc"], abs=1.5 / len(y))
    with pytest.raises(ValueError):
        se_study.load_se_lite0(head="other")

