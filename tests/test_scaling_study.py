"""The scaling study (notebook 07): Fashion-MNIST offline, batched tensor augmentation, networks
matched to a FLOPs budget, and a study that appends, resumes and reads back its results.

Peers: torchvision's FashionMNIST reader and transforms, torch's FlopCounterMode, the Debian
package's full dataset where it is installed."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from torchvision.transforms import v2

from effnet_lab.data.fashion_mnist import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    find_fashion_mnist,
    load_fashion_mnist,
    stratified_indices,
)
from effnet_lab.data.tensor_batches import TensorBatches
from effnet_lab.lab.measure import count_flops
from effnet_lab.lab.studies import scaling as study
from effnet_lab.model.network import EfficientNet
from effnet_lab.paper.architecture import B0_28PX, scaled_stages
from effnet_lab.paper.budget import DIRECTIONS, BudgetError, Scaling, match_budget
from effnet_lab.paper.cost import count_macs

HAS_FULL = find_fashion_mnist("auto")[0] == "full"


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize("split, per_class", [("train", 500), ("test", 100)])
def test_committed_subset_is_read_by_torchvision(split: str, per_class: int) -> None:
    data = load_fashion_mnist(split, "subset")
    assert data.source == "subset"
    assert data.images.dtype == torch.uint8 and data.images.shape == (10 * per_class, 28, 28)
    assert data.class_counts() == [per_class] * 10
    assert 0 == int(data.images.min()) and int(data.images.max()) == 255
    # the first training image of the subset is a shirt (class 6), the first test image a coat (4)
    assert int(data.labels[0]) == {"train": 6, "test": 4}[split]


@pytest.mark.skipif(not HAS_FULL, reason="Debian's dataset-fashion-mnist is not installed")
@pytest.mark.parametrize("split, per_class", [("train", 500), ("test", 100)])
def test_committed_subset_is_the_stratified_draw_of_the_full_set(split: str, per_class: int) -> None:
    full = load_fashion_mnist(split, "full")
    assert len(full) == {"train": 60000, "test": 10000}[split] and full.class_counts() == [len(full) // 10] * 10
    keep = stratified_indices(full.labels, per_class, seed=0)
    subset = load_fashion_mnist(split, "subset")
    assert torch.equal(full.images[keep], subset.images) and torch.equal(full.labels[keep], subset.labels)


def test_a_folder_without_the_files_is_named(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_fashion_mnist("train", str(tmp_path))
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation", "subset")


def test_unaugmented_batches_equal_torchvisions_per_sample_transforms() -> None:
    data = load_fashion_mnist("test", "subset")
    images = data.images[:32]
    for resolution in (16, 28, 40):  # downscaled (antialiased), native, upsampled
        batches = TensorBatches(images, data.labels[:32], batch_size=32, resolution=resolution,
                                mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD)
        ours, labels = next(iter(batches))
        peer = v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Resize(resolution, antialias=True),
                           v2.Normalize([FASHION_MNIST_MEAN], [FASHION_MNIST_STD])])
        theirs = torch.stack([peer(img[None]) for img in images])
        assert ours.shape == (32, 1, resolution, resolution) and torch.equal(labels, data.labels[:32])
        assert (ours - theirs).abs().max() < 1e-5


def test_augmented_batches_are_shifted_and_flipped_copies() -> None:
    data = load_fashion_mnist("test", "subset")
    n, shift = 64, 2
    batches = TensorBatches(data.images[:n], torch.arange(n), batch_size=n, resolution=28, mean=0.0, std=1.0,
                            train=True, shift=shift, seed=3)
    x, order = next(iter(batches))
    padded = v2.functional.pad(data.images[order][:, None].float() / 255, [shift] * 4)
    flipped = 0
    for i in range(n):
        crops = [v2.functional.crop(padded[i], dy, dx, 28, 28) for dy in range(5) for dx in range(5)]
        plain = any(torch.equal(x[i], c) for c in crops)
        mirrored = any(torch.equal(x[i], c.flip(-1)) for c in crops)
        assert plain or mirrored, f"sample {i} is no shifted copy of its image"
        flipped += mirrored and not plain
    assert 10 < flipped < n - 10  # about half are mirrored
    again, _ = next(iter(TensorBatches(data.images[:n], torch.arange(n), batch_size=n, resolution=28, mean=0.0,
                                       std=1.0, train=True, shift=shift, seed=3)))
    assert torch.equal(x, again)  # same seed, same batch


def test_bad_tensors_are_refused() -> None:
    with pytest.raises(ValueError, match="uint8"):
        TensorBatches(torch.zeros(4, 28, 28), torch.zeros(4), batch_size=2, resolution=16, mean=0, std=1)
    with pytest.raises(ValueError, match="4 images but 3 labels"):
        TensorBatches(torch.zeros(4, 28, 28, dtype=torch.uint8), torch.zeros(3), batch_size=2, resolution=16,
                      mean=0, std=1)


# ----------------------------------------------------------------------------- networks of one budget
def test_baseline_ends_on_a_2x2_map_and_torch_counts_its_flops() -> None:
    assert scaled_stages(B0_28PX)[-1].out_resolution == 2
    model = EfficientNet(B0_28PX, 10, 1)
    assert model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
    assert count_flops(model, torch.zeros(1, 1, 16, 16)) == 2 * count_macs(B0_28PX, num_classes=10, in_chans=1)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("budget", [2, 4, 8, 16])
def test_matched_networks_cost_the_budget_as_torch_counts_it(direction: str, budget: int) -> None:
    m = match_budget(B0_28PX, budget, direction, num_classes=10, in_chans=1)
    model = EfficientNet(m.config, 10, 1)
    res = m.config.resolution
    flops = count_flops(model, torch.zeros(1, 1, res, res))
    base = count_flops(EfficientNet(B0_28PX, 10, 1), torch.zeros(1, 1, 16, 16))
    assert flops == 2 * m.macs
    assert abs(flops / base / budget - 1) <= 0.05
    unchanged = {"width": ("depth", "resolution"), "depth": ("width", "resolution"),
                 "resolution": ("width", "depth"), "compound": ()}[direction]
    for name in unchanged:
        assert getattr(m.config, name) == getattr(B0_28PX, name)


def test_unreachable_budgets_and_bad_arguments_are_refused() -> None:
    with pytest.raises(BudgetError, match="nearest networks cost"):
        match_budget(B0_28PX, 2.5, "depth", num_classes=10, in_chans=1, tolerance=0.001)
    with pytest.raises(ValueError, match="direction"):
        match_budget(B0_28PX, 2, "height")
    with pytest.raises(ValueError, match="budget"):
        match_budget(B0_28PX, 0.5, "width")
    with pytest.raises(ValueError, match="α·β²·γ²"):
        match_budget(B0_28PX, 2, "compound", coefficients=(1.0, 1.0, 1.0))


def test_compound_scaling_follows_the_paper_rule() -> None:
    m = match_budget(B0_28PX, 4, "compound", num_classes=10, in_chans=1)
    assert m.scaling.width == pytest.approx(1.1 ** m.t) and m.scaling.depth == pytest.approx(1.2 ** m.t)
    assert m.config.resolution == round(16 * 1.15 ** m.t)
    assert Scaling.compound(1.0).depth == pytest.approx(1.2)


# ----------------------------------------------------------------------------- the study
TINY = replace(study.PRESETS["smoke"], recipe=study.Recipe(epochs=2, batch_size=32, train_per_class=8, data="subset"))


def test_study_appends_resumes_and_reads_back(tmp_path) -> None:
    runs = study.runs_for(study.figure8_points(TINY)[:3], TINY)
    assert len(runs) == 3
    first = study.run_study(runs[:1], tmp_path, device="cpu", progress=False)  # "killed" after one run
    path = tmp_path / study.RESULTS
    with open(path, "ab") as f:
        f.write(b'{"key": "cut sho')  # a kill in the middle of a line
    rest = study.run_study(runs, tmp_path, device="cpu", progress=False)
    assert [r["key"] for r in rest] == [r.key() for r in runs[1:]]  # the finished run was skipped
    rows = study.read_results(path)
    assert sorted(r["key"] for r in rows) == sorted(r.key() for r in runs)  # no duplicate, cut line skipped
    assert study.run_study(runs, tmp_path, device="cpu", progress=False) == []
    row = rows[0]
    assert row == first[0]
    for field in ("macs", "params", "accuracy", "loss", "time_s", "peak_memory_mb", "seed", "recipe", "hardware"):
        assert field in row
    assert row["data"] == {"source": "subset", "train": 80, "test": 1000}
    assert row["params"] == sum(p.numel() for p in EfficientNet(runs[0].point.config, 10, 1).parameters())
    summary = study.summarize(rows, [r.point for r in runs], TINY.recipe, [0])
    assert [s.label for s in summary] == [r.point.label for r in runs]


def test_a_run_is_deterministic_per_seed_on_cpu() -> None:
    run = study.runs_for(study.figure3_points(TINY)[:1], TINY)[0]
    a, b = study.train_run(run), study.train_run(run)
    assert (a["loss"], a["accuracy"], a["train_loss"]) == (b["loss"], b["accuracy"], b["train_loss"])


def test_grid_triples_meet_the_constraint() -> None:
    assert len(study.GRID_TRIPLES) >= 10 and (1.2, 1.1, 1.15) in study.GRID_TRIPLES
    for a, b, g in study.GRID_TRIPLES:
        assert a >= 1 and abs(a * b * b * g * g - 2) < 0.1


def test_cli_errors_are_one_line(tmp_path) -> None:
    for flags in (["fig3", "--seeds", "0"], ["fig9"], ["fig3", "--device", "cuda:7"]):
        out = subprocess.run([sys.executable, "-m", "effnet_lab.lab.studies.scaling", *flags, "--out", str(tmp_path)],
                             capture_output=True, text=True)
        assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert "Traceback" not in out.stderr


def test_committed_results_are_well_formed() -> None:
    path = study.committed_results()
    rows = study.read_results(path)
    assert rows, f"{path} holds no results"
    assert len({r["key"] for r in rows}) == len(rows)
    assert all(json.dumps(r) for r in rows)


def test_study_exercises_agree_with_the_raw_results_and_torch() -> None:
    from effnet_lab.lab.exercises import get

    by_label: dict[str, list[float]] = {}
    for line in study.committed_results().read_text().splitlines():
        row = json.loads(line)
        by_label.setdefault(row["label"], []).append(row["accuracy"])
    mean = {label: sum(a) / len(a) for label, a in by_label.items()}
    gains = {d: mean[f"{d} 8×"] - mean[f"{d} 4×"] for d in ("width", "depth", "resolution")
             if f"{d} 8×" in mean and f"{d} 4×" in mean}
    if len(gains) == 3:
        assert get("study.saturates_first").answer() == min(gains, key=gains.get)

    ex = get("study.width_for_budget")
    w = ex.answer()
    assert ex.is_right(w) and not ex.is_right(1.0) and not ex.is_right("wide")
    config = B0_28PX.scaled(width=B0_28PX.width * w)
    x = torch.zeros(1, 1, 16, 16)
    ratio = count_flops(EfficientNet(config, 10, 1), x) / count_flops(EfficientNet(B0_28PX, 10, 1), x)
    assert abs(ratio / 3 - 1) <= 0.05


def test_keep_weights_keeps_seed_0_at_the_baseline_and_the_weights_budget_only():
    preset = study.PRESETS["reduced"]
    kept = {(r.point.label, r.seed) for r in study.runs_for(study.figure8_points(preset), preset)
            if study.keep_weights(r, preset)}
    # the baseline and the three single directions and the paper's compound at 8×, seed 0 each
    assert kept == {("baseline", 0), ("width 8×", 0), ("depth 8×", 0), ("resolution 8×", 0),
                    ("compound (paper) 8×", 0)}
    assert not any(study.keep_weights(r, preset) for r in study.runs_for(study.figure4_points(preset), preset))
