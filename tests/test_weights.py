"""Loading weights: every way it can go wrong gives a clear error; online paths are tested
through local files (the hub cache) and a refused network."""

from __future__ import annotations

import os
import pickle
import urllib.error

import pytest
import timm
import torch
from conftest import max_diff, randomize_bn

import effnet_lab
from effnet_lab.weights.checkpoint import CheckpointError, save_atomic
from effnet_lab.weights.pretrained import PretrainedUnavailable


@pytest.fixture
def timm_b0_file(tmp_path):
    torch.manual_seed(0)
    peer = randomize_bn(timm.create_model("efficientnet_b0")).eval()
    path = tmp_path / "b0_timm.pth"
    torch.save(peer.state_dict(), path)
    return peer, path


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match=r"unknown model 'efficientnet_b00'.*'efficientnet_b0'"):
        effnet_lab.create_model("efficientnet_b00")
    with pytest.raises(ValueError, match="efficientnet_lite0"):
        effnet_lab.create_model("efficientnet_lite0.ra_in1k")


def test_unknown_argument_is_named():
    with pytest.raises(TypeError, match="bn_epsilon"):
        effnet_lab.create_model("efficientnet_b0", bn_epsilon=1e-3)


def test_wrong_architecture_names_the_mismatch(timm_b0_file):
    _, path = timm_b0_file
    with pytest.raises(CheckpointError) as e:
        effnet_lab.create_model("efficientnet_b1", checkpoint_path=path)  # b1 has more blocks
    msg = str(e.value)
    assert str(path) in msg and "missing from checkpoint" in msg and "blocks." in msg
    with pytest.raises(CheckpointError, match=r"not in model \(64\): blocks.0.0.se.conv_reduce.weight"):
        effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path)  # Lite has no SE
    with pytest.raises(CheckpointError, match=r"shape mismatch: blocks.2.0.conv_pwl.weight: checkpoint "
                                              r"\(40, 144, 1, 1\) vs model \(48, 144, 1, 1\)"):
        effnet_lab.create_model("efficientnet_b2", checkpoint_path=path)  # wider


def test_wrong_num_classes_says_what_to_pass(tmp_path):
    model = effnet_lab.create_model("efficientnet_lite0", num_classes=10)
    path = tmp_path / "ten.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match=r"checkpoint has 10 classes.*pass num_classes=10"):
        effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path, num_classes=1000)
    # without num_classes, the checkpoint decides
    assert effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path).num_classes == 10


def test_training_checkpoint_brings_class_names(tmp_path):
    model = effnet_lab.create_model("efficientnet_lite0", num_classes=3).eval()
    names = ["bird", "flower", "fruit"]
    path = tmp_path / "run.pth"
    torch.save({"model": model.state_dict(), "class_names": names, "epoch": 4}, path)
    loaded = effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path).eval()
    assert loaded.pretrained_cfg["label_names"] == names
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_ddp_prefix_is_stripped(tmp_path, timm_b0_file):
    peer, _ = timm_b0_file
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in peer.state_dict().items()}}, path)
    model = effnet_lab.create_model("efficientnet_b0", checkpoint_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(model(x), peer(x)) < 1e-4


def test_truncated_and_non_checkpoint_files(tmp_path, timm_b0_file):
    _, good = timm_b0_file
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights\n")
    for bad in (truncated, text):
        with pytest.raises(CheckpointError, match=rf"could not read checkpoint .*{bad.name}.*truncated"):
            effnet_lab.create_model("efficientnet_b0", checkpoint_path=bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        effnet_lab.create_model("efficientnet_b0", checkpoint_path=tmp_path / "missing.pth")
    tensor_only = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_only)
    with pytest.raises(CheckpointError, match="does not contain a state dict"):
        effnet_lab.create_model("efficientnet_b0", checkpoint_path=tensor_only)


class _Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_pickle_that_runs_code_is_refused(tmp_path):
    marker = str(tmp_path / "pwned")
    for path in (tmp_path / "evil_zip.pth", tmp_path / "evil_legacy.pth"):
        if path.name == "evil_zip.pth":
            torch.save({"conv_stem.weight": torch.zeros(1), "x": _Exploit(marker)}, path)
        else:
            path.write_bytes(pickle.dumps({"x": _Exploit(marker)}))
        with pytest.raises(CheckpointError, match="refused"):
            effnet_lab.create_model("efficientnet_b0", checkpoint_path=path)
        assert not os.path.exists(marker)


@pytest.fixture
def offline(tmp_path, monkeypatch) -> None:
    """An empty weights cache, and every download fails as it does without network."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)


def test_pretrained_offline_gives_one_clear_message(offline):
    with pytest.raises(PretrainedUnavailable) as e:
        effnet_lab.create_model("efficientnet_b0", pretrained=True)
    msg = str(e.value)
    assert "checkpoint_path=" in msg and "efficientnet_b0_ra-3dd342df.pth" in msg and "network unreachable" in msg


def test_offline_advice_gives_the_published_settings(offline, tmp_path):
    """Following the offline message (a downloaded file + pretrained=True) gives the model the
    published weights' settings: Lite3's TF port needs "same" padding, BN eps 1e-3 and
    mean = std = 0.5. Checked against timm's tf_efficientnet_lite3 with the same (random) weights."""
    with pytest.raises(PretrainedUnavailable) as e:
        effnet_lab.create_model("efficientnet_lite3", pretrained=True)
    assert "create_model('efficientnet_lite3', pretrained=True, checkpoint_path=" in str(e.value)

    torch.manual_seed(0)
    peer = randomize_bn(timm.create_model("tf_efficientnet_lite3")).eval()
    path = tmp_path / "tf_efficientnet_lite3-b733e338.pth"
    torch.save(peer.state_dict(), path)
    model = effnet_lab.create_model("efficientnet_lite3", pretrained=True, checkpoint_path=path).eval()
    assert (model.config.tf_same_padding, model.config.bn_eps) == (True, 1e-3)
    assert model.pretrained_cfg["mean"] == model.pretrained_cfg["std"] == (0.5, 0.5, 0.5)
    x = torch.randn(1, 3, 75, 75)  # odd size: asymmetric "same" padding at every stride 2
    with torch.no_grad():
        assert max_diff(model(x), peer(x)) < 1e-4
        # the same file without pretrained=True is loaded into the registered (PyTorch-style) model
        plain = effnet_lab.create_model("efficientnet_lite3", checkpoint_path=path).eval()
        assert max_diff(plain(x), peer(x)) > 1e-2


def test_pretrained_from_hub_cache(tmp_path, monkeypatch, timm_b0_file):
    """The online path, through a local file: a checkpoint in torch.hub's cache is used."""
    peer, path = timm_b0_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "efficientnet_b0_ra-3dd342df.pth").write_bytes(path.read_bytes())

    def no_network(*args, **kwargs):
        raise AssertionError("must not download when the file is cached")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    model = effnet_lab.create_model("efficientnet_b0", pretrained=True).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert max_diff(model(x), peer(x)) < 1e-4


def test_pretrained_download_goes_to_the_cache(tmp_path, monkeypatch, timm_b0_file):
    """When online, torch.hub's downloader is asked for the published URL (simulated here)."""
    _, path = timm_b0_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    asked = []

    def fake_download(url, dst, *args, **kwargs):
        asked.append(url)
        with open(dst, "wb") as f:
            f.write(path.read_bytes())

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    effnet_lab.create_model("efficientnet_b0", pretrained=True)
    assert asked == ["https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-weights/"
                     "efficientnet_b0_ra-3dd342df.pth"]
    assert (tmp_path / "torch" / "hub" / "checkpoints" / "efficientnet_b0_ra-3dd342df.pth").is_file()


def test_atomic_save_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "ckpt.pth"
    save_atomic({"w": torch.ones(3)}, target)

    real_save = torch.save

    def dying_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.truncate(10)  # half-written…
        raise KeyboardInterrupt  # …and killed

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        save_atomic({"w": torch.zeros(3)}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temp files left behind


@pytest.mark.parametrize("layout", ["timm", "effnet_lab"])
def test_save_weights_loads_in_timm_and_back(tmp_path, layout):
    model = randomize_bn(effnet_lab.create_model("efficientnet_es")).eval()
    path = effnet_lab.save_weights(model, tmp_path / "w.pth", layout=layout)
    again = effnet_lab.create_model("efficientnet_es", checkpoint_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    if layout == "timm":
        peer = timm.create_model("efficientnet_es").eval()
        peer.load_state_dict(torch.load(path, weights_only=True))
        with torch.no_grad():
            assert max_diff(peer(x), model(x)) < 1e-4
