"""Bad input, table by table, through the public API and the command line only: every case is
either handled correctly or refused with a clear error that names the file or the setting,
before any work starts. What is fixed here stays fixed."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

import effnet_lab
from effnet_lab.data.folders import DatasetError, scan_image_folder
from effnet_lab.train import TrainConfig, Trainer, TrainingError, finetune
from effnet_lab.train.__main__ import main
from effnet_lab.weights.checkpoint import CheckpointError, save_atomic

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
COFFEE = ROOT / "data" / "images" / "coffee.png"
ROCKET = ROOT / "data" / "images" / "rocket.jpg"


def photo(path: Path, seed: int = 0, size=(20, 16)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    Image.fromarray(torch.randint(0, 256, (*size[::-1], 3), dtype=torch.uint8, generator=g).numpy()).save(path)
    return path


def tiny_folder(root: Path, per_class: int = 2) -> Path:
    for split, n in (("train", per_class), ("val", 1)):
        for c in ("birds", "fruit"):
            for f in sorted((DEMO / split / c).iterdir())[:n]:
                (root / split / c).mkdir(parents=True, exist_ok=True)
                shutil.copy(f, root / split / c / f.name)
    return root


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("tiny") / "data")


def quick(**kw) -> dict:
    return {**dict(model="efficientnet_lite0", pretrained=False, epochs=1, batch_size=4, img_size=32, progress=False,
                   workers=0), **kw}


# ------------------------------------------------------------------------------ images
def _image_case(name: str, write) -> tuple[str, object]:
    return pytest.param(write, id=name)


IMAGE_CASES = [
    _image_case("missing", lambda p: None),
    _image_case("directory", lambda p: p.mkdir()),
    _image_case("empty", lambda p: p.write_bytes(b"")),
    _image_case("text", lambda p: p.write_text("not an image\n" * 20)),
    _image_case("random-bytes", lambda p: p.write_bytes(random.Random(0).randbytes(2000))),
    _image_case("zip-named-jpg", lambda p: shutil.copy(ROOT / "data" / "weights" / "se_lite0_demo.pth", p)),
    _image_case("truncated-png", lambda p: p.write_bytes(COFFEE.read_bytes()[:3000])),
    _image_case("truncated-jpeg", lambda p: p.write_bytes(ROCKET.read_bytes()[:4000])),
    _image_case("png-header-only", lambda p: p.write_bytes(COFFEE.read_bytes()[:33])),
]


@pytest.mark.parametrize("write", IMAGE_CASES)
def test_bad_image_is_refused_naming_the_file(tmp_path, write):
    path = tmp_path / "bad.jpg"
    write(path)
    with pytest.raises(effnet_lab.ImageLoadError, match="bad.jpg"):
        effnet_lab.load_image(path)


def test_predict_names_the_bad_file_and_refuses_a_model_without_classifier(tmp_path, lite0):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 30)
    with pytest.raises(effnet_lab.ImageLoadError, match="bad.png"):
        effnet_lab.predict(lite0, [COFFEE, bad])
    headless = effnet_lab.create_model("efficientnet_lite0", num_classes=0)
    with pytest.raises(ValueError, match="num_classes=0"):
        effnet_lab.predict(headless, COFFEE)  # it would otherwise rank 1280 pooled features as "classes"


# ------------------------------------------------------------------------------ folders
def _flat(root: Path, counts: dict[str, int]) -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            photo(root / cls / f"{i}.png", seed=hash((cls, i)) % 1000)
    return root


FOLDER_CASES = {
    "missing": (lambda r: r / "nope", "not found"),
    "a-file": (lambda r: (r / "f.txt", (r / "f.txt").write_text("x"))[0], "not a folder"),
    "empty": (lambda r: r, "no class folders"),
    "loose-images": (lambda r: (photo(r / "a.png"), r)[1], "directly"),
    "one-class": (lambda r: _flat(r, {"a": 3}), "at least 2 classes"),
    "empty-class": (lambda r: (_flat(r, {"a": 3}), (r / "b").mkdir(), r)[2], "'b' has no usable images"),
    "only-corrupt": (lambda r: (_flat(r, {"a": 3}), (r / "b").mkdir(), (r / "b" / "x.jpg").write_text("no"), r)[3],
                     "unreadable"),
    "train-no-val": (lambda r: (_flat(r / "train", {"a": 2, "b": 2}), r)[1], "no val/ folder"),
    "val-no-train": (lambda r: (_flat(r / "val", {"a": 2, "b": 2}), r)[1], "no train/ folder"),
    "two-val": (lambda r: (_flat(r / "train", {"a": 2, "b": 2}), _flat(r / "val", {"a": 1, "b": 1}),
                           _flat(r / "valid", {"a": 1, "b": 1}), r)[3], "several validation folders"),
    "class-mismatch": (lambda r: (_flat(r / "train", {"a": 2, "b": 2}), _flat(r / "val", {"a": 1, "c": 1}), r)[2],
                       "missing from"),
    "nothing-to-validate": (lambda r: _flat(r, {"a": 1, "b": 1}), "nothing to validate"),
}


@pytest.mark.parametrize("case", sorted(FOLDER_CASES))
def test_bad_folder_is_refused_before_training(tmp_path, case):
    make, message = FOLDER_CASES[case]
    (tmp_path / "root").mkdir()
    root = make(tmp_path / "root")
    with pytest.raises(DatasetError, match=message):
        scan_image_folder(root)


def test_a_folder_link_back_up_does_not_mislabel(tmp_path):
    """A link inside class a pointing at the dataset root would make class b's images count as
    a; links that leave their class folder are not followed, and the summary says so."""
    root = _flat(tmp_path / "root", {"a": 3, "b": 3})
    (root / "a" / "everything").symlink_to(root, target_is_directory=True)
    (root / "b" / "loop").symlink_to(root / "b", target_is_directory=True)  # a loop inside b: followed once
    (root / "a" / "more").mkdir()
    photo(root / "a" / "more" / "x.png", seed=7)
    inner = root / "a" / "inner-link"
    inner.symlink_to(root / "a" / "more", target_is_directory=True)  # stays inside a: followed
    train, val, summary = scan_image_folder(root, val_fraction=0.25)
    labelled = {p.resolve(): summary.classes[y] for p, y in train + val}
    assert all(label == p.relative_to(root.resolve()).parts[0] for p, label in labelled.items())
    assert summary.counts["train"]["b"] + summary.counts["val"]["b"] == 3
    assert summary.links_out == [root.resolve() / "a" / "everything"]
    assert "1 link(s) leading out of their class folder" in str(summary)


# ------------------------------------------------------------------------------ checkpoints
def _state_dict_file(path: Path, change) -> Path:
    sd = effnet_lab.create_model("efficientnet_lite0", num_classes=4).state_dict()
    change(sd)
    torch.save(sd, path)
    return path


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


CHECKPOINT_CASES = {
    "missing": (lambda p: p, "does not exist"),
    "directory": (lambda p: (p.mkdir(), p)[1], "does not exist or is not a file"),
    "empty": (lambda p: (p.write_bytes(b""), p)[1], "empty, truncated, corrupt or not a PyTorch checkpoint"),
    "text": (lambda p: (p.write_text("hello\n" * 50), p)[1], "not a PyTorch checkpoint"),
    "random-bytes": (lambda p: (p.write_bytes(random.Random(0).randbytes(4096)), p)[1], "not a PyTorch checkpoint"),
    "random-bytes-2": (lambda p: (p.write_bytes(random.Random(1).randbytes(4096)), p)[1], "not a PyTorch checkpoint"),
    "truncated": (lambda p: (p.write_bytes((ROOT / "data" / "weights" / "se_lite0_demo.pth").read_bytes()[:5000]),
                             p)[1], "truncated"),
    "runs-code": (lambda p: (torch.save({"x": _RunsCode()}, p), p)[1], "refused to load"),
    "a-list": (lambda p: (torch.save([1, 2, 3], p), p)[1], "does not contain a state dict"),
    "nan-weights": (lambda p: _state_dict_file(p, lambda sd: sd["stages.3.0.expand.conv.weight"].view(-1)[5]
                                               .fill_(float("nan"))), "'stages.3.0.expand.conv.weight' holds 1 NaN"),
    "inf-weights": (lambda p: _state_dict_file(p, lambda sd: sd["classifier.bias"].fill_(float("inf"))),
                    "'classifier.bias' holds 4 NaN/infinite"),
    "unknown-layout": (lambda p: _state_dict_file(p, lambda sd: sd.update({"x.weight": sd.pop("stem.conv.weight")})),
                       "unrecognised state-dict layout"),
    "missing-key": (lambda p: _state_dict_file(p, lambda sd: sd.pop("head.bn.weight")),
                    r"missing from checkpoint \(1\): head.bn.weight"),
    "extra-key": (lambda p: _state_dict_file(p, lambda sd: sd.update(extra=torch.zeros(1))),
                  r"not in model \(1\): extra"),
    "other-variant": (lambda p: (torch.save(effnet_lab.create_model("efficientnet_b0").state_dict(), p), p)[1],
                      "another model variant"),
}


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_bad_checkpoint_is_refused_naming_the_file(tmp_path, case):
    make, message = CHECKPOINT_CASES[case]
    path = make(tmp_path / "weights.pth")
    with pytest.raises(CheckpointError, match=message) as refused:
        effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path)
    text = str(refused.value)
    assert "weights.pth" in text
    if case != "runs-code":  # only a pickle that would run code is described as one
        assert "execute" not in text and "weights_only" not in text


def test_wrong_class_count_says_which_num_classes(tmp_path):
    path = _state_dict_file(tmp_path / "four.pth", lambda sd: None)
    with pytest.raises(CheckpointError, match="pass num_classes=4"):
        effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path, num_classes=3)


@pytest.fixture(scope="module")
def lite0_run(tiny, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lite0run") / "run"
    Trainer(TrainConfig(data=str(tiny), output=str(out), **quick())).fit()
    return out


def test_a_checkpoint_of_another_architecture_names_both(lite0_run):
    with pytest.raises(CheckpointError, match="holds the weights of efficientnet_lite0.*not of efficientnet_b0"):
        effnet_lab.create_model("efficientnet_b0", checkpoint_path=lite0_run / "best.pth")
    same = effnet_lab.create_model("tf_efficientnet_lite0", checkpoint_path=lite0_run / "best.pth")  # same layers
    assert same.pretrained_cfg["label_names"] == ["birds", "fruit"]


# ------------------------------------------------------------------------------ runs and files
def test_a_new_run_never_replaces_a_finished_one(tiny, lite0_run, tmp_path):
    before = (lite0_run / "best.pth").read_bytes()
    with pytest.raises(TrainingError, match=r"already holds a run \(best.pth, history.csv, history.json, last.pth\)"
                                            r".*--resume.*--overwrite"):
        Trainer(TrainConfig(data=str(tiny), output=str(lite0_run), **quick(epochs=2)))
    with pytest.raises(TrainingError, match="already holds a run"):
        finetune(tiny, output=str(lite0_run), **{k: v for k, v in quick().items() if k != "model"})
    assert (lite0_run / "best.pth").read_bytes() == before
    copy = shutil.copytree(lite0_run, tmp_path / "copy")
    resumed = Trainer(TrainConfig(data=str(tiny), output=str(copy), resume=str(copy / "last.pth"), **quick(epochs=2)))
    assert resumed.epoch == 1  # continuing the run in its own folder is fine
    replaced = Trainer(TrainConfig(data=str(tiny), output=str(copy), overwrite=True, **quick()))
    replaced.fit()
    assert replaced.epoch == 1


def test_a_failing_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    target = tmp_path / "last.pth"
    save_atomic({"v": torch.ones(2)}, target)

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(CheckpointError, match=r"could not write .*last.pth.*No space left on device"):
        save_atomic({"v": torch.zeros(2)}, target)
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)["v"], torch.ones(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temporary file left


def test_a_temp_file_left_by_a_killed_write_is_cleaned_up(tmp_path):
    target = tmp_path / "last.pth"
    (tmp_path / ".last.pth.abc123.tmp").write_bytes(b"half a checkpoint")
    save_atomic({"v": torch.ones(1)}, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]


def test_a_run_killed_mid_epoch_resumes(tiny, tmp_path):
    """SIGKILL while training (a real process, no chance to clean up), then --resume: the run
    finishes with every epoch in its history."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "effnet_lab.train", "--data", str(tiny), "--epochs", "40", "-b", "2",
           "--img-size", "32", "--output", str(out), "--no-progress", "-j", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    deadline = time.monotonic() + 240
    while not (out / "last.pth").exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    time.sleep(0.3)  # into the next epoch
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = torch.load(out / "last.pth", weights_only=True)["epoch"]
    assert 1 <= done < 40
    resume = subprocess.run([*cmd[:5], "--epochs", str(done + 1), *cmd[7:], "--resume", str(out / "last.pth")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resume.returncode == 0, resume.stderr
    assert torch.load(out / "last.pth", weights_only=True)["epoch"] == done + 1


# ------------------------------------------------------------------------------ the command line
CLI_CASES = {
    "epochs-0": (["--epochs", "0"], "epochs (--epochs)"),
    "epochs-negative": (["--epochs", "-1"], "epochs (--epochs)"),
    "batch-size-0": (["--batch-size", "0"], "batch_size (--batch-size)"),
    "lr-negative": (["--lr", "-0.1"], "lr (--lr)"),
    "lr-nan": (["--lr", "nan"], "lr (--lr)"),
    "backbone-lr-0": (["--backbone-lr", "0"], "backbone_lr (--backbone-lr)"),
    "smoothing-1.5": (["--smoothing", "1.5"], "label_smoothing (--smoothing)"),
    "drop-1": (["--drop", "1.0"], "drop_rate (--drop)"),
    "drop-path-negative": (["--drop-path", "-0.1"], "drop_path_rate (--drop-path)"),
    "val-fraction-0": (["--val-fraction", "0"], "val_fraction (--val-fraction)"),
    "val-fraction-1": (["--val-fraction", "1"], "val_fraction (--val-fraction)"),
    "scale-reversed": (["--scale", "0.9", "0.1"], "scale (--scale)"),
    "hflip-2": (["--hflip", "2"], "hflip (--hflip)"),
    "workers-negative": (["-j", "-1"], "workers (--workers)"),
    "img-size-0": (["--img-size", "0"], "img_size (--img-size)"),
    "weight-decay-negative": (["--weight-decay", "-1"], "weight_decay (--weight-decay)"),
    "aa-unknown": (["--aa", "magic"], "auto_augment (--aa)"),
    "device-cuda-absent": (["--device", "cuda"], "no CUDA GPU is available"),
    "device-unknown": (["--device", "gpu"], "device (--device) 'gpu'"),
    "model-unknown": (["--model", "efficientnet_b9"], "unknown model 'efficientnet_b9'"),
    "data-missing": (["--data", "nope"], "image folder not found"),
    "resume-missing": (["--resume", "nope.pth"], "resume: checkpoint 'nope.pth' does not exist"),
    "resume-text-file": (["--resume", "{tmp}/notes.txt"], "not a PyTorch checkpoint"),
    "output-is-a-file": (["--output", "{tmp}/notes.txt"], "is an existing file"),
    "pretrained-offline": (["--model", "efficientnet_b0", "--pretrained"], "could not be downloaded"),
    "resume-other-architecture": (["--model", "efficientnet_b0", "--resume", "{run}/last.pth"],
                                  "holds another architecture's weights"),
    "output-holds-a-run": (["--output", "{run}"], "already holds a run"),
    "progressive-syntax": (["--progressive", "big"], "progressive (--progressive) must be START:END"),
    "progressive-reversed": (["--progressive", "64:32"], "need 1 <= START <= END"),
    "progressive-size-mismatch": (["--progressive", "16:64"], "ends at 64 px but img_size (--img-size) is 32"),
    "progressive-stages-over-epochs": (["--progressive", "16:32", "--progressive-stages", "3"],
                                       "progressive_stages (--progressive-stages) must be between 1 and"),
    "progressive-reg-0": (["--progressive", "16:32", "--progressive-stages", "1", "--progressive-reg", "0"],
                          "progressive_reg (--progressive-reg)"),
}


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_cli_error_is_one_line_before_training(tiny, lite0_run, tmp_path, capsys, monkeypatch, case):
    argv, message = CLI_CASES[case]
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    argv = [a.format(tmp=tmp_path, run=lite0_run) for a in argv]
    base = ["--data", str(tiny), "--img-size", "32", "--epochs", "1", "--no-progress", "--output", str(tmp_path / "o")]
    monkeypatch.setattr(Trainer, "fit", lambda self, *a: pytest.fail("training started"))
    monkeypatch.setattr(torch.hub, "download_url_to_file",
                        lambda *a, **k: (_ for _ in ()).throw(OSError("no network in tests")))
    monkeypatch.chdir(tmp_path)
    rc = main(base + argv)  # later flags win, as on a shell
    err = capsys.readouterr().err.strip()
    assert rc == 1
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert message in err, err


@pytest.mark.parametrize("argv", [["--data", "d", "--strategy", "bogus"], ["--data", "d", "--epochs", "two"],
                                  ["--data", "d", "--no-such-flag"], []],
                         ids=["bad-choice", "not-an-int", "unknown-flag", "no-data"])
def test_cli_argument_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2
    assert len(err.splitlines()) == 1 and "error:" in err and "--help" in err, err


# ------------------------------------------------------------------------------ found in review
def test_resume_with_other_trainable_parameters_is_refused_and_changes_nothing(tiny, lite0_run):
    trainer = Trainer(TrainConfig(data=str(tiny), **quick(strategy="linear")))
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(CheckpointError, match="--strategy full.*this run: --strategy linear"):
        trainer.load_checkpoint(lite0_run / "last.pth")
    assert trainer.epoch == 0 and all(torch.equal(before[k], v) for k, v in trainer.model.state_dict().items())


def test_resuming_from_best_pth_would_overwrite_last_pth(tiny, lite0_run):
    with pytest.raises(TrainingError, match="not the run's last.pth"):
        Trainer(TrainConfig(data=str(tiny), output=str(lite0_run), resume=str(lite0_run / "best.pth"),
                            **quick(epochs=3)))


def test_cli_resume_without_output_continues_in_the_runs_folder(tiny, lite0_run, tmp_path, monkeypatch):
    from effnet_lab.train import build_parser, config_from_args

    monkeypatch.chdir(tmp_path)
    config = config_from_args(build_parser().parse_args(["--data", str(tiny), "--resume", str(lite0_run / "last.pth")]))
    assert Path(config.output) == lite0_run


def test_a_file_link_to_another_class_is_not_followed(tmp_path):
    root = _flat(tmp_path / "root", {"a": 2, "b": 2})
    (root / "b" / "stolen.png").symlink_to(root / "a" / "0.png")
    elsewhere = photo(tmp_path / "library" / "mine.png", seed=9)
    (root / "b" / "from_library.png").symlink_to(elsewhere)  # a link to a photo outside the dataset: kept
    train, val, summary = scan_image_folder(root, val_fraction=0.4)
    names = {p.name: summary.classes[y] for p, y in train + val}
    assert "stolen.png" not in names and names["from_library.png"] == "b"
    assert [p.name for p in summary.links_out] == ["stolen.png"]


def test_a_module_of_your_own_must_fit_the_data(tiny):
    wrong = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(10))
    with pytest.raises(ValueError, match=r"gives \(1, 10\) for one sample, but the data has 2 classes"):
        Trainer(model=wrong, data=str(tiny), **{k: v for k, v in quick().items() if k != "model"})
    with pytest.raises(ValueError, match="set_grad_checkpointing"):
        Trainer(model=torch.nn.Sequential(torch.nn.Flatten(), torch.nn.LazyLinear(2)), data=str(tiny),
                grad_checkpointing=True, **{k: v for k, v in quick().items() if k != "model"})


def test_a_config_trains_at_its_own_resolution(tiny):
    small = effnet_lab.EfficientNetConfig(width=0.25, depth=0.25, resolution=48, drop_path_rate=0.05)
    trainer = Trainer(model=small, data=str(tiny), pretrained=None, epochs=1, batch_size=4, progress=False)
    assert trainer.data_config["input_size"] == (3, 48, 48)
    assert trainer.model.config.drop_path_rate == 0.05  # the config's own, not the fine-tuning default


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [2, 4])
def test_a_raw_pickle_is_refused_as_one(tmp_path, protocol):
    import pickle

    path = tmp_path / "raw.pth"
    path.write_bytes(pickle.dumps({"stem.conv.weight": [1.0]}, protocol=protocol))
    with pytest.raises(CheckpointError, match="raw Python pickle"):
        effnet_lab.create_model("efficientnet_lite0", checkpoint_path=path)


@pytest.mark.parametrize("settings, flag", [(dict(scale=0.5), "--scale"), (dict(epochs=True), "--epochs")])
def test_settings_of_the_wrong_type_are_named(settings, flag):
    with pytest.raises(ValueError, match=flag):
        TrainConfig(data="d", **settings)


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_notebook_06_own_images_cell_says_what_to_fix_in_one_line(tmp_path, capsys, make):
    """Notebook 06's "your own images" cell, run with a folder that does not exist or holds no class
    folders: one line naming the problem, not a DatasetError traceback."""
    import json

    folder = tmp_path / "my_photos"
    if make == "empty":
        folder.mkdir()
    nb = json.loads((ROOT / "notebooks" / "06_finetuning.ipynb").read_text(encoding="utf-8"))
    cell = next("".join(c["source"]) for c in nb["cells"]
                if c["cell_type"] == "code" and "".join(c["source"]).startswith("MY_FOLDER = None"))
    code = cell.replace("MY_FOLDER = None", f"MY_FOLDER = {str(folder)!r}", 1)
    scope = dict(SETTINGS=dict(model="efficientnet_lite0", pretrained=False, epochs=1), GPU=False, Path=Path,
                 finetune=finetune, DatasetError=DatasetError)
    exec(code, scope)
    out = capsys.readouterr().out
    assert out.startswith("MY_FOLDER: ") and out.count("\n") == 1 and str(folder) in out, out
