"""Does compound scaling win? The paper's scaling experiments, rerun on Fashion-MNIST.

The baseline is `B0_28PX` (B0's Table 1 for 16-px inputs, `effnet_lab.paper.architecture`);
every other network is that baseline scaled by `effnet_lab.paper.budget`. The experiments
(Tan & Le 2019):

    fig3     width, depth or resolution alone, at 1, 2, 4, 8, 16× the baseline's FLOPs
    fig4     width scaling at several fixed (depth, resolution) pairs
    grid     step 1 of the method: (α, β, γ) triples with α·β²·γ² ≈ 2, each at 2× FLOPs
    fig8     compound scaling (the paper's α, β, γ and the best triple of `grid`) against the
             single dimensions, all matched to the same FLOPs budgets (Figure 8, Table 3)

Every network trains with one `Recipe` (AdamW, warm-up + cosine, label smoothing, the same
augmentation) for each seed; test accuracy is over the whole test split. Each finished run is
appended to `results.jsonl` as one JSON line, so a killed study resumes where it stopped and
identical runs asked for by two experiments (fig3 and fig8 share their single-dimension
points) train once.

    python -m effnet_lab.lab.studies.scaling all --preset reduced --out results/scaling
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from ...data.fashion_mnist import FASHION_MNIST_MEAN, FASHION_MNIST_STD, load_fashion_mnist
from ...data.resources import data_path
from ...data.tensor_batches import TensorBatches
from ...model.device import usable_device
from ...model.network import EfficientNet
from ...paper.architecture import B0_28PX, EfficientNetConfig, config_to_dict
from ...paper.budget import Scaling, match_budget
from ...paper.cost import count_cost
from ...paper.scaling import ALPHA, BETA, GAMMA
from ...train.config import OneLineParser
from ...train.loop import evaluate, seed_everything, train_one_epoch, warmup_cosine
from ...weights.checkpoint import save_atomic

log = logging.getLogger(__name__)

NUM_CLASSES, IN_CHANS = 10, 1
PAPER = (ALPHA, BETA, GAMMA)
SINGLE = ("width", "depth", "resolution")
EXPERIMENTS = ("fig3", "fig4", "grid", "fig8")
RESULTS = "results.jsonl"
COMMITTED = ("studies", "scaling-cpu-reduced")  # data/studies/…: the run notebook 07 shows


# ----------------------------------------------------------------------------- the recipe
@dataclass(frozen=True)
class Recipe:
    """How every network of a study is trained: one recipe for all, so only the shape differs."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 4e-3  # AdamW
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    shift: int = 2  # random translation in pixels (RandomCrop(28, padding=2))
    flip: bool = True
    train_per_class: int | None = None  # None: every training image of the data source
    data: str = "auto"  # load_fashion_mnist's source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Preset:
    """What a study covers: budgets, grids, seeds and the recipe."""

    name: str
    recipe: Recipe
    seeds: int = 3
    budgets: tuple[float, ...] = (2, 4, 8, 16)
    fig4_pairs: tuple[tuple[float, float], ...] = ((2.0, 1.0), (1.0, 1.5), (2.0, 1.5))  # (depth, resolution)
    fig4_widths: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0)
    grid_budget: float = 2.0
    weights_budget: float = 16  # the budget whose seed-0 weights are kept for Grad-CAM


# The grid search's triples: β and γ on a 0.1 grid, α = 2/(β²γ²) so α·β²·γ² = 2 exactly, α ≥ 1;
# and the paper's own (1.2, 1.1, 1.15), which is not on that grid.
GRID_TRIPLES: tuple[tuple[float, float, float], ...] = tuple(
    (round(2 / (b * b * g * g), 4), b, g) for b in (1.0, 1.1, 1.2, 1.3) for g in (1.0, 1.1, 1.2, 1.3)
    if 2 / (b * b * g * g) >= 1) + (PAPER,)

PRESETS: dict[str, Preset] = {
    # The whole study (GPU): all 60,000 training images, 10 epochs.
    "full": Preset("full", Recipe()),
    # What two CPU cores do in about an hour and a half: 500 images per class, 4 epochs, fewer
    # Figure 4 points.
    "reduced": Preset("reduced", Recipe(epochs=4, batch_size=128, train_per_class=500),
                      fig4_pairs=((2.0, 1.0), (1.0, 1.5)), fig4_widths=(1.0, 2.0, 3.0),
                      weights_budget=8),  # the 16× files are 4× larger: too big to commit
    # Seconds: for tests.
    "smoke": Preset("smoke", Recipe(epochs=1, batch_size=64, train_per_class=20), seeds=1, budgets=(2,),
                    fig4_pairs=((2.0, 1.0),), fig4_widths=(1.0, 2.0), weights_budget=2),
}


# ----------------------------------------------------------------------------- the points
@dataclass(frozen=True)
class Point:
    """One network of a study: how it was scaled from the baseline and what it costs."""

    experiment: str
    label: str
    direction: str  # width | depth | resolution | compound | baseline | fixed
    scaling: Scaling
    budget: float | None = None
    coefficients: tuple[float, float, float] | None = None  # compound scaling only
    base: EfficientNetConfig = B0_28PX

    @property
    def config(self) -> EfficientNetConfig:
        return self.scaling.apply(self.base)

    def cost(self) -> tuple[int, int]:
        report = count_cost(self.config, num_classes=NUM_CLASSES, in_chans=IN_CHANS)
        return report.macs, report.params


def matched_point(experiment: str, budget: float, direction: str, coefficients=PAPER, label: str | None = None,
                  base: EfficientNetConfig = B0_28PX) -> Point:
    if budget == 1:
        return Point(experiment, "baseline", "baseline", Scaling(), 1.0, base=base)
    m = match_budget(base, budget, direction, coefficients=coefficients, num_classes=NUM_CLASSES, in_chans=IN_CHANS)
    coeffs = coefficients if direction == "compound" else None
    return Point(experiment, label or f"{direction} {budget:g}×", direction, m.scaling, budget, coeffs, base)


def figure3_points(preset: Preset) -> list[Point]:
    return [matched_point("fig3", 1, "width")] + [matched_point("fig3", b, d) for d in SINGLE for b in preset.budgets]


def figure4_points(preset: Preset) -> list[Point]:
    out = []
    for depth, res in ((1.0, 1.0), *preset.fig4_pairs):
        for w in preset.fig4_widths:
            out.append(Point("fig4", f"d={depth:g}, r={res:g}, w={w:g}", "fixed", Scaling(w, depth, res)))
    return out


def grid_points(preset: Preset) -> list[Point]:
    return [matched_point("grid", preset.grid_budget, "compound", t, f"α={t[0]:g} β={t[1]:g} γ={t[2]:g}")
            for t in GRID_TRIPLES]


def figure8_points(preset: Preset, best: tuple[float, float, float] | None = None) -> list[Point]:
    out = [matched_point("fig8", 1, "width")]
    for b in preset.budgets:
        out += [matched_point("fig8", b, d) for d in SINGLE]
        out.append(matched_point("fig8", b, "compound", PAPER, f"compound (paper) {b:g}×"))
        if best is not None and tuple(best) != PAPER:
            out.append(matched_point("fig8", b, "compound", best, f"compound (grid) {b:g}×"))
    return out


# ----------------------------------------------------------------------------- one run
@dataclass(frozen=True)
class Run:
    point: Point
    seed: int
    recipe: Recipe

    def key(self) -> str:
        """Same network, recipe and seed → same key, whichever experiment asked for it. Fields at
        their defaults are left out, so a field added later (with a default that keeps today's
        behaviour) does not orphan the results already on disk."""
        blob = json.dumps([_non_default(_key_config(self.point.config), _key_config(EfficientNetConfig())),
                           _non_default(self.recipe.to_dict(), Recipe().to_dict()), self.seed], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


# StageSpec fields added after results were committed, left out of a stage at these defaults (the
# other stage fields were always part of the key).
_LATER_STAGE_FIELDS = {"always_project": False}


def _key_config(config: EfficientNetConfig) -> dict[str, Any]:
    d = config_to_dict(config)
    d["stages"] = [_non_default(st, _LATER_STAGE_FIELDS) for st in d["stages"]]
    return d


def _non_default(d: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in defaults or v != defaults[k]}


_DATA: dict[tuple, Any] = {}


def _data(recipe: Recipe):
    """(train, test) splits for the recipe, loaded once per process."""
    key = (recipe.data, recipe.train_per_class)
    if key not in _DATA:
        train = load_fashion_mnist("train", recipe.data).subset(recipe.train_per_class)
        _DATA[key] = (train, load_fashion_mnist("test", recipe.data))
    return _DATA[key]


def hardware(device: torch.device) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info = {"device": device.type, "cpu": cpu, "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "python": platform.python_version(), "torch": torch.__version__}
    with contextlib.suppress(ImportError):
        import torchvision
        info["torchvision"] = torchvision.__version__
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def train_run(run: Run, device: str | torch.device = "cpu", progress: bool = False,
              save_to: str | os.PathLike | None = None) -> dict[str, Any]:
    """Train one network with the recipe and seed, test it; the result as a plain dict.
    `save_to`: also write the trained weights there (with the config), for Grad-CAM later."""
    device = torch.device(device)
    recipe, config = run.recipe, run.point.config
    train, test = _data(recipe)
    cuda = device.type == "cuda"
    seed_everything(run.seed)
    model = EfficientNet(config, NUM_CLASSES, IN_CHANS).to(device, memory_format=torch.channels_last)
    batches = dict(resolution=config.resolution, mean=FASHION_MNIST_MEAN, std=FASHION_MNIST_STD, device=device,
                   channels_last=True)
    loader = TensorBatches(train.images, train.labels, batch_size=recipe.batch_size, train=True, shift=recipe.shift,
                           flip=recipe.flip, seed=run.seed, **batches)
    test_loader = TensorBatches(test.images, test.labels, batch_size=1024, **batches)
    optimizer = torch.optim.AdamW(model.param_groups(recipe.lr, recipe.weight_decay), lr=recipe.lr)
    steps = recipe.epochs * len(loader)
    schedule = warmup_cosine(steps, round(recipe.warmup_epochs * len(loader)), 0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    autocast = (lambda: torch.autocast("cuda", torch.bfloat16)) if cuda else contextlib.nullcontext
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    epochs: Iterable[int] = range(recipe.epochs)
    if progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc=run.point.label, leave=False)
    history = []
    for _ in epochs:
        history.append(train_one_epoch(model, loader, optimizer, scheduler=scheduler, device=device,
                                       label_smoothing=recipe.label_smoothing, autocast=autocast))
    train_time = time.perf_counter() - start
    result = evaluate(model, test_loader, NUM_CLASSES, device=device, autocast=autocast)
    if save_to is not None:
        save_atomic({"state_dict": model.state_dict(), "config": config_to_dict(config), "key": run.key(),
                     "label": run.point.label, "seed": run.seed}, save_to)
    macs, params = run.point.cost()
    memory = (torch.cuda.max_memory_allocated(device) if cuda
              else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {
        "key": run.key(), "experiment": run.point.experiment, "label": run.point.label,
        "direction": run.point.direction, "budget": run.point.budget, "coefficients": run.point.coefficients,
        "scaling": asdict(run.point.scaling), "width": config.width, "depth": config.depth,
        "resolution": config.resolution, "macs": macs, "params": params,
        "ratio": macs / count_cost(run.point.base, num_classes=NUM_CLASSES, in_chans=IN_CHANS).macs,
        "seed": run.seed, "recipe": recipe.to_dict(), "data": {"source": train.source, "train": len(train),
                                                                "test": len(test)},
        "accuracy": result.accuracy, "loss": result.loss, "train_loss": history[-1]["loss"],
        "train_acc": history[-1]["acc"], "train_time_s": train_time, "time_s": time.perf_counter() - start,
        "images_per_s": sum(h["images_per_s"] for h in history) / len(history),
        "peak_memory_mb": memory / 2**20, "memory_kind": "cuda allocated" if cuda else "process max RSS",
        "hardware": hardware(device), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ----------------------------------------------------------------------------- results file
def committed_results() -> Path:
    """The results file of the study that notebook 07's figures come from."""
    return data_path(*COMMITTED, RESULTS)


def read_results(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every finished run in a results file (a line cut short by a kill is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            row = json.loads(line)
            if isinstance(row, dict) and "key" in row:
                rows.append(row)
    return rows


def append_result(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk; starts on a new line if a kill cut the last one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        f.seek(0, os.SEEK_END)
        if f.tell():
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
        f.write((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _worker(args: tuple[Run, str, int, Path | None]) -> dict[str, Any]:
    run, device, threads, save_to = args
    torch.set_num_threads(threads)
    return train_run(run, device, save_to=save_to)


def run_study(runs: Sequence[Run], out: str | os.PathLike, *, device: str = "auto", jobs: int = 0,
              progress: bool = True, preset: str = "", save: Callable[[Run], bool] | None = None,
              ) -> list[dict[str, Any]]:
    """Train every run not already in `out/results.jsonl`, appending each as it finishes.

    jobs=0 trains here, one run after another; jobs=N starts N worker processes (each run in a
    fresh one, so its memory is its own), sharing the CPU threads or the one GPU. Runs for
    which `save(run)` is true also keep their weights, in `out/models/<key>.pth`.
    """
    path = Path(out) / RESULTS
    done = {r["key"] for r in read_results(path)}
    todo, seen = [], set(done)
    for run in runs:
        if run.key() not in seen:
            seen.add(run.key())
            todo.append(run)
    log.info("%d runs asked, %d already in %s, %d to train", len(runs), len(runs) - len(todo), path, len(todo))
    dev = str(usable_device(device))
    finished: list[dict[str, Any]] = []
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(todo), desc="runs")

    def record(row: dict[str, Any]) -> None:
        row["preset"] = preset
        append_result(path, row)
        finished.append(row)
        if bar is not None:
            bar.update()
            bar.set_postfix(last=f"{row['label']} s{row['seed']}: {row['accuracy']:.3f}")

    def save_to(run: Run) -> Path | None:
        return Path(out) / "models" / f"{run.key()}.pth" if save is not None and save(run) else None

    if jobs <= 0:
        for run in todo:
            record(train_run(run, dev, progress=progress, save_to=save_to(run)))
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs) if dev == "cpu" else 2
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(jobs, maxtasksperchild=1) as pool:
            for row in pool.imap_unordered(_worker, [(r, dev, threads, save_to(r)) for r in todo]):
                record(row)
    if bar is not None:
        bar.close()
    return finished


# ----------------------------------------------------------------------------- summaries
@dataclass
class Summary:
    """One network over its seeds: mean ± std of the test accuracy."""

    label: str
    direction: str
    budget: float | None
    ratio: float
    macs: int
    params: int
    accuracies: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def mean(self) -> float:
        return sum(self.accuracies) / len(self.accuracies)

    @property
    def std(self) -> float:
        n = len(self.accuracies)
        if n < 2:
            return 0.0
        m = self.mean
        return math.sqrt(sum((a - m) ** 2 for a in self.accuracies) / (n - 1))


def summarize(rows: Iterable[dict[str, Any]], points: Sequence[Point], recipe: Recipe,
              seeds: Iterable[int]) -> list[Summary]:
    """The rows of `points` (matched by key, whichever experiment trained them), seeds pooled."""
    by_key = {r["key"]: r for r in rows}
    out = []
    for p in points:
        s = None
        for seed in seeds:
            row = by_key.get(Run(p, seed, recipe).key())
            if row is None:
                continue
            if s is None:
                s = Summary(p.label, p.direction, p.budget, row["ratio"], row["macs"], row["params"], row=row)
            s.accuracies.append(row["accuracy"])
            s.times.append(row["time_s"])
        if s is not None:
            out.append(s)
    return out


def best_triple(rows: Iterable[dict[str, Any]], preset: Preset) -> tuple[float, float, float] | None:
    """The grid's (α, β, γ) with the best mean accuracy, or None before the grid has run."""
    summaries = summarize(rows, grid_points(preset), preset.recipe, range(preset.seeds))
    if len(summaries) < len(GRID_TRIPLES):
        return None
    best = max(zip(summaries, GRID_TRIPLES, strict=True), key=lambda st: st[0].mean)
    return best[1]


def plan(experiment: str, preset: Preset, rows: Sequence[dict[str, Any]] = ()) -> list[Point]:
    if experiment == "fig3":
        return figure3_points(preset)
    if experiment == "fig4":
        return figure4_points(preset)
    if experiment == "grid":
        return grid_points(preset)
    if experiment == "fig8":
        return figure8_points(preset, best_triple(rows, preset))
    raise ValueError(f"experiment must be one of {', '.join(EXPERIMENTS)}, not {experiment!r}")


def keep_weights(run: Run, preset: Preset) -> bool:
    """Seed 0 of the baseline and of each direction at the preset's weights budget, for Grad-CAM."""
    return run.seed == 0 and run.point.budget in (1, preset.weights_budget) and run.point.direction != "fixed"


def runs_for(points: Iterable[Point], preset: Preset, seeds: int | None = None) -> list[Run]:
    return [Run(p, s, preset.recipe) for p in points for s in range(preset.seeds if seeds is None else seeds)]


# ----------------------------------------------------------------------------- the command line
def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m effnet_lab.lab.studies.scaling",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=(*EXPERIMENTS, "all"), help="which experiment, or all of them")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="reduced")
    parser.add_argument("--seeds", type=int, help="seeds per point (default: the preset's)")
    parser.add_argument("--epochs", type=int, help="override the preset's epochs")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--jobs", type=int, default=0, help="worker processes (0: train in this process)")
    parser.add_argument("--out", type=Path, default=Path("runs/scaling"), help="folder of results.jsonl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    preset = PRESETS[args.preset]
    if args.seeds is not None:
        if args.seeds < 1:
            parser.error(f"--seeds must be ≥ 1, not {args.seeds}")
        preset = replace(preset, seeds=args.seeds)
    if args.epochs is not None:
        if args.epochs < 1:
            parser.error(f"--epochs must be ≥ 1, not {args.epochs}")
        preset = replace(preset, recipe=replace(preset.recipe, epochs=args.epochs))
    if args.jobs < 0:
        parser.error(f"--jobs must be ≥ 0, not {args.jobs}")
    try:
        usable_device(args.device)
        _data(preset.recipe)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        parser.error(str(e))
    # 'all': the central comparison first (fig8 with the paper's α, β, γ; it shares its
    # single-dimension runs with fig3), then the grid search, then fig8 again for the grid's best
    # triple, then fig4, so a study cut short has answered the main question.
    order = ("fig3", "fig8", "grid", "fig8", "fig4") if args.experiment == "all" else (args.experiment,)
    start = time.perf_counter()
    for experiment in order:
        rows = read_results(args.out / RESULTS)
        run_study(runs_for(plan(experiment, preset, rows), preset), args.out, device=args.device, jobs=args.jobs,
                  preset=preset.name, save=lambda run: keep_weights(run, preset))
    log.info("done in %.0f s; results in %s", time.perf_counter() - start, args.out / RESULTS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
